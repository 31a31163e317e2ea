// Selection in rank order (larger logit first, ties by lower index) without sorting: radix
// select over the 32-bit order key in three passes of 11, 11 and 10 bits, with histograms of
// integer weights in shared memory (a count, or a probability mass in 2^-32 fixed point) so the
// result is the same in any order of the atomics. A `Row` is a raw row pointer or a
// ProcessedRow (kernels/processing.cuh): each pass reads it through for_each_chunk / load_chunk.
#pragma once

#include "block.cuh"
#include "load.cuh"
#include "processing.cuh"  // for_each_chunk and load_chunk of a processed row

#define RADIX_BINS 2048

struct SelectShared {
    BlockScratch scratch;
    unsigned long long hist[RADIX_BINS];
    unsigned int found_digit;
    unsigned long long found_before;
    unsigned int found_index;
    unsigned int candidate_count;
};

// A prefix of the rank order: every key above `tau`, and the keys equal to `tau` up to
// `last_index`. The whole order is {tau = 0, last_index = ~0u} (no float has key 0).
struct Cut {
    unsigned int tau;
    unsigned int last_index;
};

__device__ __forceinline__ Cut whole_order() { return Cut{0u, 0xffffffffu}; }

__device__ __forceinline__ bool in_cut(Cut c, unsigned int key, unsigned int index)
{
    return key > c.tau || (key == c.tau && index <= c.last_index);
}

// Probability mass of weight w in [0, 1], in 2^-32 fixed point (truncated): integer sums are
// exact and associative. A row of up to 2^20 tokens sums to at most 2^52.
__device__ __forceinline__ unsigned long long fixed_mass(float w)
{
    return (unsigned long long)(w * 4294967296.0f);
}

struct SelectResult {
    unsigned int tau;               // key of the element where the running weight reaches target
    unsigned long long above;       // weight strictly above tau
    unsigned long long at;          // weight of all accepted elements equal to tau
    unsigned long long target;      // the absolute target that was reached
};

// The fixed-point mass that top-p must reach: ceil(p * total), at least 1. (p < 1 and a total of
// at least 2^32 — the row's maximum alone weighs 2^32 — keep it at or below the total.)
__device__ __forceinline__ unsigned long long mass_target(float p, unsigned long long total)
{
    const double goal = (double)p * (double)total;
    unsigned long long t = (unsigned long long)goal;
    if ((double)t < goal) ++t;
    return t == 0ull ? 1ull : t;
}

// Given a histogram of `bins` digits in sh.hist, finds the digit (counted from the top) where the
// running weight first reaches `remaining`, and stores it and the weight above it in
// sh.found_digit / sh.found_before. When `fraction` is positive, the target is first replaced by
// ceil(fraction * total) (the caller's running weight above is then zero) and written back to
// *target. `*total` gets the histogram's total. Ends with a barrier.
__device__ __forceinline__ void find_crossing(SelectShared& sh, unsigned int bins,
                                              unsigned long long remaining,
                                              unsigned long long* total, float fraction,
                                              unsigned long long* target)
{
    // Thread t owns `per` consecutive digits counted from the top; a scan over threads gives
    // each its weight above, and the one whose range holds the target walks its digits.
    const unsigned int per = bins / blockDim.x;
    const unsigned int top = bins - 1u - threadIdx.x * per;
    unsigned long long local = 0ull;
    for (unsigned int d = 0; d < per; ++d) local += sh.hist[top - d];
    const unsigned long long exclusive = block_exclusive_scan_u64(local, total, sh.scratch);
    if (fraction > 0.0f) {
        *target = mass_target(fraction, *total);
        remaining = *target;
    }
    if (exclusive < remaining && exclusive + local >= remaining) {
        unsigned long long running = exclusive;
        for (unsigned int d = 0; d < per; ++d) {
            const unsigned long long h = sh.hist[top - d];
            if (running + h >= remaining) {
                sh.found_digit = top - d;
                sh.found_before = running;
                break;
            }
            running += h;
        }
    }
    __syncthreads();
}

// Walks the rank order over the elements that `weight(key, index, x)` gives a nonzero weight and
// finds where the running weight first reaches the target: `target` itself, or, when `fraction`
// is positive, ceil(fraction * total weight). The caller guarantees the total reaches it.
template <int DT, typename Row, typename Weight>
__device__ SelectResult radix_select(Row row,
                                     unsigned int vocab, bool aligned,
                                     unsigned long long target, float fraction, Weight weight,
                                     SelectShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    unsigned int prefix = 0u, prefix_mask = 0u;
    unsigned long long before = 0ull;
    SelectResult result;
    for (int pass = 0; pass < 3; ++pass) {
        const int shift = pass == 0 ? 21 : (pass == 1 ? 10 : 0);
        const unsigned int bins = pass < 2 ? 2048u : 1024u;
        for (unsigned int b = threadIdx.x; b < RADIX_BINS; b += blockDim.x) sh.hist[b] = 0ull;
        __syncthreads();
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const unsigned int key = order_key(x[j]);
                if ((key & prefix_mask) != prefix) continue;
                const unsigned long long w = weight(key, start + j, x[j]);
                if (w != 0ull) atomicAdd(&sh.hist[(key >> shift) & (bins - 1u)], w);
            }
        });
        __syncthreads();
        unsigned long long total;
        find_crossing(sh, bins, target - before, &total, pass == 0 ? fraction : 0.0f, &target);
        const unsigned int digit = sh.found_digit;
        before += sh.found_before;
        prefix |= digit << shift;
        prefix_mask |= (bins - 1u) << shift;
        if (pass == 2) result.at = sh.hist[digit];
        __syncthreads();
    }
    result.tau = prefix;
    result.above = before;
    result.target = target;
    return result;
}

// The index of the n-th (1-based) accepted element with key `tau`, in index order.
template <int DT, typename Row, typename Accept>
__device__ unsigned int nth_equal_index(Row row,
                                        unsigned int vocab, bool aligned, unsigned int tau,
                                        unsigned long long n, Accept accept, SelectShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    unsigned long long running = 0ull;
    const unsigned int tile = blockDim.x * VEC;
    for (unsigned int base = 0; base < vocab && running < n; base += tile) {
        const unsigned int start = base + threadIdx.x * VEC;
        float x[VEC];
        load_chunk<DT>(row, vocab, start, aligned, x);
        bool match[VEC];
        unsigned long long local = 0ull;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            match[j] = order_key(x[j]) == tau && accept(tau, start + j, x[j]);
            local += match[j] ? 1ull : 0ull;
        }
        unsigned long long total;
        const unsigned long long exclusive = block_exclusive_scan_u64(local, &total, sh.scratch);
        if (running + exclusive < n && running + exclusive + local >= n) {
            unsigned long long seen = running + exclusive;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                if (match[j] && ++seen == n) sh.found_index = start + j;
            }
        }
        running += total;  // the same in every thread, so the loop exits uniformly
    }
    __syncthreads();
    const unsigned int index = sh.found_index;
    __syncthreads();
    return index;
}

// The cut that keeps the first `result.target` units of weight, given a select result:
// of the elements equal to tau, the lowest-index ones until the target is reached.
template <int DT, typename Row, typename Accept>
__device__ Cut cut_at(Row row, unsigned int vocab,
                      bool aligned, SelectResult r, unsigned long long unit_weight, Accept accept,
                      SelectShared& sh)
{
    // How many elements equal to tau are needed, and how many there are (each weighs `unit`).
    const unsigned long long needed = (r.target - r.above + unit_weight - 1ull) / unit_weight;
    const unsigned long long available = r.at / unit_weight;
    if (needed >= available) return Cut{r.tau, 0xffffffffu};
    return Cut{r.tau, nth_equal_index<DT>(row, vocab, aligned, r.tau, needed, accept, sh)};
}

// The top-k cut: the first k finite tokens in rank order, k below the row's finite count.
template <int DT, typename Row>
__device__ Cut top_k_cut(Row row, unsigned int vocab,
                         bool aligned, unsigned int k, SelectShared& sh)
{
    auto counted = [&](unsigned int, unsigned int, float x) {
        return x != NEG_INF ? 1ull : 0ull;
    };
    auto finite = [&](unsigned int, unsigned int, float x) { return x != NEG_INF; };
    const SelectResult r = radix_select<DT>(row, vocab, aligned, k, 0.0f, counted, sh);
    return cut_at<DT>(row, vocab, aligned, r, 1ull, finite, sh);
}
