// Batches without filters: a lighter pair of kernels, so that two row blocks share an SM.
//
// The sampler's kernels hold every path (radix selects, candidate lists, top-n), and ptxas gives
// them 100-122 registers: a 512-thread block takes a whole SM, 16 warps whose loads alone cannot
// keep HBM busy (v9 on an H200, BENCHMARKS.md: the temperature-only pass read 1.3 TB/s where
// greedy read 2.9). A row that is greedy, or temperature-only with no top-n (`streamable`: the
// Gumbel draw, or the inverse CDF on rows its table holds), needs only stream_range and the
// row's finish (kernels/stream.cuh, kernels/stream_cdf.cuh). These kernels hold that path alone,
// within 64 registers on sm_90 (__launch_bounds__(512, 2)): 32 warps an SM, and at batch 256 on
// 132 SMs one wave where the general kernel runs two. (sm_80/89 spill a few words at 64: there
// they keep one block an SM; the host asks the driver how many fit, src/gpu/launch.rs.) They
// call the same functions in the same order as sample_rows_* / sample_rows_split_* do for such
// rows: the same bits (tests/stream_rows.rs).
//
// The host launches them only for batches it knows to be unfiltered (src/gpu/mod.rs,
// BatchFilters). A row they cannot sample — invalid parameters, or a filter, top-n or an
// inverse-CDF draw on a row longer than its table — gets STATUS_INVALID_PARAMS, and only that
// row.
#pragma once

#include "block.cuh"
#include "rows.cuh"
#include "split.cuh"
#include "stream.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define UNFILTERED_MIN_BLOCKS 1
#else
#define UNFILTERED_MIN_BLOCKS 2
#endif

struct UnfilteredShared {
    BlockScratch scratch;
    unsigned int ticket;
    RangeSummary staged[SPLIT_MAX_SLICES];
    CdfTable cdf;
};

// Whether an unfiltered kernel compiled for the draw `DRAW` can sample a row (else it is
// written as invalid): a greedy row under either method, a sampled one under its own.
template <unsigned int DRAW>
__device__ __forceinline__ bool unfiltered_sampleable(const SamplingParams& p, unsigned int vocab,
                                                      unsigned int method, unsigned int top_n)
{
    return params_valid(p) && streamable(p, vocab, method, top_n) &&
           (row_greedy(p, vocab) || method == DRAW);
}

// One block per row (grid.x = batch): the row in one read, as sample_row does it.
template <int DT, unsigned int DRAW>
__device__ __forceinline__ void stream_row(const SampleArgs& a, UnfilteredShared& sh)
{
    const unsigned int row_index = blockIdx.x;
    const SamplingParams p = row_params(a, row_index);
    if (!unfiltered_sampleable<DRAW>(p, a.vocab, a.method, a.out.top_n) ||
        row_processed(a.proc, row_index)) {
        write_invalid_row(a.out, row_index);
        return;
    }
    const typename Dtype<DT>::Raw* __restrict__ row = row_logits<DT>(a, row_index);
    const bool aligned = (reinterpret_cast<unsigned long long>(row) & 15ull) == 0ull;
    stream_whole_row<DT, DRAW>(row_index, p, a.method, row, a.vocab, aligned, sh.cdf, sh.scratch,
                               a.out.tokens, a.out.logprobs, a.out.status);
}

// Split rows (grid = (splits, batch)): each block summarises its slice and the row's last block
// combines them, as sample_row_split does for streamed rows.
template <int DT, unsigned int DRAW>
__device__ __forceinline__ void stream_row_split(const SampleArgs& a, UnfilteredShared& sh)
{
    const unsigned int row_index = blockIdx.y;
    const SamplingParams p = row_params(a, row_index);
    if (!unfiltered_sampleable<DRAW>(p, a.vocab, a.method, a.out.top_n) ||
        row_processed(a.proc, row_index)) {
        // Uniform over the row's blocks: the first writes the row, no block takes a ticket.
        if (blockIdx.x == 0u) write_invalid_row(a.out, row_index);
        return;
    }
    stream_slice<DT, DRAW>(row_index, p, a.method, row_logits<DT>(a, row_index), a.vocab,
                           a.partials + (size_t)row_index * gridDim.x, a.arrivals, sh.cdf,
                           sh.scratch, sh.ticket, reinterpret_cast<unsigned int*>(sh.staged),
                           a.out.tokens, a.out.logprobs, a.out.status);
}
