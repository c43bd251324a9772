//! The process-wide worker pool.
//!
//! Workers are plain OS threads that hold no Python thread state while parked,
//! so an idle pool costs the interpreter nothing. A batch is queued once, not
//! once per task: every worker that picks it up claims indices from the same
//! board until none are left, so a gather of 100,000 calls is one queue entry.
//!
//! Sizing. On submit the pool wakes idle workers and grows up to the number of
//! CPUs at once. Beyond that a monitor thread adds workers only while work is
//! queued and the running tasks look blocked. They look blocked when nothing
//! completed during the last tick, the process used less CPU than the machine
//! has, and the GIL could be taken at once. Trivial or pure-Python tasks fail the last two checks, so they
//! never cause a thread explosion, while sleeps and I/O grow the pool quickly
//! (it doubles per tick) up to `max_workers`. Idle workers exit after
//! `idle_timeout`.
//!
//! NOTE: the CPU check reads this process's CPU time, so when other processes
//! keep every core busy, runnable-but-waiting workers look blocked and the
//! pool may add a few threads it does not need.
//!
//! Workers blocked in a nested gather do not count toward `max_workers`, which
//! is what keeps nested fan-out free of deadlocks under any cap.

use crate::batch::{BatchCore, Kind};
use crate::config::Config;
use crate::sync::{Condvar, Mutex};
use pyo3::Python;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the monitor checks for blocked workers while work is queued.
const MONITOR_TICK: Duration = Duration::from_millis(1);
/// A GIL acquisition slower than this means some thread is running Python
/// code, so more threads would only queue for the GIL.
const GIL_BUSY_THRESHOLD: Duration = Duration::from_micros(500);
/// Consecutive ticks without progress before the monitor adds workers.
const STALLED_TICKS_TO_GROW: u32 = 2;
/// Smallest burst of workers the monitor adds at once.
const MIN_GROWTH: usize = 16;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// True on threads owned by the pool.
pub fn on_worker_thread() -> bool {
    IS_WORKER.with(Cell::get)
}

struct Queue {
    batches: VecDeque<Arc<BatchCore>>,
    workers: usize,
    idle: usize,
    monitor_alive: bool,
    shutdown: bool,
    /// Idle workers notified but not yet awake.
    waking: usize,
}

pub struct Pool {
    queue: Mutex<Queue>,
    work_ready: Condvar,
    monitor_wake: Condvar,
    pub config: Config,
    completed: AtomicU64,
    nested_waiters: AtomicUsize,
    spawned_pending: Mutex<usize>,
    spawned_done: Condvar,
    cpus: usize,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(std::ptr::null_mut());

/// Returns the process-wide pool if it has been created.
pub fn existing_pool() -> Option<&'static Pool> {
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: pools are leaked, never freed, so a published pointer stays valid.
    (!current.is_null()).then(|| unsafe { &*current })
}

/// Returns the process-wide pool, creating it on first use.
pub fn pool() -> Result<&'static Pool, String> {
    let current = POOL.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: pools are leaked, never freed, so a published pointer stays valid.
        return Ok(unsafe { &*current });
    }
    let fresh = Box::into_raw(Box::new(Pool::new(Config::from_env()?)));
    match POOL.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: `fresh` came from Box::into_raw and is now published for good.
        Ok(_) => Ok(unsafe { &*fresh }),
        Err(winner) => {
            // SAFETY: `fresh` was never published, so this thread still owns it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as above, a published pool is never freed.
            Ok(unsafe { &*winner })
        }
    }
}

/// Forgets the pool after `fork()`. The child has none of the parent's
/// threads, and a lock may have been held by one of them at the fork, so the
/// old pool is leaked rather than touched. The next gather builds a new one.
pub fn forget_after_fork() {
    POOL.store(std::ptr::null_mut(), Ordering::Release);
}

impl Pool {
    fn new(config: Config) -> Self {
        Pool {
            queue: Mutex::new(Queue {
                batches: VecDeque::new(),
                workers: 0,
                idle: 0,
                monitor_alive: false,
                shutdown: false,
                waking: 0,
            }),
            work_ready: Condvar::new(),
            monitor_wake: Condvar::new(),
            config,
            completed: AtomicU64::new(0),
            nested_waiters: AtomicUsize::new(0),
            spawned_pending: Mutex::new(0),
            spawned_done: Condvar::new(),
            cpus: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// Queues a batch. Batches submitted from inside a task go to the front,
    /// so nested work runs before more outer work is started.
    pub fn submit(&'static self, batch: Arc<BatchCore>) -> Result<(), String> {
        let wanted = batch.board.unclaimed();
        if wanted == 0 {
            return Ok(());
        }
        let mut queue = self.queue.lock();
        if queue.shutdown {
            return Err(
                "the msgflux worker pool is shut down because the interpreter is exiting; \
                        submit work before exit begins"
                    .to_string(),
            );
        }
        if on_worker_thread() {
            queue.batches.push_front(batch);
        } else {
            queue.batches.push_back(batch);
        }

        // Start at most one running worker per CPU at once, waking idle ones
        // first. More only help tasks that block, which the monitor detects.
        let busy = queue.workers - queue.idle;
        let sleeping = queue.idle.saturating_sub(queue.waking);
        let woken = wanted.min(sleeping).min(self.cpus.saturating_sub(busy));
        for _ in 0..woken {
            self.work_ready.notify_one();
        }
        queue.waking += woken;
        let room = self.cpus.saturating_sub(busy + woken);
        let spawn_now = (wanted - woken).min(room).min(self.room_to_grow(&queue));
        let spawned = self.spawn_workers(&mut queue, spawn_now);

        if wanted > woken + spawned {
            if !queue.monitor_alive {
                queue.monitor_alive = true;
                if std::thread::Builder::new()
                    .name("msgflux-monitor".into())
                    .spawn(move || self.monitor())
                    .is_err()
                {
                    queue.monitor_alive = false;
                }
            }
            self.monitor_wake.notify_one();
        }
        Ok(())
    }

    fn room_to_grow(&self, queue: &Queue) -> usize {
        let cap = self.config.max_workers() + self.nested_waiters.load(Ordering::Relaxed);
        cap.saturating_sub(queue.workers)
    }

    fn spawn_workers(&'static self, queue: &mut Queue, count: usize) -> usize {
        let mut spawned = 0;
        for _ in 0..count {
            let started = std::thread::Builder::new()
                .name("msgflux-worker".into())
                .stack_size(self.config.stack_size())
                .spawn(move || self.worker_main());
            if started.is_err() {
                // Out of threads: run with what exists, the monitor retries later.
                break;
            }
            queue.workers += 1;
            spawned += 1;
        }
        spawned
    }

    fn worker_main(&'static self) {
        IS_WORKER.with(|flag| flag.set(true));
        let mut queue = self.queue.lock();
        loop {
            // Lowering max_workers takes effect as workers come back here.
            let cap = self.config.max_workers() + self.nested_waiters.load(Ordering::Relaxed);
            if queue.workers > cap {
                break;
            }
            if let Some(batch) = next_batch(&mut queue) {
                drop(queue);
                let ran = Python::attach(|py| batch.run_claimed(py, &self.completed));
                if ran > 0 && matches!(batch.kind, Kind::Spawn) {
                    self.spawn_finished();
                }
                drop(batch);
                queue = self.queue.lock();
                continue;
            }
            if queue.shutdown {
                break;
            }
            queue.idle += 1;
            let (guard, timed_out) = self.work_ready.wait_for(queue, self.config.idle_timeout());
            queue = guard;
            queue.idle -= 1;
            queue.waking = queue.waking.saturating_sub(1);
            if timed_out && queue.batches.is_empty() {
                break;
            }
        }
        queue.workers -= 1;
    }

    /// Adds workers while queued work waits behind blocked ones; see the
    /// module documentation for the rule.
    fn monitor(&'static self) {
        let mut last_completed = self.completed.load(Ordering::Relaxed);
        let mut last_cpu = process_cpu_time();
        let mut last_tick = Instant::now();
        let mut stalled_ticks = 0;
        loop {
            {
                let mut queue = self.queue.lock();
                while !queue.shutdown && !has_waiting_work(&queue) {
                    let idle_for = self.config.idle_timeout();
                    let (guard, timed_out) = self.monitor_wake.wait_for(queue, idle_for);
                    queue = guard;
                    if timed_out && !has_waiting_work(&queue) {
                        queue.monitor_alive = false;
                        return;
                    }
                    last_completed = self.completed.load(Ordering::Relaxed);
                    last_cpu = process_cpu_time();
                    last_tick = Instant::now();
                    stalled_ticks = 0;
                }
                if queue.shutdown {
                    queue.monitor_alive = false;
                    return;
                }
            }
            std::thread::sleep(MONITOR_TICK);

            let completed = self.completed.load(Ordering::Relaxed);
            let cpu = process_cpu_time();
            let now = Instant::now();
            let progressed = completed != last_completed;
            let cores_busy = (cpu - last_cpu) / (now - last_tick).as_secs_f64().max(1e-6);
            last_completed = completed;
            last_cpu = cpu;
            last_tick = now;
            if progressed || cores_busy > self.cpus as f64 - 0.5 {
                stalled_ticks = 0;
                continue;
            }
            // Workers just woken for new work have not started yet; one quiet
            // tick is not enough to call them blocked.
            stalled_ticks += 1;
            if stalled_ticks < STALLED_TICKS_TO_GROW || !gil_is_free() {
                continue;
            }

            let mut queue = self.queue.lock();
            if queue.shutdown {
                continue;
            }
            let waiting: usize = queue.batches.iter().map(|b| b.board.claimable()).sum();
            // Idle workers cost nothing to start, so they go first.
            let sleeping = queue.idle.saturating_sub(queue.waking);
            if sleeping > 0 {
                let woken = waiting.min(sleeping);
                for _ in 0..woken {
                    self.work_ready.notify_one();
                }
                queue.waking += woken;
                continue;
            }
            let burst = waiting
                .min(self.room_to_grow(&queue))
                .min((queue.workers * 4).max(MIN_GROWTH));
            self.spawn_workers(&mut queue, burst);
        }
    }

    /// Marks the calling worker as blocked in a nested gather for the life of
    /// the returned guard, so the pool may replace it.
    pub fn completed_counter(&self) -> &AtomicU64 {
        &self.completed
    }

    pub fn nested_wait(&'static self) -> NestedWait {
        self.nested_waiters.fetch_add(1, Ordering::Relaxed);
        let queue = self.queue.lock();
        if has_waiting_work(&queue) {
            self.monitor_wake.notify_one();
        }
        NestedWait { pool: self }
    }

    /// Wakes one idle worker, for a batch whose concurrency limit just let
    /// another task start.
    pub fn wake_one(&self) {
        let _queue = self.queue.lock();
        self.work_ready.notify_one();
    }

    /// Wakes every idle worker so that those above a lowered `max_workers`
    /// exit now rather than after `idle_timeout`.
    pub fn wake_idle(&self) {
        let _queue = self.queue.lock();
        self.work_ready.notify_all();
    }

    pub fn spawn_started(&self) {
        *self.spawned_pending.lock() += 1;
    }

    pub fn spawn_finished(&self) {
        let mut pending = self.spawned_pending.lock();
        *pending -= 1;
        if *pending == 0 {
            self.spawned_done.notify_all();
        }
    }

    /// Waits until no spawned task is pending or `until` passes; returns how
    /// many are still pending.
    pub fn wait_spawned_until(&self, until: Instant) -> usize {
        let mut pending = self.spawned_pending.lock();
        while *pending > 0 {
            let (guard, timed_out) = self.spawned_done.wait_until(pending, until);
            pending = guard;
            if timed_out {
                break;
            }
        }
        *pending
    }

    /// Stops accepting work and lets idle workers exit. Workers inside a task
    /// finish it first; nothing waits for them.
    pub fn shutdown(&self) {
        let mut queue = self.queue.lock();
        queue.shutdown = true;
        for batch in queue.batches.drain(..) {
            batch.board.close();
        }
        self.work_ready.notify_all();
        self.monitor_wake.notify_all();
    }

    pub fn stats(&self) -> PoolStats {
        let queue = self.queue.lock();
        PoolStats {
            workers: queue.workers,
            idle: queue.idle,
            queued_tasks: queue.batches.iter().map(|b| b.board.unclaimed()).sum(),
            nested_waiters: self.nested_waiters.load(Ordering::Relaxed),
            spawned_pending: *self.spawned_pending.lock(),
        }
    }
}

pub struct PoolStats {
    pub workers: usize,
    pub idle: usize,
    pub queued_tasks: usize,
    pub nested_waiters: usize,
    pub spawned_pending: usize,
}

pub struct NestedWait {
    pool: &'static Pool,
}

impl Drop for NestedWait {
    fn drop(&mut self) {
        self.pool.nested_waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Returns the first batch with a task that may start now, dropping
/// exhausted batches from the front of the queue on the way. A batch held
/// back by its concurrency limit stays queued behind later ones.
fn next_batch(queue: &mut Queue) -> Option<Arc<BatchCore>> {
    while let Some(front) = queue.batches.front() {
        if front.board.unclaimed() > 0 && !front.board.is_closed() {
            break;
        }
        queue.batches.pop_front();
    }
    queue
        .batches
        .iter()
        .find(|b| b.board.claimable() > 0)
        .map(Arc::clone)
}

fn has_waiting_work(queue: &Queue) -> bool {
    queue.batches.iter().any(|b| b.board.claimable() > 0)
}

/// CPU seconds used by the whole process so far.
fn process_cpu_time() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return 0.0;
    }
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

fn gil_is_free() -> bool {
    let started = Instant::now();
    Python::attach(|_| ());
    started.elapsed() < GIL_BUSY_THRESHOLD
}
