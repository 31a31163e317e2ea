//! The crate's typed errors. Per-row data problems (a NaN logit, a row with no finite logit) are
//! not errors: they are reported per row through [`crate::RowStatus`] so that one bad row never
//! fails the batch.

use std::path::PathBuf;

/// Everything that can go wrong before or while a batch is sampled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// A sampling parameter is out of its range; names the row and the field.
    #[error("row {row}: invalid {field} = {value}: {reason}")]
    InvalidParam {
        row: usize,
        field: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The logits' shape does not fit the stated batch and vocabulary, or the parameters' count.
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// No usable GPU: no driver library, no device, or the device could not be initialised.
    #[error("no CUDA device available: {0}")]
    NoDevice(String),

    /// A CUDA driver call failed.
    #[error("CUDA driver error: {0}")]
    Driver(#[from] cudarc::driver::DriverError),

    /// Run-time compilation of the kernels failed (the log is printed unescaped).
    #[error("NVRTC compilation failed:\n{0}")]
    Compile(String),

    /// A request exceeds what a sampler was built for (batch, vocab or top-n capacity).
    #[error("capacity exceeded: {0}")]
    Capacity(String),

    /// An input or output file could not be read, parsed or written.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },

    /// A file has an element type this operation cannot take.
    #[error("{path}: unsupported dtype {dtype} (expected {expected})")]
    UnsupportedDtype {
        path: PathBuf,
        dtype: String,
        expected: &'static str,
    },

    /// cuBLAS cannot be used: its library was not found, or one of its calls failed.
    #[error("cuBLAS: {0}")]
    Cublas(String),
}

impl SampleError {
    /// A [`SampleError::File`] naming `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        SampleError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = SampleError> = std::result::Result<T, E>;
