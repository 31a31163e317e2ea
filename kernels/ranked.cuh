// A row's finish from its candidates: the tokens collected into shared memory (kernels/collect.cuh,
// or the small-k second pass in sampler.cu) sorted in rank order, where top-k, top-p and min-p
// are cuts of a prefix and the Gumbel draw and top-n read nothing else. The general kernels
// (sample_row) and the collected kernels (kernels/collected.cuh) both finish here, so the two
// give the same bits.
#pragma once

#include "args.cuh"
#include "block.cuh"
#include "candidates.cuh"
#include "collect.cuh"
#include "philox.cuh"
#include "select.cuh"
#include "stream.cuh"

// A row's scaled, max-shifted logit d = (x - max) / T and its weight exp(d) in (0, 1]: never
// overflows. A multiply by the reciprocal instead of a division per token: the f64 reference
// divides, and the two differ by rounding only (the parity tests bound it). A subnormal
// temperature has no finite reciprocal (0 * inf would be NaN at the maximum): such rows divide.
template <typename N>
struct ScaledRow {
    float max;
    float temperature;
    float inv_temperature;
    bool reciprocal_ok;

    __device__ __forceinline__ ScaledRow(float row_max, float t)
        : max(row_max), temperature(t), inv_temperature(N::div(1.0f, t)),
          reciprocal_ok(inv_temperature <= 3.402823466e38f)
    {
    }
    __device__ __forceinline__ float shifted(float x) const
    {
        return reciprocal_ok ? N::mul(N::sub(x, max), inv_temperature)
                             : N::div(N::sub(x, max), temperature);
    }
    __device__ __forceinline__ float weight(float x) const { return N::exp(shifted(x)); }
};

// Gumbel score: d + g, g = -ln(-ln u).
template <typename N>
__device__ __forceinline__ float gumbel_score(float d, float u)
{
    return N::sub(d, gumbel_noise<N>(u));
}

// The fixed-point mass of sorted candidate j, as top-p weighs it (an integer: sums in any order
// are the same).
template <typename N>
__device__ __forceinline__ auto candidate_mass(const ScaledRow<N>& s,
                                               const unsigned long long* ranked)
{
    return [&s, ranked](unsigned int j) {
        return fixed_mass(s.weight(key_to_float(candidate_key(ranked[j]))));
    };
}

// The top-p cut within the first n sorted candidates in sh.hist: the fewest whose mass reaches
// `target` (n if none do). Returns their count; `cut_p` gets the cut.
template <typename Mass>
__device__ unsigned int top_p_cut(unsigned int n, unsigned long long target, Mass mass,
                                  SelectShared& sh, Cut& cut_p)
{
    const unsigned int m = candidate_crossing(n, target, mass, sh);
    cut_p = Cut{candidate_key(sh.hist[m - 1u]), candidate_index(sh.hist[m - 1u])};
    return m;
}

// Sorts the `count` collected tokens in sh.hist into rank order and takes the top-k and top-p
// cuts within them: they hold the top k (`top_k_on`) or every finite token. Returns how many of
// the sorted candidates are kept; `cut_k` and `cut_p` get the cuts as prefixes of the rank order.
template <typename N>
__device__ unsigned int rank_candidates(const SamplingParams& p, bool top_k_on,
                                        unsigned int count, const ScaledRow<N>& s,
                                        SelectShared& sh, Cut& cut_k, Cut& cut_p)
{
    sort_collected(sh.hist, count);
    const unsigned long long* ranked = sh.hist;
    unsigned int candidates = count;
    if (top_k_on) {
        const unsigned long long kth = ranked[p.top_k - 1u];
        cut_k = Cut{candidate_key(kth), candidate_index(kth)};
        candidates = p.top_k;
    }
    if (p.top_p < 1.0f) {
        const auto mass = candidate_mass(s, ranked);
        const unsigned long long target =
            mass_target(p.top_p, candidate_total(candidates, mass, sh));
        candidates = top_p_cut(candidates, target, mass, sh, cut_p);
    }
    return candidates;
}

// min-p keeps a prefix of the rank order too: the first `candidates` sorted candidates trimmed
// to those whose weight reaches min_p (the ones below it form a suffix).
template <typename N>
__device__ unsigned int trim_to_min_p(unsigned int candidates, float min_p, const ScaledRow<N>& s,
                                      SelectShared& sh)
{
    const unsigned long long* ranked = sh.hist;
    auto below = [&](unsigned int j) {
        return s.weight(key_to_float(candidate_key(ranked[j]))) >= min_p ? 0ull : 1ull;
    };
    return candidates - (unsigned int)candidate_total(candidates, below, sh);
}

template <typename N>
struct CandidateDraw {
    unsigned int token;
    typename N::Mass norm;  // the kept tokens' summed weight
};

// The Gumbel draw among the first `candidates` sorted candidates (the kept set), summing their
// weights for the logprob on the way. Block-uniform result.
template <typename N>
__device__ CandidateDraw<N> draw_candidates(const SamplingParams& p, unsigned int candidates,
                                            const ScaledRow<N>& s, SelectShared& sh,
                                            unsigned int excluded = 0xffffffffu)
{
    const unsigned long long* ranked = sh.hist;
    float best_score = NEG_INF;
    unsigned int best_token = 0xffffffffu;
    typename N::Mass mass = 0;
    for (unsigned int j = threadIdx.x; j < candidates; j += blockDim.x) {
        const unsigned int index = candidate_index(ranked[j]);
        if (index == excluded) continue;  // speculative verification's residual (verify.cuh)
        const float d = s.shifted(key_to_float(candidate_key(ranked[j])));
        mass += N::mass(N::exp(d));
        const float score = gumbel_score<N>(d, token_uniform(p.seed, p.step, index));
        if (better(score, index, best_score, best_token)) {
            best_score = score;
            best_token = index;
        }
    }
    CandidateDraw<N> draw;
    block_argmax(best_score, best_token, &draw.token, sh.scratch);
    draw.norm = block_sum(mass, sh.scratch);
    return draw;
}

// top-n from the sorted candidates: the first `filled` are the first kept tokens in rank order.
template <typename N>
__device__ __forceinline__ void write_candidate_top_n(const RowOutputs& out,
                                                      unsigned int row_index, unsigned int filled,
                                                      const ScaledRow<N>& s, float log_norm,
                                                      const SelectShared& sh)
{
    for (unsigned int i = threadIdx.x; i < filled; i += blockDim.x) {
        const unsigned long long c = sh.hist[i];
        out.top_tokens[(size_t)row_index * out.top_stride + i] = (int)candidate_index(c);
        out.top_logprobs[(size_t)row_index * out.top_stride + i] =
            N::sub(s.shifted(key_to_float(candidate_key(c))), log_norm);
    }
}
