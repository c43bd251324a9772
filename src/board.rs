//! Ordered result slots for one batch, with claiming, a countdown and closing.
//!
//! A board has no Python types. Each slot stores one word: zero while
//! the task is unfinished, a caller-defined non-zero word once a result arrives,
//! or [`SEALED`] once the batch has been collected or timed out. The owner of
//! the board decides what a word means (here, a tagged `PyObject` pointer).
//!
//! The protocol that makes deadlines exact:
//! - a worker may start task `i` only after [`Board::claim`] returned `i`;
//! - [`Board::close`] makes every later claim fail, so a task that was not
//!   claimed before the close never starts;
//! - [`Board::fill`] and [`Board::seal`] race on one compare-and-swap per slot,
//!   so a result either lands before the seal or is handed back to be dropped.

use crate::sync::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// The word of a slot whose task did not finish before it was collected.
/// Odd values above 1 are never produced by aligned pointers with a tag bit.
pub const SEALED: usize = 0b110;

/// Outcome of a wait on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every slot was filled or the board was closed early.
    Finished,
    /// The given instant passed first.
    Elapsed,
}

pub struct Board {
    len: usize,
    /// Most tasks claimed but not yet filled at once; `usize::MAX` for none.
    limit: usize,
    running: AtomicUsize,
    next: AtomicUsize,
    remaining: AtomicUsize,
    closed: AtomicBool,
    slots: Box<[AtomicUsize]>,
    finished: Mutex<bool>,
    finished_cv: Condvar,
}

impl Board {
    pub fn new(len: usize) -> Self {
        Self::with_limit(len, usize::MAX)
    }

    /// Creates a board on which at most `limit` claimed tasks run at once.
    /// A claim fails while that many are unfinished, until [`Board::release`].
    pub fn with_limit(len: usize, limit: usize) -> Self {
        let slots = (0..len).map(|_| AtomicUsize::new(0)).collect();
        Board {
            len,
            limit: limit.max(1),
            running: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            remaining: AtomicUsize::new(len),
            closed: AtomicBool::new(false),
            slots,
            finished: Mutex::new(len == 0),
            finished_cv: Condvar::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Claims the next unstarted task, or returns `None` when every task has
    /// been claimed or the board is closed.
    #[inline]
    pub fn claim(&self) -> Option<usize> {
        // A plain load first keeps exhausted boards from pushing `next` upward
        // forever when many workers poll them.
        if self.next.load(Ordering::Relaxed) >= self.len {
            return None;
        }
        if self.limit == usize::MAX {
            let index = self.next.fetch_add(1, Ordering::AcqRel);
            return (index < self.len).then_some(index);
        }
        // Reserve a running place first, so `next` only moves for a task
        // that may start.
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        if index < self.len {
            return Some(index);
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Ends a claimed task's hold on the concurrency limit. Returns true when
    /// that let another task become claimable.
    pub fn release(&self) -> bool {
        if self.limit == usize::MAX {
            return false;
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
        self.claimable() > 0
    }

    /// Number of tasks that could be claimed right now.
    pub fn claimable(&self) -> usize {
        if self.is_closed() {
            return 0;
        }
        let unclaimed = self.unclaimed();
        if self.limit == usize::MAX {
            return unclaimed;
        }
        let running = self.running.load(Ordering::Acquire);
        unclaimed.min(self.limit.saturating_sub(running))
    }

    /// Number of tasks whose slot has been filled.
    pub fn filled(&self) -> usize {
        self.len - self.remaining.load(Ordering::Acquire)
    }

    /// Number of tasks that may still be claimed.
    pub fn unclaimed(&self) -> usize {
        self.len.saturating_sub(self.next.load(Ordering::Relaxed))
    }

    /// Stores the result word of task `index`; `Ok(true)` means this was the
    /// last unfinished slot. Returns the word back when the slot was already
    /// sealed, so the caller can release what it points to.
    #[inline]
    pub fn fill(&self, index: usize, word: usize) -> Result<bool, usize> {
        debug_assert!(word != 0 && word != SEALED);
        match self.slots[index].compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.mark_finished();
                    return Ok(true);
                }
                Ok(false)
            }
            Err(_) => Err(word),
        }
    }

    /// Stops every later claim and wakes the waiter. Returns how many tasks had
    /// been claimed (started) before the close.
    pub fn close(&self) -> usize {
        self.closed.store(true, Ordering::Release);
        // usize::MAX / 2 leaves room for the fetch_add of late claimers.
        let claimed = self
            .next
            .swap(usize::MAX / 2, Ordering::AcqRel)
            .min(self.len);
        self.mark_finished();
        claimed
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the word of slot `index` and leaves the slot sealed. Returns 0
    /// when the task had not finished, in which case a later `fill` fails.
    pub fn seal(&self, index: usize) -> usize {
        let word = self.slots[index].swap(SEALED, Ordering::AcqRel);
        if word == SEALED {
            0
        } else {
            word
        }
    }

    /// Returns the word of slot `index` without taking it.
    pub fn peek(&self, index: usize) -> usize {
        match self.slots[index].load(Ordering::Acquire) {
            SEALED => 0,
            word => word,
        }
    }

    /// Blocks until the board is finished or `until` passes.
    pub fn wait_until(&self, until: Instant) -> WaitOutcome {
        let mut finished = self.finished.lock();
        while !*finished {
            let (guard, timed_out) = self.finished_cv.wait_until(finished, until);
            finished = guard;
            if timed_out {
                return if *finished {
                    WaitOutcome::Finished
                } else {
                    WaitOutcome::Elapsed
                };
            }
        }
        WaitOutcome::Finished
    }

    pub fn is_finished(&self) -> bool {
        *self.finished.lock()
    }

    fn mark_finished(&self) {
        let mut finished = self.finished.lock();
        if !*finished {
            *finished = true;
            self.finished_cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn claims_each_index_once_in_order() {
        let board = Board::new(3);
        assert_eq!(board.claim(), Some(0));
        assert_eq!(board.claim(), Some(1));
        assert_eq!(board.claim(), Some(2));
        assert_eq!(board.claim(), None);
        assert_eq!(board.unclaimed(), 0);
    }

    #[test]
    fn empty_board_is_finished_at_once() {
        let board = Board::new(0);
        assert!(board.is_finished());
        assert_eq!(board.wait_until(Instant::now()), WaitOutcome::Finished);
    }

    #[test]
    fn last_fill_finishes_the_board() {
        let board = Board::new(2);
        assert_eq!(board.fill(1, 8), Ok(false));
        assert!(!board.is_finished());
        assert_eq!(board.fill(0, 16), Ok(true));
        assert!(board.is_finished());
        assert_eq!(board.seal(0), 16);
        assert_eq!(board.seal(1), 8);
    }

    #[test]
    fn close_stops_later_claims() {
        let board = Board::new(4);
        board.claim().unwrap();
        assert_eq!(board.close(), 1);
        assert_eq!(board.claim(), None);
        assert!(board.is_closed());
        assert!(board.is_finished());
    }

    #[test]
    fn fill_after_seal_hands_the_word_back() {
        let board = Board::new(1);
        assert_eq!(board.seal(0), 0);
        assert_eq!(board.fill(0, 24), Err(24));
    }

    #[test]
    fn wait_until_reports_elapsed_deadline() {
        let board = Board::new(1);
        let until = Instant::now() + Duration::from_millis(20);
        assert_eq!(board.wait_until(until), WaitOutcome::Elapsed);
        assert!(Instant::now() >= until);
    }

    #[test]
    fn limited_board_claims_no_more_than_its_limit_until_released() {
        let board = Board::with_limit(5, 2);
        assert_eq!(board.claim(), Some(0));
        assert_eq!(board.claim(), Some(1));
        assert_eq!(board.claim(), None);
        assert_eq!(board.claimable(), 0);
        assert!(board.release());
        assert_eq!(board.claim(), Some(2));
        assert_eq!(board.unclaimed(), 2);
    }

    #[test]
    fn concurrent_claims_never_exceed_the_limit() {
        let limit = 3;
        let board = Arc::new(Board::with_limit(20_000, limit));
        let running = Arc::new(AtomicUsize::new(0));
        let highest = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (board, running, highest) = (
                    Arc::clone(&board),
                    Arc::clone(&running),
                    Arc::clone(&highest),
                );
                thread::spawn(move || {
                    while board.unclaimed() > 0 {
                        if let Some(i) = board.claim() {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            highest.fetch_max(now, Ordering::SeqCst);
                            running.fetch_sub(1, Ordering::SeqCst);
                            board.fill(i, 8).unwrap();
                            board.release();
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(highest.load(Ordering::SeqCst) <= limit);
        assert!(board.is_finished());
    }

    #[test]
    fn concurrent_workers_fill_every_slot_exactly_once() {
        let len = 100_000;
        let board = Arc::new(Board::new(len));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let board = Arc::clone(&board);
                thread::spawn(move || {
                    let mut count = 0;
                    while let Some(i) = board.claim() {
                        board.fill(i, (i + 1) * 8).unwrap();
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, len);
        assert_eq!(board.wait_until(Instant::now()), WaitOutcome::Finished);
        for i in 0..len {
            assert_eq!(board.seal(i), (i + 1) * 8);
        }
    }

    #[test]
    fn close_races_with_workers_without_losing_or_doubling_results() {
        for _ in 0..200 {
            let len = 64;
            let board = Arc::new(Board::new(len));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let board = Arc::clone(&board);
                    thread::spawn(move || {
                        let mut started = Vec::new();
                        let mut rejected = 0;
                        while let Some(i) = board.claim() {
                            started.push(i);
                            if board.fill(i, (i + 1) * 8).is_err() {
                                rejected += 1;
                            }
                        }
                        (started, rejected)
                    })
                })
                .collect();
            let claimed = board.close();
            let mut sealed_values = 0;
            let mut unfinished = 0;
            for i in 0..len {
                match board.seal(i) {
                    0 => unfinished += 1,
                    word => {
                        assert_eq!(word, (i + 1) * 8);
                        sealed_values += 1;
                    }
                }
            }
            let mut started = Vec::new();
            let mut rejected = 0;
            for handle in workers {
                let (s, r) = handle.join().unwrap();
                started.extend(s);
                rejected += r;
            }
            // Every started task was claimed before the close, and each of
            // them either reached its slot or was handed back.
            assert_eq!(started.len(), claimed);
            assert_eq!(sealed_values + rejected, claimed);
            assert_eq!(sealed_values + unfinished, len);
        }
    }
}
