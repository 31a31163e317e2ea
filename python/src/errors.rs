//! The crate's errors as Python exceptions, each with the one line the CLI prints after
//! `batchsample: `: bad parameters, shapes and capacities are `ValueError`; no GPU is
//! `NoDeviceError` (a `RuntimeError`); a failing CUDA call or kernel compile is `RuntimeError`.

use batchsample::SampleError;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;

create_exception!(
    _native,
    NoDeviceError,
    PyRuntimeError,
    "CUDA arrays were given but no usable GPU (driver, device) was found."
);

pub fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// `e` as the exception a Python caller expects, its message on one line.
pub fn to_py(e: SampleError) -> PyErr {
    // The CLI's `one_line`: a multi-line message (an NVRTC log) joined with " | ".
    let line = e
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    match e {
        SampleError::InvalidParam { .. }
        | SampleError::Shape(_)
        | SampleError::Capacity(_)
        | SampleError::File { .. }
        | SampleError::UnsupportedDtype { .. } => PyValueError::new_err(line),
        SampleError::NoDevice(_) => NoDeviceError::new_err(line),
        _ => PyRuntimeError::new_err(line),
    }
}
