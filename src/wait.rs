//! Waiting for a batch without the GIL, in slices that let Ctrl-C through.

use crate::batch::BatchCore;
use crate::board::WaitOutcome;
use crate::pool::{on_worker_thread, pool};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Maximum time the caller sleeps before it checks for signals. Python runs
/// signal handlers only when the main thread re-enters the interpreter.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// Waits until every task of `core` finished, its deadline passed, Ctrl-C
/// arrived, or a task raised `KeyboardInterrupt`, then collects the results.
///
/// A pool worker that waits (nested fan-out) first runs unclaimed tasks of its
/// own batch itself when there is no deadline, so nesting cannot deadlock even
/// with a single worker. With a deadline it does not, because a task it ran
/// could outlast the deadline; instead it counts as blocked and the pool may
/// add a worker above `max_workers` to take its place.
///
/// `progress`, when given, is called as `progress(done, total)` on this thread
/// each time the number of finished tasks changed, at most once per signal
/// check interval, and once more at the end.
pub fn wait_batch<'py>(
    py: Python<'py>,
    core: &Arc<BatchCore>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let pool = pool().map_err(PyValueError::new_err)?;
    let _nested = if on_worker_thread() {
        if core.deadline.is_none() {
            core.run_claimed(py, pool.completed_counter());
        }
        Some(pool.nested_wait())
    } else {
        None
    };

    let total = core.board.len();
    let mut reported = usize::MAX;
    let mut report = || -> PyResult<()> {
        let Some(callback) = progress else {
            return Ok(());
        };
        let done = core.board.filled();
        if done != reported {
            reported = done;
            crate::unwind::call1(callback, (done, total))?;
        }
        Ok(())
    };

    loop {
        if let Err(err) = report() {
            core.discard(py);
            return Err(err);
        }
        let now = Instant::now();
        let slice_end = match core.deadline {
            Some(deadline) => deadline.min(now + SIGNAL_CHECK_INTERVAL),
            None => now + SIGNAL_CHECK_INTERVAL,
        };
        let board = &core.board;
        if py.detach(|| board.wait_until(slice_end)) == WaitOutcome::Finished {
            break;
        }
        if core
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        if let Err(err) = py.check_signals() {
            core.discard(py);
            return Err(err);
        }
    }

    if let Some(err) = core.take_interrupt() {
        core.discard(py);
        return Err(err);
    }
    let results = core.collect(py)?;
    report()?;
    Ok(results)
}
