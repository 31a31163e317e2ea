//! Every sampler kernel launch: the family a launch takes ([`SamplerKernel::for_launch`]), its
//! geometry (threads, splits), and the launch of the entry point the kernel table names with
//! the one `SampleArgs` argument. (Experiment 2's projection and cuBLAS launches
//! live with that experiment, `cli/src/drift/batch_size/launch.rs`.)

use super::args::SampleArgs;
use super::constants as k;
use super::table::{dtype_column, KernelKey, DTYPES, FAMILIES};
use crate::dtype::Dtype;
use crate::error::{Result, SampleError};
use crate::params::{BatchFilters, DrawMethod, Numerics};
use cudarc::driver::{
    CudaFunction, CudaModule, CudaStream, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use std::sync::Arc;

/// `SAMPLER_MAX_THREADS` in `kernels/sampler.cu`: the most threads a row block may have.
pub const SAMPLER_MAX_THREADS: u32 = k::SAMPLER_MAX_THREADS;
/// `BATCHSAMPLE_MAX_TOP_N` in `kernels/params.cuh`.
pub const MAX_TOP_N: usize = k::BATCHSAMPLE_MAX_TOP_N as usize;
/// Most blocks per row of the split kernels (`SPLIT_MAX_SLICES` in `kernels/split.cuh`).
pub const MAX_SPLITS: usize = k::SPLIT_MAX_SLICES as usize;
/// Fewest logits per split-row slice: below this a block's fixed costs (its reductions, the
/// ticket) outweigh the parallelism gained.
pub const MIN_SPLIT_SLICE: usize = 4096;
/// `sizeof(SlicePartial)` in `kernels/split.cuh`, in u32 words: what one split-row slice
/// publishes for its row's last block (a summary of 8 words, then up to
/// `SPLIT_SLICE_CANDIDATES` top-k candidates of two words each; split.cuh asserts the size).
pub const SPLIT_PARTIAL_WORDS: usize = 8 + 2 * k::SPLIT_SLICE_CANDIDATES as usize;

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
pub const CDF_STREAM_MAX_VOCAB: usize =
    (k::CDF_MAX_WINDOWS * k::CDF_WINDOW_VALUES * SAMPLER_MAX_THREADS) as usize;

/// `DrawMethodCode` in `kernels/params.cuh`: `SampleArgs::method`.
pub const DRAW_GUMBEL: u32 = k::DRAW_GUMBEL;
pub const DRAW_INVERSE_CDF: u32 = k::DRAW_INVERSE_CDF;

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

/// Every sampler entry point, by family of the kernel table ([`FAMILIES`]) and dtype, and
/// `exact_math_probe` (the invariant numerics' exp and log over an array).
pub(crate) struct SamplerKernels {
    /// `entries[family][dtype_column(dtype)]`.
    entries: Vec<[CudaFunction; 3]>,
    /// Row blocks of [`SAMPLER_MAX_THREADS`] threads an SM holds at once, as the driver
    /// reports it for this device (the kernels' registers and shared memory decide).
    general_blocks_per_sm: usize,
    unfiltered_blocks_per_sm: usize,
    exact_math_probe: CudaFunction,
}

impl SamplerKernels {
    pub(crate) fn load(module: &Arc<CudaModule>) -> Result<Self> {
        let mut entries = Vec::with_capacity(FAMILIES.len());
        for family in &FAMILIES {
            let load = |dtype: Dtype| module.load_function(&family.entry(dtype));
            entries.push([load(DTYPES[0])?, load(DTYPES[1])?, load(DTYPES[2])?]);
        }
        // The fewest blocks an SM holds over the split families of a kind (at least 1): what
        // the split count takes the GPU's width to be.
        let blocks_per_sm = |kind: SamplerKernel| -> Result<usize> {
            let mut fewest = u32::MAX;
            for (family, functions) in FAMILIES.iter().zip(&entries) {
                if family.kind != kind || !family.split {
                    continue;
                }
                for f in functions {
                    fewest = fewest.min(f.occupancy_max_active_blocks_per_multiprocessor(
                        SAMPLER_MAX_THREADS,
                        0,
                        None,
                    )?);
                }
            }
            Ok(fewest.clamp(1, u32::MAX) as usize)
        };
        Ok(SamplerKernels {
            general_blocks_per_sm: blocks_per_sm(SamplerKernel::General)?,
            unfiltered_blocks_per_sm: blocks_per_sm(SamplerKernel::Unfiltered)?,
            entries,
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

    fn get(&self, key: &KernelKey) -> Result<&CudaFunction> {
        let family = key.family().ok_or_else(|| {
            SampleError::Capacity(format!("no sampler kernel serves the launch {key:?}"))
        })?;
        Ok(&self.entries[family][dtype_column(key.dtype)])
    }
}

/// Threads per row block: enough 16-byte chunks to cover the row once, a power of two in
/// [64, SAMPLER_MAX_THREADS] (the kernels' scans assume a power of two).
pub fn threads_for(vocab: usize, dtype: Dtype) -> u32 {
    let chunks = vocab.div_ceil(16 / dtype.size_bytes()).max(1);
    (chunks.next_power_of_two() as u32).clamp(64, SAMPLER_MAX_THREADS)
}

/// One sampler launch: the entry point `key` names (kernels/sampler_table.cuh), one block per
/// row of `batch` (a `(splits, batch)` grid when `key.split`), the threads [`threads_for`] gives
/// the row length, and `args` as the kernel's one argument.
///
/// # Safety
/// The caller guarantees that `args` describes buffers of `stream`'s context that hold what
/// `kernels/args.cuh` says for `batch` rows: the logits `(batch - 1) * row_stride + vocab`
/// elements of `key.dtype` (f16/bf16 as their 16-bit patterns), the packed parameters 1 or
/// `batch` entries (`params_stride` 0 or 1) or each non-zero field array `batch` entries, the
/// outputs `batch` elements and the top-n pair `(batch - 1) * top_stride + top_n` when
/// `top_n > 0`, `top_n <= MAX_TOP_N <= top_stride` or `top_n == 0`; `vocab <= i32::MAX`,
/// `batch` fits the grid; with `key.split`: `splits <= MAX_SPLITS`, `partials` holding
/// `batch * splits * SPLIT_PARTIAL_WORDS` and `arrivals` `batch` words, all arrivals 0. The
/// kernels bound every access by these sizes.
pub(crate) unsafe fn sample_rows(
    stream: &CudaStream,
    kernels: &SamplerKernels,
    key: &KernelKey,
    batch: u32,
    splits: u32,
    args: &SampleArgs,
) -> Result<()> {
    if batch == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: if key.split {
            (splits, batch, 1)
        } else {
            (batch, 1, 1)
        },
        block_dim: (threads_for(args.vocab as usize, key.dtype), 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(kernels.get(key)?);
    b.arg(args);
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
