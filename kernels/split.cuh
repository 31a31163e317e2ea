// What every split-row kernel shares: a row's slices, what a slice publishes, and the ticket that
// makes the row's last block to arrive the one that finishes it (kernels/sampler.cu explains the
// split kernels; kernels/unfiltered.cuh has a lighter pair for batches without filters).
#pragma once

#include "candidates.cuh"
#include "load.cuh"
#include "stream.cuh"

// A slice's published top k: at most this many (src/gpu/launch.rs SPLIT_PARTIAL_WORDS). With at
// most 32 slices (MAX_SPLITS) they all fit in the last block's candidate list.
#define SPLIT_SLICE_CANDIDATES 64
#define SPLIT_MAX_SLICES 32
static_assert(SPLIT_MAX_SLICES * SPLIT_SLICE_CANDIDATES <= CANDIDATE_CAPACITY,
              "merged candidates fit");

// What a slice publishes for its row's last block.
struct SlicePartial {
    RangeSummary summary;  // collectable rows: pad = candidates published, or SLICE_OVERFLOWED
    unsigned long long candidates[SPLIT_SLICE_CANDIDATES];  // packed, in rank order
};
static_assert(sizeof(SlicePartial) == (8 + 2 * SPLIT_SLICE_CANDIDATES) * sizeof(unsigned int),
              "SlicePartial is SPLIT_PARTIAL_WORDS words");
#define SLICE_OVERFLOWED 0xffffffffu

// Slice `split` of `splits` over a row of `vocab`: whole 16-byte chunks (so a slice of an aligned
// row is aligned, and Philox blocks of 4 tokens never straddle two slices).
struct Slice {
    unsigned int start;
    unsigned int len;
};

template <int DT>
__device__ __forceinline__ Slice slice_of(unsigned int vocab, unsigned int split,
                                          unsigned int splits)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const unsigned int per = (vocab + splits - 1u) / splits;
    const unsigned int slice = (per + VEC - 1u) / VEC * VEC;
    Slice s;
    s.start = min(split * slice, vocab);
    s.len = min(slice, vocab - s.start);
    return s;
}

// Called by every thread once its slice's partial is stored: true in the row's last block to
// arrive, whose threads may then read every slice's partial. Every thread that stored part of
// the partial fences, so that all of it is visible before the ticket is taken. `ticket` is a
// shared word.
__device__ __forceinline__ bool last_to_arrive(unsigned int* __restrict__ arrivals,
                                               unsigned int row_index, unsigned int splits,
                                               unsigned int& ticket)
{
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) ticket = atomicAdd(&arrivals[row_index], 1u);
    __syncthreads();
    if (ticket != splits - 1u) return false;
    __threadfence();
    return true;
}

// The last block fetches every summary of its row at once, a word a thread (volatile: from L2,
// where the other blocks' writes are), into `staged` (shared, SPLIT_MAX_SLICES summaries), and
// resets the row's ticket counter for the next launch (and graph replays). Read one field at a
// time by thread 0, each a round trip to L2, the combine took about 10 us at 31 slices on an H200
// (greedy, batch 1, vocab 128256: 16.0 us -> 6.0 under graph replay).
__device__ __forceinline__ const RangeSummary* stage_summaries(
    const SlicePartial* __restrict__ row_partials, unsigned int splits,
    unsigned int* __restrict__ arrivals, unsigned int row_index, unsigned int* staged)
{
    constexpr unsigned int WORDS = sizeof(RangeSummary) / sizeof(unsigned int);
    constexpr unsigned int STRIDE = sizeof(SlicePartial) / sizeof(unsigned int);
    const volatile unsigned int* words =
        reinterpret_cast<const volatile unsigned int*>(row_partials);
    for (unsigned int w = threadIdx.x; w < splits * WORDS; w += blockDim.x)
        staged[w] = words[(w / WORDS) * STRIDE + w % WORDS];
    __syncthreads();
    if (threadIdx.x == 0) arrivals[row_index] = 0u;
    return reinterpret_cast<const RangeSummary*>(staged);
}

// A streamable row's slice (grid = (splits, batch)): the block summarises its slice and publishes
// it; the row's last block to arrive combines the summaries in slice order (write_combined).
// Called by every thread. `ticket` is a shared word, `staged` shared room for SPLIT_MAX_SLICES
// summaries.
template <int DT>
__device__ __forceinline__ void stream_slice(unsigned int row_index, const SamplingParams& p,
                                             const typename Dtype<DT>::Raw* __restrict__ row,
                                             unsigned int vocab,
                                             SlicePartial* __restrict__ row_partials,
                                             unsigned int* __restrict__ arrivals,
                                             BlockScratch& scratch, unsigned int& ticket,
                                             unsigned int* staged, int* __restrict__ tokens,
                                             float* __restrict__ logprobs,
                                             unsigned int* __restrict__ status)
{
    const unsigned int split = blockIdx.x, splits = gridDim.x;
    const Slice slice = slice_of<DT>(vocab, split, splits);
    const typename Dtype<DT>::Raw* __restrict__ part = row + slice.start;
    const bool aligned = (reinterpret_cast<unsigned long long>(part) & 15ull) == 0ull;
    const RangeSummary s = stream_range<DT>(part, slice.len, slice.start, aligned, p, scratch);
    if (threadIdx.x == 0) row_partials[split].summary = s;
    if (!last_to_arrive(arrivals, row_index, splits, ticket)) return;
    const RangeSummary* ranges = stage_summaries(row_partials, splits, arrivals, row_index, staged);
    if (threadIdx.x == 0)
        write_combined<DT>(row_index, p, row, [&](unsigned int k) { return ranges[k]; }, splits,
                           tokens, logprobs, status);
}
