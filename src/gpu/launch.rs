//! Every kernel launch of the crate: one typed function per `extern "C"` kernel, its parameters
//! mirroring the `.cu` signature line by line. Nothing else in the crate calls `launch`.

use crate::dtype::Dtype;
use crate::error::Result;
use crate::params::{BatchFilters, DrawMethod, Numerics, SamplingParams};
use cudarc::driver::{
    CudaFunction, CudaModule, CudaStream, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// `SAMPLER_MAX_THREADS` in `kernels/sampler.cu`: the most threads a row block may have.
pub const SAMPLER_MAX_THREADS: u32 = 512;
/// `BATCHSAMPLE_MAX_TOP_N` in `kernels/params.cuh`.
pub const MAX_TOP_N: usize = 128;
/// Most blocks per row of the split kernels (`sample_rows_split_*`).
pub const MAX_SPLITS: usize = 32;
/// Fewest logits per split-row slice: below this a block's fixed costs (its reductions, the
/// ticket) outweigh the parallelism gained.
pub const MIN_SPLIT_SLICE: usize = 4096;
/// `sizeof(SlicePartial)` in `kernels/sampler.cu`, in u32 words: what one split-row slice
/// publishes for its row's last block (a summary of 8 words, then up to 64 top-k candidates of
/// two words each).
pub const SPLIT_PARTIAL_WORDS: usize = 8 + 2 * 64;

/// Blocks per row for a launch of `batch` rows of `vocab` on a GPU that runs `slots` row blocks
/// at once: its SMs times the blocks of the launch's kernel that an SM holds. The grid runs in
/// waves of `slots` blocks, and a launch lasts about waves x (slice length + a block's fixed
/// cost: its reductions and ticket, taken as [`MIN_SPLIT_SLICE`] logits' worth). The count is
/// the one that minimises that, fewest blocks on ties (at most [`MAX_SPLITS`], slices of at
/// least [`MIN_SPLIT_SLICE`]). Batch 64 on 132 slots: 2, one wave of 128 blocks, where 5 would
/// run three waves. 1 means the one-block-per-row kernels. Only the fast numerics split (the
/// invariant ones must not depend on the batch).
pub fn split_count(batch: usize, vocab: usize, slots: usize, numerics: Numerics) -> usize {
    if numerics != Numerics::Fast || batch == 0 {
        return 1;
    }
    let slots = slots.max(1);
    let most = MAX_SPLITS.min(vocab / MIN_SPLIT_SLICE).max(1);
    let span = |splits: usize| {
        (batch * splits).div_ceil(slots) * (vocab.div_ceil(splits) + MIN_SPLIT_SLICE)
    };
    (1..=most)
        .min_by_key(|&splits| (span(splits), splits))
        .unwrap_or(1)
}

/// Longest row the one-read inverse CDF serves (kernels/stream_cdf.cuh: a table of 128 stream
/// windows of 32 values a thread, at the 512 threads [`threads_for`] gives such rows). Longer
/// inverse-CDF rows take the general kernels' ordered passes.
pub const CDF_STREAM_MAX_VOCAB: usize = 128 * 32 * SAMPLER_MAX_THREADS as usize;

/// `DrawMethodCode` in `kernels/params.cuh`: the `method` argument of every sampler kernel.
pub const DRAW_GUMBEL: u32 = 0;
pub const DRAW_INVERSE_CDF: u32 = 1;

/// Which family of sampler kernels a launch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SamplerKernel {
    /// `sample_rows_*`, `sample_rows_invariant_*`, `sample_rows_split_*`: every row, every filter;
    /// up to 128 registers, so one 512-thread block an SM.
    General,
    /// `sample_rows_unfiltered[_cdf]_*` and `sample_rows_unfiltered[_cdf]_split_*`
    /// (kernels/unfiltered.cuh), one set per draw method: greedy and temperature-only rows
    /// only, within 64 registers on sm_90: two blocks an SM.
    Unfiltered,
    /// `sample_rows_collected_*` (kernels/collected.cuh): greedy rows and Gumbel rows with a
    /// top-k of at most [`COLLECTED_MAX_TOP_K`](crate::params::COLLECTED_MAX_TOP_K), within 64
    /// registers on sm_90: two blocks an SM. One block per row; a launch that splits rows takes
    /// the general split kernels, which serve the same rows from the same candidates.
    Collected,
}

impl SamplerKernel {
    /// The kernels a launch takes: the unfiltered ones when the caller vouches that no row
    /// filters and the launch asks for nothing else they lack (fast numerics, no top-n, and for
    /// the inverse CDF rows of at most [`CDF_STREAM_MAX_VOCAB`]); the collected ones when it
    /// vouches for small top-k rows, with fast numerics and the Gumbel draw; else the general
    /// ones.
    pub fn for_launch(
        filters: BatchFilters,
        numerics: Numerics,
        method: DrawMethod,
        top_n: usize,
        vocab: usize,
    ) -> Self {
        let draw_streams = method == DrawMethod::Gumbel || vocab <= CDF_STREAM_MAX_VOCAB;
        let light = filters == BatchFilters::Unfiltered
            && numerics == Numerics::Fast
            && draw_streams
            && top_n == 0;
        let collected = filters == BatchFilters::SmallTopK
            && numerics == Numerics::Fast
            && method == DrawMethod::Gumbel;
        if light {
            SamplerKernel::Unfiltered
        } else if collected {
            SamplerKernel::Collected
        } else {
            SamplerKernel::General
        }
    }
}

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

/// Every sampler entry point: `sample_rows_{dtype}`, `sample_rows_invariant_{dtype}`,
/// `sample_rows_split_{dtype}`, their unfiltered twins for each draw method
/// (`sample_rows_unfiltered[_cdf]_{dtype}`, `sample_rows_unfiltered[_cdf]_split_{dtype}`),
/// `sample_rows_collected_{dtype}`, and
/// `exact_math_probe` (the invariant numerics' exp and log over an array).
pub(crate) struct SamplerKernels {
    fast: DtypeKernels,
    invariant: DtypeKernels,
    split: DtypeKernels,
    unfiltered: DtypeKernels,
    unfiltered_split: DtypeKernels,
    unfiltered_cdf: DtypeKernels,
    unfiltered_cdf_split: DtypeKernels,
    collected: DtypeKernels,
    /// Row blocks of [`SAMPLER_MAX_THREADS`] threads an SM holds at once, as the driver
    /// reports it for this device (the kernels' registers and shared memory decide).
    general_blocks_per_sm: usize,
    unfiltered_blocks_per_sm: usize,
    exact_math_probe: CudaFunction,
}

/// The fewest blocks of [`SAMPLER_MAX_THREADS`] threads that an SM holds at once over a family's
/// three dtype kernels (at least 1).
fn blocks_per_sm(set: &DtypeKernels) -> Result<usize> {
    let mut fewest = u32::MAX;
    for f in [&set.f32, &set.f16, &set.bf16] {
        fewest = fewest.min(f.occupancy_max_active_blocks_per_multiprocessor(
            SAMPLER_MAX_THREADS,
            0,
            None,
        )?);
    }
    Ok(fewest.max(1) as usize)
}

impl SamplerKernels {
    pub(crate) fn load(module: &Arc<CudaModule>) -> Result<Self> {
        let split = DtypeKernels::load(module, "sample_rows_split")?;
        let unfiltered_split = DtypeKernels::load(module, "sample_rows_unfiltered_split")?;
        let unfiltered_cdf_split = DtypeKernels::load(module, "sample_rows_unfiltered_cdf_split")?;
        Ok(SamplerKernels {
            fast: DtypeKernels::load(module, "sample_rows")?,
            invariant: DtypeKernels::load(module, "sample_rows_invariant")?,
            general_blocks_per_sm: blocks_per_sm(&split)?,
            unfiltered_blocks_per_sm: blocks_per_sm(&unfiltered_split)?
                .min(blocks_per_sm(&unfiltered_cdf_split)?),
            split,
            unfiltered: DtypeKernels::load(module, "sample_rows_unfiltered")?,
            unfiltered_split,
            unfiltered_cdf: DtypeKernels::load(module, "sample_rows_unfiltered_cdf")?,
            unfiltered_cdf_split,
            collected: DtypeKernels::load(module, "sample_rows_collected")?,
            exact_math_probe: module.load_function("exact_math_probe")?,
        })
    }

    /// How many row blocks of `kernel`'s split kernels an SM holds at once: what the split count
    /// ([`split_count`]) takes the GPU's width to be. (The collected family splits with the
    /// general split kernels.)
    pub(crate) fn blocks_per_sm(&self, kernel: SamplerKernel) -> usize {
        match kernel {
            SamplerKernel::General | SamplerKernel::Collected => self.general_blocks_per_sm,
            SamplerKernel::Unfiltered => self.unfiltered_blocks_per_sm,
        }
    }

    fn get(
        &self,
        kernel: SamplerKernel,
        numerics: Numerics,
        method: u32,
        dtype: Dtype,
        split: bool,
    ) -> &CudaFunction {
        let cdf = method == DRAW_INVERSE_CDF;
        let set = match (kernel, numerics, split) {
            (SamplerKernel::Unfiltered, _, false) if cdf => &self.unfiltered_cdf,
            (SamplerKernel::Unfiltered, _, true) if cdf => &self.unfiltered_cdf_split,
            (SamplerKernel::Unfiltered, _, false) => &self.unfiltered,
            (SamplerKernel::Unfiltered, _, true) => &self.unfiltered_split,
            (SamplerKernel::Collected, _, false) => &self.collected,
            (SamplerKernel::General, Numerics::Invariant, _) => &self.invariant,
            // Split launches are fast-numerics only; collected rows split the general way.
            (_, _, true) => &self.split,
            (SamplerKernel::General, Numerics::Fast, false) => &self.fast,
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
    /// The split kernels' scratch: `[batch, splits]` partials and `[batch]` arrival counters
    /// (0 before and after every launch).
    pub split_partials: CudaViewMut<'a, u32>, // [batch * splits * SPLIT_PARTIAL_WORDS]
    pub split_arrivals: CudaViewMut<'a, u32>, // [batch]
}

/// `sample_rows_{f32,f16,bf16}` or, for [`Numerics::Invariant`], `sample_rows_invariant_*`: one
/// block per row; with `splits > 1` (fast numerics only), `sample_rows_split_*` on a
/// `(splits, batch)` grid. [`SamplerKernel::Unfiltered`] (fast numerics only) takes the
/// `sample_rows_unfiltered_*` twins, [`SamplerKernel::Collected`] `sample_rows_collected_*` (one
/// block per row; split launches take `sample_rows_split_*`), whose arguments are the same.
///
/// # Safety
/// The caller guarantees: `logits` holds `batch * vocab` elements of `dtype` (f16/bf16 as their
/// 16-bit patterns); `params` holds `batch` entries (`params_stride == 1`) or at least one
/// (`params_stride == 0`); every output view holds at least `batch` (`batch * top_n` for the
/// top-n views) elements; `top_n <= MAX_TOP_N`; `vocab <= u32::MAX`; `batch` fits the grid;
/// with `splits > 1`: `splits <= MAX_SPLITS`, `split_partials` holds `batch * splits *
/// SPLIT_PARTIAL_WORDS` and `split_arrivals` `batch` words, all arrivals 0.
/// The kernels bound every access by these sizes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sample_rows<T>(
    stream: &CudaStream,
    kernels: &SamplerKernels,
    kernel: SamplerKernel,
    numerics: Numerics,
    dtype: Dtype,
    batch: u32,
    logits: &CudaView<'_, T>,              // [batch, vocab]
    params: &CudaView<'_, SamplingParams>, // [batch] or [1]
    params_stride: u32,                    // 1, or 0 to share params[0]
    vocab: u32,
    method: u32, // DrawMethodCode: DRAW_GUMBEL or DRAW_INVERSE_CDF
    top_n: u32,
    splits: u32,
    out: &mut SampleOutputsMut<'_>,
) -> Result<()> {
    if batch == 0 {
        return Ok(());
    }
    let split = splits > 1 && numerics == Numerics::Fast;
    let cfg = LaunchConfig {
        grid_dim: if split {
            (splits, batch, 1)
        } else {
            (batch, 1, 1)
        },
        block_dim: (threads_for(vocab as usize, dtype), 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(kernels.get(kernel, numerics, method, dtype, split));
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
    if split {
        b.arg(&mut out.split_partials);
        b.arg(&mut out.split_arrivals);
    }
    b.launch(cfg)?;
    Ok(())
}

// ---- Experiment 2: the batch-invariant projection and cuBLAS -----------------------------------
// Inherent methods of types that `src/drift/batch_size/gpu.rs` defines. `gpu`'s modules are
// private, so this is how that code reaches the driver probe (`device::open_context`) while its
// unsafe calls stay in this file.
mod experiment_2 {
    use super::super::device::{device_info, load_sampler_module, open_context};
    use super::super::DeviceInfo;
    use crate::drift::batch_size::gpu::{CublasHandle, ProjectionKernels};
    use crate::drift::projection::{projection_grid, PROJECTION_THREADS};
    use crate::dtype::Dtype;
    use crate::error::{Result, SampleError};
    use cudarc::cublas::{result as cublas, sys as cublas_sys, CudaBlas};
    use cudarc::driver::{
        CudaContext, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, LaunchConfig,
        PushKernelArg,
    };
    use std::ffi::{c_int, c_void};
    use std::sync::Arc;

    /// `(batch, vocab, d)` as the kernel's and cuBLAS's 32-bit sizes.
    fn sizes(batch: usize, vocab: usize, d: usize) -> Result<(c_int, c_int, c_int)> {
        let int = |n: usize| c_int::try_from(n).ok();
        match (int(batch), int(vocab), int(d)) {
            (Some(b), Some(v), Some(k)) => Ok((b, v, k)),
            _ => Err(SampleError::Capacity(format!(
                "batch {batch}, vocab {vocab}, d {d}: each must be below 2^31"
            ))),
        }
    }

    impl ProjectionKernels {
        /// Opens device `ordinal` (the driver probed first: [`SampleError::NoDevice`], no panic)
        /// and loads `project_invariant_*` from the crate's kernel image.
        pub(crate) fn open(
            ordinal: usize,
        ) -> Result<(Arc<CudaContext>, DeviceInfo, ProjectionKernels)> {
            let ctx = open_context(ordinal)?;
            // SAFETY: every buffer of this context is used on one stream, in order, so cudarc's
            // cross-stream event tracking has nothing to order.
            unsafe { ctx.disable_event_tracking() };
            let info = device_info(&ctx)?;
            let module = load_sampler_module(&ctx, info.compute_capability)?;
            let kernels = ProjectionKernels {
                f32: module.load_function("project_invariant_f32")?,
                f16: module.load_function("project_invariant_f16")?,
                bf16: module.load_function("project_invariant_bf16")?,
            };
            Ok((ctx, info, kernels))
        }

        /// `project_invariant_{dtype}` (kernels/projection.cu): grid (batch tiles, vocab groups)
        /// of `PROJECTION_THREADS`-thread blocks.
        ///
        /// # Safety
        /// The caller guarantees: `hidden` holds `batch * d` and `weights` `vocab * d` elements
        /// of `dtype` (f16/bf16 as their 16-bit patterns), `logits` `batch * vocab` f32.
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn launch<T>(
            &self,
            stream: &CudaStream,
            dtype: Dtype,
            hidden: &CudaView<'_, T>,  // [batch, d]
            weights: &CudaView<'_, T>, // [vocab, d]
            batch: usize,
            vocab: usize,
            d: usize,
            logits: &mut CudaViewMut<'_, f32>, // [batch, vocab]
        ) -> Result<()> {
            if batch == 0 || vocab == 0 {
                return Ok(());
            }
            let (b, v, k) = sizes(batch, vocab, d)?;
            let grid = projection_grid(batch, vocab).ok_or_else(|| {
                SampleError::Capacity(format!("vocab {vocab} exceeds the grid (1,048,560)"))
            })?;
            let cfg = LaunchConfig {
                grid_dim: (grid.0, grid.1, 1),
                block_dim: (PROJECTION_THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let f = match dtype {
                Dtype::F32 => &self.f32,
                Dtype::F16 => &self.f16,
                Dtype::Bf16 => &self.bf16,
            };
            let (b, v, k) = (b as u32, v as u32, k as u32);
            let mut l = stream.launch_builder(f);
            l.arg(hidden);
            l.arg(weights);
            l.arg(&b);
            l.arg(&v);
            l.arg(&k);
            l.arg(logits);
            l.launch(cfg)?;
            Ok(())
        }
    }

    impl CublasHandle {
        /// cuBLAS on `stream`. cudarc panics on the first call into a library it cannot load, so
        /// the library is probed first: [`SampleError::Cublas`] when it is missing.
        pub(crate) fn open(stream: &Arc<CudaStream>) -> Result<CublasHandle> {
            // SAFETY: only tries to dlopen cudarc's candidate names for libcublas.
            if !unsafe { cublas_sys::is_culib_present() } {
                return Err(SampleError::Cublas(
                    "libcublas was not found (put the directory of libcublas.so.13 on \
                     LD_LIBRARY_PATH)"
                        .into(),
                ));
            }
            Ok(CublasHandle {
                blas: CudaBlas::new(stream.clone())?,
                stream: stream.clone(),
            })
        }

        /// `logits[b, v] = sum_k hidden[b, k] weights[v, k]` as the column-major TN GEMM
        /// `C[vocab, batch] = W[d, vocab]^T H[d, batch]`: `cublasSgemm` for f32,
        /// `cublasGemmEx` (f32 output, `CUBLAS_COMPUTE_32F`) for f16/bf16; alpha 1, beta 0.
        ///
        /// # Safety
        /// As [`ProjectionKernels::launch`].
        #[allow(clippy::too_many_arguments)]
        pub(crate) unsafe fn project<T>(
            &self,
            dtype: Dtype,
            hidden: &CudaView<'_, T>,  // [batch, d]
            weights: &CudaView<'_, T>, // [vocab, d]
            batch: usize,
            vocab: usize,
            d: usize,
            logits: &mut CudaViewMut<'_, f32>, // [batch, vocab]
        ) -> Result<()> {
            if batch == 0 || vocab == 0 {
                return Ok(());
            }
            let (n, m, k) = sizes(batch, vocab, d)?;
            let ld = k.max(1);
            let handle = *self.blas.handle();
            let (w, _w) = weights.device_ptr(&self.stream);
            let (h, _h) = hidden.device_ptr(&self.stream);
            let (c, _c) = logits.device_ptr_mut(&self.stream);
            let (alpha, beta) = (1.0f32, 0.0f32);
            let (op_t, op_n) = (
                cublas_sys::cublasOperation_t::CUBLAS_OP_T,
                cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            );
            let input = match dtype {
                Dtype::F32 => {
                    cublas::sgemm(
                        handle,
                        op_t,
                        op_n,
                        m,
                        n,
                        k,
                        &alpha,
                        w as *const f32,
                        ld,
                        h as *const f32,
                        ld,
                        &beta,
                        c as *mut f32,
                        m,
                    )?;
                    return Ok(());
                }
                Dtype::F16 => cublas_sys::cudaDataType_t::CUDA_R_16F,
                Dtype::Bf16 => cublas_sys::cudaDataType_t::CUDA_R_16BF,
            };
            cublas::gemm_ex(
                handle,
                op_t,
                op_n,
                m,
                n,
                k,
                &alpha as *const f32 as *const c_void,
                w as *const c_void,
                input,
                ld,
                h as *const c_void,
                input,
                ld,
                &beta as *const f32 as *const c_void,
                c as *mut c_void,
                cublas_sys::cudaDataType_t::CUDA_R_32F,
                m,
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )?;
            Ok(())
        }
    }
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

// ---- Experiment 2: the cuBLAS version, for reports (results depend on it) ----------------------
impl crate::drift::batch_size::gpu::CublasHandle {
    /// cuBLAS's version number (`major * 10000 + minor * 100 + patch`), if it answers.
    pub(crate) fn version(&self) -> Option<i32> {
        let mut v = 0;
        // SAFETY: a live handle (owned by self.blas) and a valid out-pointer.
        unsafe { cudarc::cublas::sys::cublasGetVersion_v2(*self.blas.handle(), &mut v) }
            .result()
            .ok()?;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_take_the_light_kernels_only_where_they_serve_every_row() {
        let for_launch = |filters, numerics, method, top_n| {
            SamplerKernel::for_launch(filters, numerics, method, top_n, 128256)
        };
        let (fast, gumbel) = (Numerics::Fast, DrawMethod::Gumbel);
        assert_eq!(
            for_launch(BatchFilters::SmallTopK, fast, gumbel, 5),
            SamplerKernel::Collected
        );
        // The collected kernels draw with Gumbel noise and have the fast numerics only.
        assert_eq!(
            for_launch(BatchFilters::SmallTopK, fast, DrawMethod::InverseCdf, 0),
            SamplerKernel::General
        );
        assert_eq!(
            for_launch(BatchFilters::SmallTopK, Numerics::Invariant, gumbel, 0),
            SamplerKernel::General
        );
        assert_eq!(
            for_launch(BatchFilters::Unfiltered, fast, gumbel, 0),
            SamplerKernel::Unfiltered
        );
        assert_eq!(
            for_launch(BatchFilters::Any, fast, gumbel, 0),
            SamplerKernel::General
        );
    }
}
