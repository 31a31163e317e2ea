// The small-k path: when top-k is on with k at most the block's thread count, the k-th largest
// of the threads' maxima bounds the k-th largest logit from below, and every token at or above it
// is collected into shared memory (if they fit) and sorted in rank order — in the same read of
// the row (kernels/collect.cuh), or, where that overflows or for top-p alone, in a second pass. top-k, top-p, min-p, the Gumbel draw and top-n then need no further pass over the
// row. The decisions are the radix path's exactly: same rank order, same fixed-point masses,
// same target, same crossing rule.
#pragma once

#include "block.cuh"
#include "load.cuh"
#include "select.cuh"

// Candidates live in the radix histogram's storage, one u64 each.
#define CANDIDATE_CAPACITY RADIX_BINS

// Rank order as one u64: key high, then the complement of the index, so that a larger value
// ranks first (larger logit, then lower index). 0 is below every candidate (padding).
__device__ __forceinline__ unsigned long long pack_candidate(unsigned int key, unsigned int index)
{
    return ((unsigned long long)key << 32) | (unsigned long long)(0xffffffffu - index);
}
__device__ __forceinline__ unsigned int candidate_key(unsigned long long c)
{
    return (unsigned int)(c >> 32);
}
__device__ __forceinline__ unsigned int candidate_index(unsigned long long c)
{
    return 0xffffffffu - (unsigned int)c;
}

// Sorts a[0..n) in descending order; n a power of two. Called by the whole block.
__device__ __forceinline__ void bitonic_sort_descending(unsigned long long* a, unsigned int n)
{
    for (unsigned int k = 2; k <= n; k <<= 1) {
        for (unsigned int j = k >> 1; j > 0; j >>= 1) {
            for (unsigned int i = threadIdx.x; i < n; i += blockDim.x) {
                const unsigned int partner = i ^ j;
                if (partner > i) {
                    const unsigned long long x = a[i], y = a[partner];
                    const bool descending = (i & k) == 0;
                    if (descending ? x < y : x > y) {
                        a[i] = y;
                        a[partner] = x;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// The number of leading candidates (1-based position) whose running weight first reaches
// `target`, over weights `weight(j)` of candidates j < n; n if it is never reached. Thread t owns
// a contiguous run of candidates, so the sum is the same integer in any order.
template <typename Weight>
__device__ unsigned int candidate_crossing(unsigned int n, unsigned long long target,
                                           Weight weight, SelectShared& sh)
{
    const unsigned int per = (n + blockDim.x - 1) / blockDim.x;
    const unsigned int first = threadIdx.x * per;
    unsigned long long local = 0ull;
    for (unsigned int j = first; j < first + per && j < n; ++j) local += weight(j);
    unsigned long long total;
    const unsigned long long exclusive = block_exclusive_scan_u64(local, &total, sh.scratch);
    if (threadIdx.x == 0) sh.found_index = n;
    __syncthreads();
    if (exclusive < target && exclusive + local >= target) {
        unsigned long long running = exclusive;
        for (unsigned int j = first; j < first + per && j < n; ++j) {
            running += weight(j);
            if (running >= target) {
                sh.found_index = j + 1;
                break;
            }
        }
    }
    __syncthreads();
    const unsigned int m = sh.found_index;
    __syncthreads();
    return m;
}

// The sum of `weight(j)` over j < n, as a block-wide integer sum.
template <typename Weight>
__device__ unsigned long long candidate_total(unsigned int n, Weight weight, SelectShared& sh)
{
    unsigned long long local = 0ull;
    for (unsigned int j = threadIdx.x; j < n; j += blockDim.x) local += weight(j);
    return block_sum_u64(local, sh.scratch);
}
