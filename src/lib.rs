//! The compiled core of msgflux: worker pool, batches, deadlines and waiting.
//! Python reaches it as `msgflux._core`; the public API lives in Python.

mod batch;
mod board;
mod config;
mod gather;
mod pool;
mod sync;
mod task_error;
mod unwind;
mod wait;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::{Duration, Instant};

fn current_pool() -> PyResult<&'static pool::Pool> {
    // The only failure is an invalid limit in the environment.
    pool::pool().map_err(PyValueError::new_err)
}

/// Changes the pool's limits; None leaves a limit as it is. Returns the
/// limits now in force.
#[pyfunction]
#[pyo3(signature = (max_workers=None, idle_timeout=None))]
fn configure<'py>(
    py: Python<'py>,
    max_workers: Option<usize>,
    idle_timeout: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let pool = current_pool()?;
    if let Some(n) = max_workers {
        if n == 0 {
            return Err(PyValueError::new_err(
                "max_workers must be at least 1, got 0",
            ));
        }
        pool.config.set_max_workers(n);
        pool.wake_idle();
    }
    if let Some(seconds) = idle_timeout {
        if !(seconds > 0.0 && seconds.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "idle_timeout must be a positive number of seconds, got {seconds}"
            )));
        }
        pool.config
            .set_idle_timeout(Duration::from_secs_f64(seconds));
    }
    let limits = PyDict::new(py);
    limits.set_item("max_workers", pool.config.max_workers())?;
    limits.set_item("idle_timeout", pool.config.idle_timeout().as_secs_f64())?;
    Ok(limits)
}

/// Returns a snapshot of the pool: thread counts and queued work.
#[pyfunction]
fn pool_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let stats = current_pool()?.stats();
    let out = PyDict::new(py);
    out.set_item("workers", stats.workers)?;
    out.set_item("idle", stats.idle)?;
    out.set_item("queued_tasks", stats.queued_tasks)?;
    out.set_item("nested_waiters", stats.nested_waiters)?;
    out.set_item("spawned_pending", stats.spawned_pending)?;
    Ok(out)
}

/// Waits up to `timeout` seconds for spawned sync tasks to finish, without
/// the GIL. Returns how many are still running.
#[pyfunction]
fn wait_spawned(py: Python<'_>, timeout: f64) -> PyResult<usize> {
    let Some(pool) = pool::existing_pool() else {
        return Ok(0);
    };
    let until = Instant::now()
        .checked_add(Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX))
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
    loop {
        let slice_end = until.min(Instant::now() + Duration::from_millis(20));
        let pending = py.detach(|| pool.wait_spawned_until(slice_end));
        if pending == 0 || Instant::now() >= until {
            return Ok(pending);
        }
        py.check_signals()?;
    }
}

/// Stops the pool from taking new work; used at interpreter exit.
#[pyfunction]
fn shutdown() {
    if let Some(pool) = pool::existing_pool() {
        pool.shutdown();
    }
}

/// Drops the parent's pool in a forked child; see `pool::forget_after_fork`.
#[pyfunction]
fn after_fork_in_child() {
    pool::forget_after_fork();
}

/// Sets the function called as `hook(exception, callable)` when a spawned
/// task fails. It can be set once.
#[pyfunction]
fn set_spawn_failure_hook(py: Python<'_>, hook: Py<PyAny>) {
    batch::set_spawn_failure_hook(py, hook);
}

/// Panics with `message`, to test that a Rust panic reaches Python as an
/// exception instead of aborting the process.
#[pyfunction]
fn _panic(message: &str) {
    panic!("{message}");
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<batch::PyBatch>()?;
    m.add_class::<task_error::TaskError>()?;
    m.add_function(wrap_pyfunction!(gather::new_batch, m)?)?;
    m.add_function(wrap_pyfunction!(gather::submit, m)?)?;
    m.add_function(wrap_pyfunction!(gather::spawn, m)?)?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(pool_stats, m)?)?;
    m.add_function(wrap_pyfunction!(wait_spawned, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(set_spawn_failure_hook, m)?)?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    Ok(())
}
