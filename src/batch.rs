//! One gather (or one spawned call): its inputs, how a task runs, and how the
//! board's words become Python results.
//!
//! A slot word is an owned `PyObject` pointer. The low bit tags a failure, so
//! the pointer is then the exception object. CPython objects are at least
//! 8-byte aligned, which leaves the low bits free.

use crate::board::Board;
use crate::sync::Mutex;
use crate::task_error::TaskError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyTimeoutError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const FAILURE_TAG: usize = 1;

/// Either one object shared by every task or one object per task.
pub enum PerTask {
    Shared(Py<PyAny>),
    Each(Py<PyList>),
}

impl PerTask {
    fn get<'py>(&self, py: Python<'py>, index: usize) -> Bound<'py, PyAny> {
        match self {
            PerTask::Shared(object) => object.bind(py).clone(),
            // The list is a private copy made at submit time and never
            // resized, so the index is always in range.
            PerTask::Each(list) => list
                .bind(py)
                .get_item(index)
                .expect("index checked by board"),
        }
    }
}

/// Destination of a finished task's outcome.
pub enum Kind {
    /// Results go to slots that the caller collects.
    Gather,
    /// Fire and forget: failures go to the spawn failure hook.
    Spawn,
}

pub struct BatchCore {
    pub board: Board,
    pub kind: Kind,
    callables: PerTask,
    args: PerTask,
    kwargs: Option<PerTask>,
    context: Py<PyAny>,
    on_awaitable: Option<Py<PyAny>>,
    pub deadline: Option<Instant>,
    pub timeout: Option<f64>,
    interrupt: Mutex<Option<PyErr>>,
    on_finished: Mutex<Option<Py<PyAny>>>,
}

static SPAWN_FAILURE_HOOK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub fn set_spawn_failure_hook(py: Python<'_>, hook: Py<PyAny>) {
    let _ = SPAWN_FAILURE_HOOK.set(py, hook);
}

impl BatchCore {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        len: usize,
        kind: Kind,
        callables: PerTask,
        args: PerTask,
        kwargs: Option<PerTask>,
        context: Py<PyAny>,
        on_awaitable: Option<Py<PyAny>>,
        timeout: Option<f64>,
        max_concurrency: Option<usize>,
    ) -> Self {
        BatchCore {
            board: Board::with_limit(len, max_concurrency.unwrap_or(usize::MAX)),
            kind,
            callables,
            args,
            kwargs,
            context,
            on_awaitable,
            // A timeout too large for an Instant is no deadline at all.
            deadline: timeout
                .and_then(|t| std::time::Duration::try_from_secs_f64(t).ok())
                .and_then(|d| Instant::now().checked_add(d)),
            timeout,
            interrupt: Mutex::new(None),
            on_finished: Mutex::new(None),
        }
    }

    /// Runs claimed tasks until the board has none left, counting each in
    /// `completed` as it ends. Returns how many ran.
    pub fn run_claimed(
        self: &std::sync::Arc<Self>,
        py: Python<'_>,
        completed: &AtomicU64,
    ) -> usize {
        let mut ran = 0;
        while let Some(index) = self.board.claim() {
            self.run_one(py, index);
            // Only one thread runs Python at a time, so this counter is
            // rarely contended; the pool reads it to tell blocked from busy.
            completed.fetch_add(1, Ordering::Relaxed);
            ran += 1;
        }
        ran
    }

    /// Calls task `index` in a fresh copy of the caller's context and routes
    /// its outcome.
    pub fn run_one(self: &std::sync::Arc<Self>, py: Python<'_>, index: usize) {
        let context = match copy_context(py, &self.context) {
            Ok(context) => context,
            Err(err) => return self.finish(py, index, Err(err)),
        };
        // PyO3 re-raises a Rust panic as a panic when it fetches the
        // PanicException it became, so a task that calls into Rust code that
        // panicked unwinds to here. It must still fill its slot.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.call_in(py, index, &context)
        }))
        .unwrap_or_else(|payload| Err(panic_to_error(payload)));
        match outcome {
            Ok(value) if is_awaitable(&value) => self.hand_off(py, index, value, context),
            other => self.finish(py, index, other),
        }
    }

    /// Calls task `index` inside `context`, which must not be entered yet.
    pub fn call_in<'py>(
        &self,
        py: Python<'py>,
        index: usize,
        context: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let callable = self.callables.get(py, index);
        let args = self.args.get(py, index);
        let args = args.cast::<PyTuple>().map_err(PyErr::from)?;
        let kwargs = self.kwargs.as_ref().map(|per_task| per_task.get(py, index));
        let kwargs = match &kwargs {
            Some(k) if !k.is_none() => Some(k.cast::<PyDict>().map_err(PyErr::from)?),
            _ => None,
        };

        let entered = EnteredContext::enter(context)?;
        let result = crate::unwind::call(&callable, args, kwargs);
        entered.exit().and(result)
    }

    fn hand_off(
        self: &std::sync::Arc<Self>,
        py: Python<'_>,
        index: usize,
        awaitable: Bound<'_, PyAny>,
        context: Bound<'_, PyAny>,
    ) {
        let Some(hook) = &self.on_awaitable else {
            let err = PyTypeError::new_err(
                "the callable returned an awaitable but no event loop is available to run it",
            );
            return self.finish(py, index, Err(err));
        };
        let handle = match Py::new(py, PyBatch { core: self.clone() }) {
            Ok(handle) => handle,
            Err(err) => return self.finish(py, index, Err(err)),
        };
        // From here the hook owns the slot: it fills it when the awaitable ends.
        if let Err(err) = crate::unwind::call1(hook.bind(py), (handle, index, awaitable, context)) {
            self.finish(py, index, Err(err));
        }
    }

    /// Stores the outcome of task `index`, or for spawned work reports it.
    pub fn finish(&self, py: Python<'_>, index: usize, outcome: PyResult<Bound<'_, PyAny>>) {
        // A pool worker claims the next task itself; completions arriving
        // from an event loop must wake one.
        if self.board.release() && !crate::pool::on_worker_thread() {
            if let Ok(pool) = crate::pool::pool() {
                pool.wake_one();
            }
        }
        let outcome = match outcome {
            Err(err)
                if matches!(self.kind, Kind::Gather)
                    && err.is_instance_of::<PyKeyboardInterrupt>(py) =>
            {
                self.interrupt.lock().get_or_insert(err);
                self.board.close();
                self.notify_finished(py);
                return;
            }
            other => other,
        };
        match self.kind {
            Kind::Gather => {
                let word = match outcome {
                    Ok(value) => value.unbind().into_ptr() as usize,
                    Err(err) => err.into_value(py).into_ptr() as usize | FAILURE_TAG,
                };
                match self.board.fill(index, word) {
                    Ok(true) => self.notify_finished(py),
                    Ok(false) => {}
                    // The caller already collected the slot: the result is late.
                    Err(word) => release_word(py, word),
                }
            }
            Kind::Spawn => {
                if let Err(err) = outcome {
                    report_spawn_failure(py, err, &self.callables.get(py, index));
                }
            }
        }
    }

    /// Calls the finish callback once, if one is set.
    fn notify_finished(&self, py: Python<'_>) {
        let callback = self.on_finished.lock().take();
        if let Some(callback) = callback {
            if let Err(err) = crate::unwind::call1(callback.bind(py), ()) {
                err.write_unraisable(py, Some(callback.bind(py)));
            }
        }
    }

    /// Takes the interrupt raised inside a task, if any.
    pub fn take_interrupt(&self) -> Option<PyErr> {
        self.interrupt.lock().take()
    }

    /// Closes the board and turns every slot into its result: the value, a
    /// `TaskError` for a failure, or a `TaskError(TimeoutError)` for a task
    /// that had not finished.
    pub fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.board.close();
        let len = self.board.len();
        let words: Vec<usize> = (0..len).map(|i| self.board.seal(i)).collect();
        let unfinished = words.iter().filter(|&&w| w == 0).count();

        // One TimeoutError serves every unfinished slot: building one per slot
        // would put work proportional to the batch after the deadline.
        let timeout_error = if unfinished > 0 {
            Some(self.timeout_error(py, unfinished))
        } else {
            None
        };
        let mut items = Vec::with_capacity(len);
        let mut words = words.into_iter().enumerate();
        let mut pending_error = None;
        for (index, word) in words.by_ref() {
            let item = if word == 0 {
                let exc = timeout_error
                    .as_ref()
                    .expect("set when a slot is unfinished");
                TaskError::create(py, index, exc.clone_ref(py)).map(|e| e.into_bound(py))
            } else if word & FAILURE_TAG != 0 {
                // SAFETY: tagged words are owned exception pointers stored by `finish`.
                let exc = unsafe { Bound::from_owned_ptr(py, (word & !FAILURE_TAG) as *mut _) };
                TaskError::create(py, index, exc.unbind()).map(|e| e.into_bound(py))
            } else {
                // SAFETY: untagged words are owned object pointers stored by `finish`.
                Ok(unsafe { Bound::from_owned_ptr(py, word as *mut _) })
            };
            match item {
                Ok(item) => items.push(item),
                Err(err) => {
                    pending_error = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = pending_error {
            // Release what the loop above did not reach before reporting.
            for (_, word) in words {
                release_word(py, word);
            }
            return Err(err);
        }
        PyTuple::new(py, items)
    }

    /// Seals every slot and drops what was in it, for a caller that leaves
    /// without results (Ctrl-C).
    pub fn discard(&self, py: Python<'_>) {
        self.board.close();
        for index in 0..self.board.len() {
            release_word(py, self.board.seal(index));
        }
    }

    fn timeout_error(&self, py: Python<'_>, unfinished: usize) -> Py<PyAny> {
        let limit = self.timeout.unwrap_or(0.0);
        let message = format!(
            "task did not finish within the {limit} s timeout \
             ({unfinished} of {} tasks unfinished)",
            self.board.len()
        );
        PyTimeoutError::new_err(message).into_value(py).into_any()
    }
}

impl Drop for BatchCore {
    fn drop(&mut self) {
        // Slots that still contain objects belong to a batch that was never collected.
        let len = self.board.len();
        if (0..len).all(|i| self.board.peek(i) == 0) {
            return;
        }
        Python::try_attach(|py| {
            for index in 0..len {
                release_word(py, self.board.seal(index));
            }
        });
    }
}

fn release_word(py: Python<'_>, word: usize) {
    if word == 0 || word == crate::board::SEALED {
        return;
    }
    // SAFETY: non-zero, non-sealed words are owned pointers stored by `finish`.
    drop(unsafe { Bound::<PyAny>::from_owned_ptr(py, (word & !FAILURE_TAG) as *mut _) });
}

/// A context entered on this thread; leaving it is guaranteed even when a
/// panic unwinds past the task call.
struct EnteredContext<'a, 'py> {
    context: &'a Bound<'py, PyAny>,
}

impl<'a, 'py> EnteredContext<'a, 'py> {
    fn enter(context: &'a Bound<'py, PyAny>) -> PyResult<Self> {
        // SAFETY: `context` is a live contextvars.Context and the GIL is held.
        if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(context.py()));
        }
        Ok(EnteredContext { context })
    }

    fn exit(self) -> PyResult<()> {
        let context = self.context;
        std::mem::forget(self);
        // SAFETY: the context was entered on this thread by `enter`. Failure
        // means a task left a context of its own entered, which Python forbids.
        if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(context.py()));
        }
        Ok(())
    }
}

impl Drop for EnteredContext<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: as in `exit`; only reached while unwinding from a panic.
        if unsafe { ffi::PyContext_Exit(self.context.as_ptr()) } != 0 {
            drop(PyErr::take(self.context.py()));
        }
    }
}

fn panic_to_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let message = if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_string()
    };
    pyo3::panic::PanicException::new_err(message)
}

fn copy_context<'py>(py: Python<'py>, context: &Py<PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `context` is a contextvars.Context (checked when the batch was
    // built) and the GIL is held. PyContext_Copy returns a new reference or NULL.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_Copy(context.as_ptr())) }
}

/// True for coroutines, futures and anything else with `__await__`.
fn is_awaitable(value: &Bound<'_, PyAny>) -> bool {
    // SAFETY: reading the type slots of a live object while holding the GIL.
    unsafe {
        let ty = ffi::Py_TYPE(value.as_ptr());
        let slots = (*ty).tp_as_async;
        !slots.is_null() && (*slots).am_await.is_some()
    }
}

fn report_spawn_failure(py: Python<'_>, err: PyErr, callable: &Bound<'_, PyAny>) {
    let exc = err.into_value(py);
    match SPAWN_FAILURE_HOOK.get(py) {
        Some(hook) => {
            if let Err(hook_error) = crate::unwind::call1(hook.bind(py), (exc, callable)) {
                hook_error.write_unraisable(py, Some(callable));
            }
        }
        None => {
            PyErr::from_value(exc.into_bound(py).into_any()).write_unraisable(py, Some(callable))
        }
    }
}

/// A gather's handle on the Python side.
#[pyclass(module = "msgflux._core", name = "Batch", frozen)]
pub struct PyBatch {
    pub core: std::sync::Arc<BatchCore>,
}

#[pymethods]
impl PyBatch {
    /// Stores the result of a task that finished on an event loop.
    fn set_result(&self, py: Python<'_>, index: usize, value: Bound<'_, PyAny>) -> PyResult<()> {
        self.check_index(index)?;
        self.core.finish(py, index, Ok(value));
        Ok(())
    }

    /// Stores the exception of a task that failed on an event loop.
    fn set_exception(&self, py: Python<'_>, index: usize, exc: Bound<'_, PyAny>) -> PyResult<()> {
        self.check_index(index)?;
        let err = PyErr::from_value(exc);
        self.core.finish(py, index, Err(err));
        Ok(())
    }

    /// Claims the next unstarted task, or returns None.
    fn claim(&self) -> Option<usize> {
        self.core.board.claim()
    }

    /// Calls task `index` in a fresh copy of the caller's context and returns
    /// `(result, context)`; exceptions propagate.
    fn call<'py>(
        &self,
        py: Python<'py>,
        index: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        self.check_index(index)?;
        let context = copy_context(py, &self.core.context)?;
        let result = self.core.call_in(py, index, &context)?;
        Ok((result, context))
    }

    /// Calls `callback()` once when every slot is filled or a task raised
    /// `KeyboardInterrupt`; at once if that already happened. It may run on
    /// any thread, so it must be thread-safe (the async API passes
    /// `loop.call_soon_threadsafe`).
    /// None removes a callback that has not run yet.
    fn set_finish_callback(&self, py: Python<'_>, callback: Option<Py<PyAny>>) -> PyResult<()> {
        let mut slot = self.core.on_finished.lock();
        match callback {
            Some(callback) if self.core.board.is_finished() => {
                drop(slot);
                callback.bind(py).call0()?;
            }
            callback => *slot = callback,
        }
        Ok(())
    }

    /// Closes the batch and returns the results without waiting: unfinished
    /// tasks get `TaskError(TimeoutError)` slots. Raises the
    /// `KeyboardInterrupt` a task raised, if any.
    fn collect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(err) = self.core.take_interrupt() {
            self.core.discard(py);
            return Err(err);
        }
        self.core.collect(py)
    }

    /// Stops every task that has not started.
    fn cancel(&self) {
        self.core.board.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.board.is_closed()
    }

    fn __len__(&self) -> usize {
        self.core.board.len()
    }

    /// Seconds left before the deadline, None without one.
    fn remaining(&self) -> Option<f64> {
        self.core
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs_f64())
    }

    /// Blocks until every task finished or the deadline passed, then returns
    /// the results in input order. See `wait::wait_batch`.
    #[pyo3(signature = (progress=None))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        crate::wait::wait_batch(py, &self.core, progress.as_ref())
    }

    /// Number of tasks that have finished.
    fn done(&self) -> usize {
        self.core.board.filled()
    }
}

impl PyBatch {
    fn check_index(&self, index: usize) -> PyResult<()> {
        if index >= self.core.board.len() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "task index {index} is out of range for a batch of {} tasks",
                self.core.board.len()
            )));
        }
        Ok(())
    }
}
