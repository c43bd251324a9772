//! Pool limits, read from the environment once and changeable from Python.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Default ceiling on worker threads. It is high because most tasks handed to
/// msgflux block on I/O, and 1,000 concurrent blocking calls must not queue.
pub const DEFAULT_MAX_WORKERS: usize = 1024;
/// How long a worker stays parked without work before it exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack of each worker thread. Python frames live on the heap, so this only
/// bounds C-level recursion inside tasks.
pub const DEFAULT_STACK_SIZE: usize = 4 << 20;

pub struct Config {
    max_workers: AtomicUsize,
    idle_timeout_ms: AtomicU64,
    stack_size: AtomicUsize,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let max_workers = env_number("MSGFLUX_MAX_WORKERS", DEFAULT_MAX_WORKERS as f64)?;
        if max_workers < 1.0 || max_workers.fract() != 0.0 {
            return Err(format!(
                "MSGFLUX_MAX_WORKERS must be a whole number of at least 1, got {max_workers}"
            ));
        }
        let idle = env_number("MSGFLUX_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT.as_secs_f64())?;
        if !(idle > 0.0 && idle.is_finite()) {
            return Err(format!(
                "MSGFLUX_IDLE_TIMEOUT must be a positive number of seconds, got {idle}"
            ));
        }
        Ok(Config {
            max_workers: AtomicUsize::new(max_workers as usize),
            idle_timeout_ms: AtomicU64::new((idle * 1000.0).ceil() as u64),
            stack_size: AtomicUsize::new(DEFAULT_STACK_SIZE),
        })
    }

    pub fn max_workers(&self) -> usize {
        self.max_workers.load(Ordering::Relaxed)
    }

    pub fn set_max_workers(&self, value: usize) {
        self.max_workers.store(value.max(1), Ordering::Relaxed);
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    pub fn set_idle_timeout(&self, value: Duration) {
        let ms = value.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.idle_timeout_ms.store(ms, Ordering::Relaxed);
    }

    pub fn stack_size(&self) -> usize {
        self.stack_size.load(Ordering::Relaxed)
    }
}

fn env_number(name: &str, default: f64) -> Result<f64, String> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{name} must be a number, got {text:?}")),
        _ => Ok(default),
    }
}
