//! `TaskError`, the value in the result slot of a task that failed.
//!
//! It is defined here rather than in Python because a gather that times out
//! builds one per unfinished task after the deadline has passed, and a native
//! constructor keeps that step short for large batches.

use pyo3::basic::CompareOp;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;

/// A failed task's exception, returned in that task's result slot.
///
/// Gather functions never raise a task's exception in the caller. The slot of
/// a failed task contains a ``TaskError`` instead, so every other result is
/// kept. A ``TaskError`` is falsy, which makes ``all(results)`` a quick
/// success check.
///
/// Attributes:
///     index: Position of the task in the batch, counted from 0.
///     exception: The exception object the task raised, with its original
///         ``__traceback__``. For a task still unfinished at the deadline it
///         is a ``TimeoutError``.
///     attempts: How many times the task was called (more than 1 only when
///         it was retried).
#[pyclass(module = "msgflux._core", name = "TaskError")]
pub struct TaskError {
    #[pyo3(get, set)]
    index: usize,
    // Option only so that the garbage collector can break reference cycles
    // through the exception's traceback; it is None only after that.
    exception: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    attempts: usize,
}

impl TaskError {
    pub fn create(py: Python<'_>, index: usize, exception: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let attempts = attempts_of(exception.bind(py));
        Ok(Py::new(
            py,
            TaskError {
                index,
                exception: Some(exception),
                attempts,
            },
        )?
        .into_any())
    }
}

/// Reads the attempt count that msgflux's retry wrapper stores on the
/// exception it finally lets through.
fn attempts_of(exception: &Bound<'_, PyAny>) -> usize {
    exception
        .getattr(pyo3::intern!(exception.py(), "__msgflux_attempts__"))
        .ok()
        .and_then(|value| value.extract::<usize>().ok())
        .unwrap_or(1)
}

#[pymethods]
impl TaskError {
    #[new]
    #[pyo3(signature = (index, exception, attempts = 1))]
    fn new(index: usize, exception: Py<PyAny>, attempts: usize) -> Self {
        TaskError {
            index,
            exception: Some(exception),
            attempts,
        }
    }

    #[getter]
    fn exception(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.exception {
            Some(exception) => exception.clone_ref(py),
            None => py.None(),
        }
    }

    #[setter]
    fn set_exception(&mut self, exception: Py<PyAny>) {
        self.exception = Some(exception);
    }

    fn __bool__(&self) -> bool {
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let exception = self.exception(py);
        let text = exception
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "<exception whose repr() failed>".to_string());
        format!("TaskError(index={}, exception={text})", self.index)
    }

    fn __str__(&self, py: Python<'_>) -> String {
        let exception = self.exception(py);
        let exception = exception.bind(py);
        let kind = exception
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "exception".to_string());
        let text = exception
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "<str() failed>".to_string());
        format!("task {} failed with {kind}: {text}", self.index)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let Ok(other) = other.cast::<TaskError>() else {
            return py.NotImplemented();
        };
        let other = other.borrow();
        let same = self.index == other.index
            && self.exception.as_ref().map(|e| e.as_ptr())
                == other.exception.as_ref().map(|e| e.as_ptr());
        let result = match op {
            CompareOp::Eq => same,
            CompareOp::Ne => !same,
            _ => return py.NotImplemented(),
        };
        pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind()
    }

    fn __hash__(&self) -> u64 {
        let identity = self.exception.as_ref().map_or(0, |e| e.as_ptr() as usize);
        (self.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ identity as u64
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.borrow();
        let args = (this.index, this.exception(py), this.attempts).into_pyobject(py)?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(exception) = &self.exception {
            visit.call(exception)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.exception = None;
    }
}
