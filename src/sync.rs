//! Mutex and condition variable over `std::sync`, ignoring poisoning.
//!
//! std's Linux primitives are one futex word each, with no process-wide
//! state. parking_lot keeps a global table of wait queues whose locks may be
//! held by another thread at `fork()`, which deadlocks the child's next wait;
//! msgflux must keep working in forked children, so it uses std.

use std::sync::{PoisonError, WaitTimeoutResult};
use std::time::{Duration, Instant};

pub use std::sync::MutexGuard;

pub struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    /// Locks the mutex. A panic while it was held leaves data that is still
    /// consistent here (counters and queues updated in single steps), so
    /// poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
pub struct Condvar(std::sync::Condvar);

impl Condvar {
    pub const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    /// Waits for a notification or until `timeout` passes. Returns the guard
    /// and whether the wait timed out.
    pub fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (guard, result): (_, WaitTimeoutResult) = self
            .0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        (guard, result.timed_out())
    }

    /// Waits for a notification or until the instant `until`.
    pub fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        until: Instant,
    ) -> (MutexGuard<'a, T>, bool) {
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return (guard, true);
        }
        self.wait_for(guard, timeout)
    }

    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}
