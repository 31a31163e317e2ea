//! The GPU sampler (see `kernels/`). Placeholder API while the kernels are written.

use crate::cpu::{RowOutput, SampleOptions};
use crate::dtype::Logit;
use crate::error::{Result, SampleError};
use crate::params::SamplingParams;

/// Capacities a [`GpuSampler`] preallocates for.
#[derive(Clone, Copy, Debug)]
pub struct GpuConfig {
    pub device_ordinal: usize,
    pub max_batch: usize,
    pub max_vocab: usize,
    pub max_top_n: usize,
}

/// Owns a CUDA context, stream, kernels and workspace.
pub struct GpuSampler {
    _config: GpuConfig,
}

impl GpuSampler {
    /// Opens the device; [`SampleError::NoDevice`] when there is no driver or no GPU.
    pub fn new(config: GpuConfig) -> Result<Self> {
        let _ = config;
        Err(SampleError::NoDevice("not built yet".into()))
    }

    /// Copies host logits in, samples, copies results out.
    pub fn sample_host<T: Logit>(
        &mut self,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
    ) -> Result<Vec<RowOutput>> {
        let _ = (logits, vocab, params, opts);
        Err(SampleError::NoDevice("not built yet".into()))
    }
}
