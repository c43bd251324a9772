//! Calling Python from pool threads without aborting at interpreter exit.
//!
//! On CPython before 3.14, a thread that tries to take the GIL after
//! finalization began is ended with `pthread_exit`, which unwinds the thread's
//! stack. A task that returns during exit (a sleep ending, a lock acquired)
//! does exactly that from inside our call into Python. Unwinding into Rust
//! frames through an `extern "C"` call aborts the whole process, so the exit
//! status would be SIGABRT instead of the program's own.
//!
//! Calls made here go through a `"C-unwind"` declaration with a guard whose
//! destructor parks the thread for good. The forced unwind stops in that
//! destructor: the thread hangs, holding nothing, until the process exits,
//! which is what CPython 3.14 does itself.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

mod raw {
    use pyo3::ffi::PyObject;

    // The same symbol pyo3-ffi declares, with an ABI that lets a forced
    // unwind pass into this frame's cleanup instead of aborting.
    extern "C-unwind" {
        pub fn PyObject_Call(
            callable: *mut PyObject,
            args: *mut PyObject,
            kwargs: *mut PyObject,
        ) -> *mut PyObject;
    }
}

/// Parks the thread forever if dropped, which only happens when a forced
/// unwind passes through the frame that owns it.
struct ParkOnUnwind;

impl Drop for ParkOnUnwind {
    fn drop(&mut self) {
        loop {
            std::thread::park();
        }
    }
}

/// Calls `callable(*args, **kwargs)`; see the module documentation.
pub fn call<'py>(
    callable: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = callable.py();
    let kwargs_ptr = kwargs.map_or(std::ptr::null_mut(), |k| k.as_ptr());
    let guard = ParkOnUnwind;
    // SAFETY: all three pointers are live objects (kwargs may be NULL, which
    // PyObject_Call accepts) and the GIL is held for the whole call.
    let result = unsafe { raw::PyObject_Call(callable.as_ptr(), args.as_ptr(), kwargs_ptr) };
    std::mem::forget(guard);
    // SAFETY: PyObject_Call returns a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, result) }
}

/// Calls `callable(*args)` with a tuple built from `args`.
pub fn call1<'py, A>(callable: &Bound<'py, PyAny>, args: A) -> PyResult<Bound<'py, PyAny>>
where
    A: IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>>,
{
    let args = args.into_pyobject(callable.py()).map_err(Into::into)?;
    call(callable, &args, None)
}
