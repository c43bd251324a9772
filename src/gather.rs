//! Building batches from Python inputs and handing them to the pool.

use crate::batch::{BatchCore, Kind, PerTask, PyBatch};
use crate::pool::pool;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::sync::Arc;

/// Builds a batch of `len` tasks without starting it.
///
/// Each of `callables`, `args` and `kwargs` is either a list with one entry per
/// task or one object shared by all tasks: a callable, a tuple, and a dict or
/// None. Lists must be private copies: argument lists are converted to tuples
/// in place. `context` is the caller's `contextvars.Context`; every task runs
/// in its own copy. Every check happens here, before any task can start.
#[pyfunction]
#[pyo3(signature = (len, callables, args, kwargs, context, timeout, on_awaitable, max_concurrency=None))]
#[allow(clippy::too_many_arguments)]
pub fn new_batch(
    py: Python<'_>,
    len: usize,
    callables: Bound<'_, PyAny>,
    args: Bound<'_, PyAny>,
    kwargs: Bound<'_, PyAny>,
    context: Bound<'_, PyAny>,
    timeout: Option<f64>,
    on_awaitable: Option<Py<PyAny>>,
    max_concurrency: Option<usize>,
) -> PyResult<PyBatch> {
    if max_concurrency == Some(0) {
        return Err(PyValueError::new_err(
            "max_concurrency must be at least 1, got 0; pass None for no limit",
        ));
    }
    let callables = per_task_callables(&callables, len)?;
    let args = per_task_args(&args, len)?;
    let kwargs = per_task_kwargs(&kwargs, len)?;
    check_context(&context)?;
    if let Some(t) = timeout {
        if !(t > 0.0 && t.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {t}"
            )));
        }
    }
    let core = BatchCore::new(
        len,
        Kind::Gather,
        callables,
        args,
        kwargs,
        context.unbind(),
        on_awaitable,
        timeout,
        max_concurrency,
    );
    let _ = py;
    Ok(PyBatch {
        core: Arc::new(core),
    })
}

/// Queues a batch on the worker pool.
#[pyfunction]
pub fn submit(batch: &Bound<'_, PyBatch>) -> PyResult<()> {
    let core = Arc::clone(&batch.get().core);
    pool()
        .map_err(PyValueError::new_err)?
        .submit(core)
        .map_err(PyRuntimeError::new_err)
}

/// Runs `callable(*args, **kwargs)` on the pool without waiting. Failures go
/// to the spawn failure hook; an awaitable result goes to `on_awaitable`.
#[pyfunction]
#[pyo3(signature = (callable, args, kwargs, context, on_awaitable))]
pub fn spawn(
    callable: Bound<'_, PyAny>,
    args: Bound<'_, PyAny>,
    kwargs: Bound<'_, PyAny>,
    context: Bound<'_, PyAny>,
    on_awaitable: Option<Py<PyAny>>,
) -> PyResult<()> {
    let callables = per_task_callables(&callable, 1)?;
    let args = per_task_args(&args, 1)?;
    let kwargs = per_task_kwargs(&kwargs, 1)?;
    check_context(&context)?;
    let core = BatchCore::new(
        1,
        Kind::Spawn,
        callables,
        args,
        kwargs,
        context.unbind(),
        on_awaitable,
        None,
        None,
    );
    let pool = pool().map_err(PyValueError::new_err)?;
    pool.spawn_started();
    if let Err(message) = pool.submit(Arc::new(core)) {
        pool.spawn_finished();
        return Err(PyRuntimeError::new_err(message));
    }
    Ok(())
}

fn per_task_callables(value: &Bound<'_, PyAny>, len: usize) -> PyResult<PerTask> {
    if let Ok(list) = value.cast::<PyList>() {
        check_len("callables", list.len(), len)?;
        for (index, item) in list.iter().enumerate() {
            if !item.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "item {index} of the callables is not callable: got {}; \
                     pass functions, async functions or objects with __call__",
                    describe(&item)
                )));
            }
        }
        return Ok(PerTask::Each(list.clone().unbind()));
    }
    if !value.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "the task must be callable, got {}",
            describe(value)
        )));
    }
    Ok(PerTask::Shared(value.clone().unbind()))
}

fn per_task_args(value: &Bound<'_, PyAny>, len: usize) -> PyResult<PerTask> {
    if let Ok(list) = value.cast::<PyList>() {
        check_len("args_list", list.len(), len)?;
        for (index, item) in list.iter().enumerate() {
            if item.is_instance_of::<PyTuple>() {
                continue;
            }
            if let Ok(inner) = item.cast::<PyList>() {
                list.set_item(index, inner.to_tuple())?;
                continue;
            }
            return Err(PyTypeError::new_err(format!(
                "args_list[{index}] must be a tuple or list of positional arguments, \
                 got {}; wrap a single argument in a tuple, as in [(x,) for x in items]",
                describe(&item)
            )));
        }
        return Ok(PerTask::Each(list.clone().unbind()));
    }
    if value.is_instance_of::<PyTuple>() {
        return Ok(PerTask::Shared(value.clone().unbind()));
    }
    Err(PyTypeError::new_err(format!(
        "positional arguments must be a tuple, got {}",
        describe(value)
    )))
}

fn per_task_kwargs(value: &Bound<'_, PyAny>, len: usize) -> PyResult<Option<PerTask>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(list) = value.cast::<PyList>() {
        check_len("kwargs_list", list.len(), len)?;
        for (index, item) in list.iter().enumerate() {
            if !item.is_none() && !item.is_instance_of::<PyDict>() {
                return Err(PyTypeError::new_err(format!(
                    "kwargs_list[{index}] must be a dict of keyword arguments or None, got {}",
                    describe(&item)
                )));
            }
        }
        return Ok(Some(PerTask::Each(list.clone().unbind())));
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Some(PerTask::Shared(value.clone().unbind())));
    }
    Err(PyTypeError::new_err(format!(
        "keyword arguments must be a dict, got {}",
        describe(value)
    )))
}

fn check_len(name: &str, actual: usize, expected: usize) -> PyResult<()> {
    if actual != expected {
        return Err(PyValueError::new_err(format!(
            "{name} has {actual} items but the batch has {expected} tasks"
        )));
    }
    Ok(())
}

fn check_context(context: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: PyContext_CheckExact only reads the object's type pointer.
    let is_context = unsafe { pyo3::ffi::PyContext_CheckExact(context.as_ptr()) } != 0;
    if !is_context {
        return Err(PyTypeError::new_err(format!(
            "context must be a contextvars.Context, got {}",
            describe(context)
        )));
    }
    Ok(())
}

/// Names a bad value in an error message: its type and a short repr.
pub fn describe(value: &Bound<'_, PyAny>) -> String {
    let type_name = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string());
    let mut text = value.repr().map(|r| r.to_string()).unwrap_or_default();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    format!("{type_name} {text}")
}
