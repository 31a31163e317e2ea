// The top-k candidates of a row in one read from DRAM.
//
// The small-k path (kernels/candidates.cuh) reads a row twice: once for the threads' maxima, whose
// k-th largest is a floor under the row's k-th largest logit, and once to collect every token at
// or above that floor. At batch >= 132 the second read comes from DRAM too (132 rows of 512 KiB
// outgrow a 50 MiB L2). Here the row is walked in windows of 32 values a thread, as
// kernels/stream.cuh walks temperature-only rows, and the floor only ever rises:
//  - a window is read once, collecting every finite token at or above the current floor into
//    shared memory and counting them;
//  - when they did not fit (or before any floor is set), the floor is raised to the k-th largest
//    of this window's thread maxima — k distinct tokens of the row, so still at most the row's
//    k-th largest logit — the collected list is trimmed to the new floor if it is long, and the
//    window is collected again, from L1.
// Every top-k token is at or above every floor the walk sets, so it is collected in its window:
// the list holds the top k (and a few hundred others on LM-like rows, which the caller sorts).
// A row whose candidates still do not fit (thousands of tokens tied at the floor) is reported
// incomplete and the caller falls back to the two-read path: slower, never different.
#pragma once

#include "block.cuh"
#include "candidates.cuh"
#include "load.cuh"
#include "select.cuh"
#include "stream.cuh"

#ifdef BATCHSAMPLE_HOST_SIMT
// Rows whose candidates outgrew shared memory and took the two-read path, counted on the host
// shim (defined in sampler.cu): a fallback costs a DRAM read, never a result, so only a count
// shows it (tests/collect_rows.rs checks that only the rows built to overflow fall back).
extern "C" unsigned long long host_simt_collect_fallbacks;
#endif

// Pads ranked[count, width) with zeros (below every candidate) and sorts ranked[0, width) in
// descending rank order, width the power of two at or above count. Returns width.
__device__ __forceinline__ unsigned int sort_collected(unsigned long long* ranked,
                                                       unsigned int count)
{
    unsigned int width = 1u;
    while (width < count) width <<= 1;
    for (unsigned int i = count + threadIdx.x; i < width; i += blockDim.x) ranked[i] = 0ull;
    __syncthreads();
    bitonic_sort_descending(ranked, width);
    __syncthreads();  // a width-1 sort has no barrier of its own
    return width;
}

// The first-pass summary of `len` logits at `range` (max, argmax, finite count, bad flag; no
// draw fields) and, in sh.hist[0, *count), unsorted, every finite token at or above a floor that
// is at most the range's k-th largest logit (all the finite tokens when there are at most k), as
// row indices (`first` is the row index of range[0], a multiple of the dtype's vector width).
// `maxima` is blockDim.x entries of shared memory. Returns false, with nothing else defined, when
// the tokens at the floor outgrow CANDIDATE_CAPACITY. Called by every thread; the results are
// block-uniform. k in [1, blockDim.x]; blockDim.x a power of two.
template <int DT>
__device__ bool collect_top_k(const typename Dtype<DT>::Raw* __restrict__ range, unsigned int len,
                              unsigned int first, bool aligned, unsigned int k, SelectShared& sh,
                              unsigned long long* maxima, RangeSummary& summary,
                              unsigned int* count)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const unsigned int window = 32u * blockDim.x;
    unsigned long long* ranked = sh.hist;
    RowScan whole;          // this thread's share of the row
    float floor = NEG_INF;  // block-uniform; only rises
    unsigned int held = 0u; // block-uniform: entries in ranked
    if (threadIdx.x == 0) sh.candidate_count = 0u;
    __syncthreads();

    // Collects the finite tokens of x at or above the floor (if `store`) and counts them.
    auto collect = [&](unsigned int at, const float (&x)[VEC], bool store, unsigned int& found) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            if (x[j] >= floor && x[j] != NEG_INF) {
                ++found;
                if (store) {
                    const unsigned int slot = atomicAdd(&sh.candidate_count, 1u);
                    if (slot < CANDIDATE_CAPACITY)
                        ranked[slot] = pack_candidate(order_key(x[j]), at + j);
                }
            }
        }
    };

    for (unsigned int w0 = 0; w0 < len; w0 += window) {
        const unsigned int wlen = min(window, len - w0);
        const typename Dtype<DT>::Raw* __restrict__ win = range + w0;
        const unsigned int base = first + w0;  // row index of win[0]
        // Before any floor is set the window is only counted: collecting every token of an
        // LM-like window would serialise thousands of atomics on one shared counter.
        const bool storing = floor != NEG_INF;
        RowScan scan;
        unsigned int found = 0u;
        for_each_chunk<DT, READ_AHEAD_CHUNKS>(win, wlen, aligned,
                                              [&](unsigned int at, const float (&x)[VEC]) {
                                                  scan.add(base + at, x);
                                                  collect(base + at, x, storing, found);
                                              });
        whole.finite += scan.finite;
        whole.bad |= scan.bad;
        if (scan.best > whole.best) {  // later windows hold higher indices: ties stay
            whole.best = scan.best;
            whole.best_index = scan.best_index;
        }
        if (w0 + window < len) prefetch_l2(win + window, range + min(len, w0 + 2u * window));
        const unsigned int arrived = (unsigned int)block_sum_u64(found, sh.scratch);
        if (storing && held + arrived <= CANDIDATE_CAPACITY) {
            held += arrived;
            continue;
        }
        if (held + arrived > CANDIDATE_CAPACITY) {
            // Raise the floor to the k-th largest of the window's thread maxima ...
            maxima[threadIdx.x] = pack_candidate(order_key(scan.best), scan.best_index);
            __syncthreads();
            bitonic_sort_descending(maxima, blockDim.x);
            floor = fmaxf(floor, key_to_float(candidate_key(maxima[k - 1u])));
            if (held > CANDIDATE_CAPACITY / 2u) {
                // ... and, with the list half full, to its own k-th largest, keeping only the
                // entries at or above the floor (a prefix once sorted).
                sort_collected(ranked, held);
                if (held >= k) floor = fmaxf(floor, key_to_float(candidate_key(ranked[k - 1u])));
                const unsigned int floor_key = order_key(floor);
                unsigned long long kept = 0ull;
                for (unsigned int i = threadIdx.x; i < held; i += blockDim.x)
                    kept += candidate_key(ranked[i]) >= floor_key ? 1ull : 0ull;
                held = (unsigned int)block_sum_u64(kept, sh.scratch);
            }
        }
        // Collect the window again from L1 (the first read stored nothing, or overflowed; slots
        // from `held` on are rewritten).
        if (threadIdx.x == 0) sh.candidate_count = held;
        __syncthreads();
        unsigned int again = 0u;
        for_each_chunk<DT>(win, wlen, aligned, [&](unsigned int at, const float (&x)[VEC]) {
            collect(base + at, x, true, again);
        });
        held += (unsigned int)block_sum_u64(again, sh.scratch);
        if (held > CANDIDATE_CAPACITY) {
#ifdef BATCHSAMPLE_HOST_SIMT
            if (threadIdx.x == 0) ++host_simt_collect_fallbacks;
#endif
            return false;
        }
    }
    summary.pad = 0u;
    block_reduce_summary(whole.finite, whole.bad ? 1 : 0, whole.best, whole.best_index, 0.0f,
                         sh.scratch, summary);
    summary.max = summary.best_score;
    summary.argmax = summary.best_token;
    *count = held;
    return true;
}
