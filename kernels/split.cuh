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
static_assert(SPLIT_SLICE_CANDIDATES == COLLECTED_MAX_TOP_K,
              "a batch of small top-k rows has a light path at every size (row_rules.cuh)");

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

// Where an inverse-CDF row's draw falls, from its slices' summaries: the row's total (`norm`,
// relative to the row's maximum) and target, the slice whose running sum first exceeds the
// target (failing that, rounding: the last slice with mass), the row's sum before it, and its
// rescaling to the row's maximum (`outer`).
struct CdfSlice {
    unsigned int slice;
    float before, outer, target, norm;
};

// Every thread computes the same bits, from the staged summaries in slice order (as write_gumbel
// sums a Gumbel row's masses).
__device__ __forceinline__ CdfSlice cdf_slice(const SamplingParams& p, const RangeSummary* ranges,
                                              unsigned int splits, float row_max)
{
    const TemperatureShift shifted(p.temperature);
    auto outer = [&](unsigned int k) { return expf(shifted(ranges[k].max, row_max)); };
    auto contribution = [&](unsigned int k) {
        return ranges[k].finite == 0u ? 0.0f : ranges[k].mass * outer(k);
    };
    CdfSlice c;
    c.norm = 0.0f;
    for (unsigned int k = 0; k < splits; ++k) c.norm += contribution(k);
    c.target = cdf_target(p, c.norm);
    unsigned int chosen = 0xffffffffu, last = 0u;
    float chosen_before = 0.0f, last_before = 0.0f, running = 0.0f;
    for (unsigned int k = 0; k < splits; ++k) {
        const float m = contribution(k);
        if (m > 0.0f) {
            if (chosen == 0xffffffffu && running + m > c.target) {
                chosen = k;
                chosen_before = running;
            }
            last = k;
            last_before = running;
        }
        running += m;
    }
    const bool crossed = chosen != 0xffffffffu;
    c.slice = crossed ? chosen : last;
    c.before = crossed ? chosen_before : last_before;
    c.outer = outer(c.slice);
    return c;
}

// A streamable row's slice (grid = (splits, batch)): the block summarises its slice and publishes
// it; the row's last block to arrive combines the summaries in slice order. An inverse-CDF row's
// last block then reads the slice where the row's target falls once more and walks it
// (cdf_walk: that slice's table was in another block). Called by every thread. `ticket` is a
// shared word, `staged` shared room for SPLIT_MAX_SLICES summaries. `DRAW`: summarise_range.
template <int DT, unsigned int DRAW>
__device__ __forceinline__ void stream_slice(unsigned int row_index, const SamplingParams& p,
                                             unsigned int method,
                                             const typename Dtype<DT>::Raw* __restrict__ row,
                                             unsigned int vocab,
                                             SlicePartial* __restrict__ row_partials,
                                             unsigned int* __restrict__ arrivals, CdfTable& cdf,
                                             BlockScratch& scratch, unsigned int& ticket,
                                             unsigned int* staged, int* __restrict__ tokens,
                                             float* __restrict__ logprobs,
                                             unsigned int* __restrict__ status)
{
    const unsigned int split = blockIdx.x, splits = gridDim.x;
    const Slice slice = slice_of<DT>(vocab, split, splits);
    const typename Dtype<DT>::Raw* __restrict__ part = row + slice.start;
    const bool aligned = (reinterpret_cast<unsigned long long>(part) & 15ull) == 0ull;
    const RangeSummary s = summarise_range<DT, DRAW>(part, slice.len, slice.start, aligned, p,
                                                     method, cdf, scratch);
    if (threadIdx.x == 0) row_partials[split].summary = s;
    if (!last_to_arrive(arrivals, row_index, splits, ticket)) return;
    const RangeSummary* ranges = stage_summaries(row_partials, splits, arrivals, row_index, staged);
    auto range = [&](unsigned int k) { return ranges[k]; };
    const RowTotals r = row_totals(range, splits);
    if (write_undrawn(row_index, p, r, tokens, logprobs, status)) return;
    if (DRAW != DRAW_GUMBEL && inverse_cdf_draw(p, method)) {
        const CdfSlice draw = cdf_slice(p, ranges, splits, r.max);
        const Slice chosen = slice_of<DT>(vocab, draw.slice, splits);
        const typename Dtype<DT>::Raw* __restrict__ from = row + chosen.start;
        const bool from_aligned = (reinterpret_cast<unsigned long long>(from) & 15ull) == 0ull;
        const unsigned int token =
            chosen.start + cdf_walk<DT>(from, chosen.len, from_aligned,
                                        TemperatureShift(p.temperature), ranges[draw.slice].max,
                                        draw.before, draw.outer, draw.target, scratch);
        write_drawn<DT>(row_index, p, row, token, r.max, draw.norm, tokens, logprobs, status);
    } else if (DRAW != DRAW_INVERSE_CDF && threadIdx.x == 0) {
        write_gumbel<DT>(row_index, p, row, r, range, splits, tokens, logprobs, status);
    }
}
