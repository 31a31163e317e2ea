//! Every sampler kernel launch: one typed function per `extern "C"` kernel, its parameters
//! mirroring the `.cu` signature line by line. (Experiment 2's projection and cuBLAS launches
//! live with that experiment, `cli/src/drift/batch_size/launch.rs`.)

use crate::dtype::Dtype;
use crate::error::Result;
use crate::params::{BatchFilters, DrawMethod, Numerics};
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

/// Device addresses of one launch's outputs and workspace (`CUdeviceptr`s; 0 where the launch
/// does not touch a buffer: the top-n pair when `top_n` is 0, the split scratch when it does not
/// split). Raw addresses, so the caller's buffers (cudarc views, another library's tensors) all
/// come in the same way.
pub(crate) struct LaunchOutputs {
    pub tokens: u64,       // [batch] i32
    pub logprobs: u64,     // [batch] f32
    pub status: u64,       // [batch] u32
    pub top_tokens: u64,   // [batch, top_n] i32
    pub top_logprobs: u64, // [batch, top_n] f32
    /// The split kernels' scratch: `[batch, splits]` partials and `[batch]` arrival counters
    /// (0 before and after every launch).
    pub split_partials: u64, // [batch * splits * SPLIT_PARTIAL_WORDS] u32
    pub split_arrivals: u64, // [batch] u32
}

/// `sample_rows_{f32,f16,bf16}` or, for [`Numerics::Invariant`], `sample_rows_invariant_*`: one
/// block per row; with `splits > 1` (fast numerics only), `sample_rows_split_*` on a
/// `(splits, batch)` grid. [`SamplerKernel::Unfiltered`] (fast numerics only) takes the
/// `sample_rows_unfiltered_*` twins, [`SamplerKernel::Collected`] `sample_rows_collected_*` (one
/// block per row; split launches take `sample_rows_split_*`), whose arguments are the same.
///
/// # Safety
/// The caller guarantees: `logits` is the address of `batch * vocab` elements of `dtype` (f16/bf16
/// as their 16-bit patterns) and `params` of `batch` entries (`params_stride == 1`) or at least
/// one (`params_stride == 0`), in the context of `stream`; every output address holds at least
/// `batch` (`batch * top_n` for the top-n pair, when `top_n > 0`) elements; `top_n <= MAX_TOP_N`;
/// `vocab <= u32::MAX`; `batch` fits the grid; with `splits > 1`: `splits <= MAX_SPLITS`,
/// `split_partials` holds `batch * splits * SPLIT_PARTIAL_WORDS` and `split_arrivals` `batch`
/// words, all arrivals 0. The kernels bound every access by these sizes.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sample_rows(
    stream: &CudaStream,
    kernels: &SamplerKernels,
    kernel: SamplerKernel,
    numerics: Numerics,
    dtype: Dtype,
    batch: u32,
    logits: u64,        // [batch, vocab]
    params: u64,        // [batch] or [1] SamplingParams
    params_stride: u32, // 1, or 0 to share params[0]
    vocab: u32,
    method: u32, // DrawMethodCode: DRAW_GUMBEL or DRAW_INVERSE_CDF
    top_n: u32,
    splits: u32,
    out: &LaunchOutputs,
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
    b.arg(&logits);
    b.arg(&params);
    b.arg(&params_stride);
    b.arg(&vocab);
    b.arg(&method);
    b.arg(&top_n);
    b.arg(&out.tokens);
    b.arg(&out.logprobs);
    b.arg(&out.status);
    b.arg(&out.top_tokens);
    b.arg(&out.top_logprobs);
    if split {
        b.arg(&out.split_partials);
        b.arg(&out.split_arrivals);
    }
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
