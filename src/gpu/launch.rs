//! Every kernel launch of the crate: one typed function per `extern "C"` kernel, its parameters
//! mirroring the `.cu` signature line by line. Nothing else in the crate calls `launch`.

use crate::dtype::Dtype;
use crate::error::Result;
use crate::params::{Numerics, SamplingParams};
use cudarc::driver::{
    CudaFunction, CudaModule, CudaStream, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// `SAMPLER_MAX_THREADS` in `kernels/sampler.cu`: the most threads a row block may have.
pub const SAMPLER_MAX_THREADS: u32 = 512;
/// `BATCHSAMPLE_MAX_TOP_N` in `kernels/params.cuh`.
pub const MAX_TOP_N: usize = 128;

/// The sampler's entry points of one numerics policy, one per logit dtype.
struct DtypeKernels {
    f32: CudaFunction,
    f16: CudaFunction,
    bf16: CudaFunction,
}

impl DtypeKernels {
    fn load(module: &Arc<CudaModule>, prefix: &str) -> Result<Self> {
        Ok(DtypeKernels {
            f32: module.load_function(&format!("{prefix}_f32"))?,
            f16: module.load_function(&format!("{prefix}_f16"))?,
            bf16: module.load_function(&format!("{prefix}_bf16"))?,
        })
    }
}

/// Every sampler entry point: `sample_rows_{dtype}` and `sample_rows_invariant_{dtype}`, and
/// `exact_math_probe` (the invariant numerics' exp and log over an array).
pub(crate) struct SamplerKernels {
    fast: DtypeKernels,
    invariant: DtypeKernels,
    exact_math_probe: CudaFunction,
}

impl SamplerKernels {
    pub(crate) fn load(module: &Arc<CudaModule>) -> Result<Self> {
        Ok(SamplerKernels {
            fast: DtypeKernels::load(module, "sample_rows")?,
            invariant: DtypeKernels::load(module, "sample_rows_invariant")?,
            exact_math_probe: module.load_function("exact_math_probe")?,
        })
    }

    fn get(&self, numerics: Numerics, dtype: Dtype) -> &CudaFunction {
        let set = match numerics {
            Numerics::Fast => &self.fast,
            Numerics::Invariant => &self.invariant,
        };
        match dtype {
            Dtype::F32 => &set.f32,
            Dtype::F16 => &set.f16,
            Dtype::Bf16 => &set.bf16,
        }
    }
}

/// Threads per row block: enough 16-byte chunks to cover the row once, a power of two in
/// [64, SAMPLER_MAX_THREADS] (the kernels' scans assume a power of two).
pub fn threads_for(vocab: usize, dtype: Dtype) -> u32 {
    let chunks = vocab.div_ceil(16 / dtype.size_bytes()).max(1);
    (chunks.next_power_of_two() as u32).clamp(64, SAMPLER_MAX_THREADS)
}

/// Output views of one launch.
pub(crate) struct SampleOutputsMut<'a> {
    pub tokens: CudaViewMut<'a, i32>,       // [batch]
    pub logprobs: CudaViewMut<'a, f32>,     // [batch]
    pub status: CudaViewMut<'a, u32>,       // [batch]
    pub top_tokens: CudaViewMut<'a, i32>,   // [batch, top_n]
    pub top_logprobs: CudaViewMut<'a, f32>, // [batch, top_n]
}

/// `sample_rows_{f32,f16,bf16}` or, for [`Numerics::Invariant`], `sample_rows_invariant_*`: one
/// block per row.
///
/// # Safety
/// The caller guarantees: `logits` holds `batch * vocab` elements of `dtype` (f16/bf16 as their
/// 16-bit patterns); `params` holds `batch` entries (`params_stride == 1`) or at least one
/// (`params_stride == 0`); every output view holds at least `batch` (`batch * top_n` for the
/// top-n views) elements; `top_n <= MAX_TOP_N`; `vocab <= u32::MAX`; `batch` fits the grid.
/// The kernels bound every access by these sizes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sample_rows<T>(
    stream: &CudaStream,
    kernels: &SamplerKernels,
    numerics: Numerics,
    dtype: Dtype,
    batch: u32,
    logits: &CudaView<'_, T>,              // [batch, vocab]
    params: &CudaView<'_, SamplingParams>, // [batch] or [1]
    params_stride: u32,                    // 1, or 0 to share params[0]
    vocab: u32,
    method: u32, // DrawMethodCode
    top_n: u32,
    out: &mut SampleOutputsMut<'_>,
) -> Result<()> {
    if batch == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: (batch, 1, 1),
        block_dim: (threads_for(vocab as usize, dtype), 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(kernels.get(numerics, dtype));
    b.arg(logits);
    b.arg(params);
    b.arg(&params_stride);
    b.arg(&vocab);
    b.arg(&method);
    b.arg(&top_n);
    b.arg(&mut out.tokens);
    b.arg(&mut out.logprobs);
    b.arg(&mut out.status);
    b.arg(&mut out.top_tokens);
    b.arg(&mut out.top_logprobs);
    b.launch(cfg)?;
    Ok(())
}

/// `exact_math_probe`: `exp_out[i] = exact_exp(x[i])`, `log_out[i] = exact_log(x[i])`.
///
/// # Safety
/// `x`, `exp_out` and `log_out` each hold at least `n` elements.
pub(crate) unsafe fn exact_math_probe(
    stream: &CudaStream,
    kernels: &SamplerKernels,
    x: &CudaView<'_, f32>,              // [n]
    exp_out: &mut CudaViewMut<'_, f32>, // [n]
    log_out: &mut CudaViewMut<'_, f32>, // [n]
    n: u32,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: (n.div_ceil(256).min(4096), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(&kernels.exact_math_probe);
    b.arg(x);
    b.arg(exp_out);
    b.arg(log_out);
    b.arg(&n);
    b.launch(cfg)?;
    Ok(())
}
