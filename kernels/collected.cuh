// Batches whose rows all take a small top-k: a lighter kernel, so that two row blocks share an SM.
//
// The general kernels hold every path (radix selects over the row for top-p and top-n, the
// row-wide Gumbel and inverse-CDF passes) and ptxas gives them 106-118 registers on sm_90: one
// 512-thread block an SM, so at batch 256 on 132 SMs two waves, each row's block alone on its SM
// between the reads of its windows (sorts, reductions). A row with a Gumbel draw and a top-k of
// at most COLLECTED_MAX_TOP_K (any top-p, min-p and top-n) needs only collect_top_k's one read
// (kernels/collect.cuh) and the finish from the sorted candidates (kernels/ranked.cuh); a greedy
// row needs one scan. This kernel holds those paths alone, within 64 registers on sm_90
// (__launch_bounds__(512, UNFILTERED_MIN_BLOCKS)): 32 warps an SM, one wave at batch 256.
//
// The host launches it only for batches it knows to be of such rows (src/gpu/mod.rs,
// BatchFilters::SmallTopK) and at batches too large to split (small batches take the general
// split kernels, which serve the same rows). A row it cannot sample — invalid parameters, a
// filter other than a small top-k, an inverse-CDF draw — gets STATUS_INVALID_PARAMS, and only
// that row. Rows it samples get the general kernels' bits, but for one case: a row whose tokens
// at collect_top_k's floor overflow (thousands of exact ties) and overflow the general kernel's
// second pass too. There the general kernel draws in a pass over the row and this one from the
// selected top k: the same token, a logprob summed in another order.
#pragma once

#include "block.cuh"
#include "collect.cuh"
#include "numerics.cuh"
#include "ranked.cuh"
#include "rows.cuh"
#include "select.cuh"
#include "split.cuh"

// Greedy rows, and Gumbel draws with a small top-k (any top-p and min-p): kernels/row_rules.cuh.
__device__ __forceinline__ bool collected_sampleable(const SamplingParams& p, unsigned int vocab,
                                                     unsigned int method)
{
    return params_valid(p) &&
           (row_greedy(p, vocab) || (method == DRAW_GUMBEL && row_small_top_k(p, vocab)));
}

// The row's top k, exactly, into sh.hist[0, k) (unsorted) when collect_top_k overflowed: radix
// select the k-th in rank order, then collect the tokens of that prefix. k below the row's finite
// count (an overflow means more than CANDIDATE_CAPACITY finite tokens). Returns k.
template <int DT>
__device__ unsigned int select_top_k(const typename Dtype<DT>::Raw* __restrict__ row,
                                     unsigned int vocab, bool aligned, unsigned int k,
                                     SelectShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const Cut cut = top_k_cut<DT>(row, vocab, aligned, k, sh);
    if (threadIdx.x == 0) sh.candidate_count = 0u;
    __syncthreads();
    for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const unsigned int key = order_key(x[j]);
            if (x[j] != NEG_INF && in_cut(cut, key, start + j)) {
                const unsigned int slot = atomicAdd(&sh.candidate_count, 1u);
                if (slot < CANDIDATE_CAPACITY) sh.hist[slot] = pack_candidate(key, start + j);
            }
        }
    });
    __syncthreads();
    return k;
}

// One block per row (grid.x = batch). `maxima`: blockDim.x entries of shared memory.
template <int DT>
__device__ void collected_row(const SampleArgs& a, SelectShared& sh, unsigned long long* maxima)
{
    typedef FastNumerics N;
    const unsigned int row_index = blockIdx.x;
    const unsigned int vocab = a.vocab, top_n = a.out.top_n;
    const RowOutputs& out = a.out;
    const SamplingParams p = row_params(a, row_index);
    if (!collected_sampleable(p, a.vocab, a.method) || row_processed(a.proc, row_index)) {
        write_invalid_row(out, row_index);
        return;
    }
    const typename Dtype<DT>::Raw* __restrict__ row = row_logits<DT>(a, row_index);
    const bool aligned = (reinterpret_cast<unsigned long long>(row) & 15ull) == 0ull;

    // One read collects the candidates and the row's summary; greedy rows, and rows whose
    // candidates overflowed, scan the row for the summary instead.
    RangeSummary first;
    unsigned int count = 0u;
    const bool windowed =
        p.temperature > 0.0f &&
        collect_top_k<DT>(row, vocab, 0u, aligned, p.top_k, sh, maxima, first, &count);
    if (!windowed) {
        RowScan scan;
        scan_row<DT>(row, vocab, aligned, sh.scratch, scan, first);
    }
    if (first.bad != 0u || first.finite == 0u) {
        write_row(out, row_index, -1, __int_as_float(0x7fffffff),
                  first.bad != 0u ? STATUS_NON_FINITE_LOGIT : STATUS_NO_FINITE_LOGIT, 0u);
        return;
    }
    if (p.temperature == 0.0f) {
        write_greedy_row(out, row_index, first.best_token);
        return;
    }
    const bool top_k_on = (unsigned long long)p.top_k < first.finite;
    if (!windowed) count = select_top_k<DT>(row, vocab, aligned, p.top_k, sh);

    // The finish, as sample_row's from its candidates.
    const ScaledRow<N> scale(first.best_score, p.temperature);
    Cut cut_k = whole_order();
    Cut cut_p = whole_order();
    unsigned int candidates = rank_candidates(p, top_k_on, count, scale, sh, cut_k, cut_p);
    if (p.min_p > 0.0f) candidates = trim_to_min_p(candidates, p.min_p, scale, sh);
    const CandidateDraw<N> draw = draw_candidates(p, candidates, scale, sh);
    const float log_norm = N::log_of_mass(draw.norm);
    const float logprob =
        N::sub(scale.shifted(Dtype<DT>::widen(row[draw.token])), log_norm);
    const unsigned int filled = min(top_n, candidates);
    write_candidate_top_n(out, row_index, filled, scale, log_norm, sh);
    write_row(out, row_index, (int)draw.token, logprob, STATUS_OK, filled);
}
