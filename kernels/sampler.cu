// The fused sampler: one thread block per row applies temperature, top-k, top-p and min-p and
// draws one token, reading the logits in their own dtype and writing only the per-row results.
// The semantics are the crate's (src/lib.rs); src/cpu/reference.rs is the exact twin.
//
// Passes over a row (each a read of the row, from L2 after the first):
//   1 scan: max, argmax, finite count, NaN/+inf check;
//   3 top-k: radix select on counts (plus one ordered pass when ties straddle the cut);
//   3 top-p: radix select on fixed-point mass over the top-k survivors (ditto);
//   1 (Gumbel) or 2 (inverse CDF) draw passes, which also sum the kept mass for the logprob;
//   3 top-n: radix select on counts over the kept set, plus one collecting pass.
// Temperature-only rows with the fast numerics and no top-n skip all that: one read of the row,
// in L1-sized windows each drawn right after its maximum is known (kernels/stream.cuh; the
// inverse CDF keeps a table of sub-tile masses and reads one sub-tile again,
// kernels/stream_cdf.cuh). Rows with a top-k of at most the block's threads read the row once
// too: the windows collect the top-k candidates into shared memory (kernels/collect.cuh), where
// top-k, top-p, min-p, the Gumbel draw and top-n find everything they need.
// Batches without filters can take the unfiltered kernels instead (kernels/unfiltered.cuh): that
// one-read path alone, light enough for two row blocks an SM; batches of small top-k rows the
// collected kernels (kernels/collected.cuh): the one-read collection and the finish from the
// candidates (kernels/ranked.cuh) alone, as light.
// Filters that are off cost nothing. Nothing decides a token through a float atomic: histograms
// are integer, float sums are fixed-order block reductions.
// Logits processing (bitmask, banned tokens, bias, penalties: kernels/processing.cuh) is applied
// as each pass reads the row, in the general kernels only; a processed row takes the passes
// above, not the one-read stream or collection, and the light families refuse it row by row.
// Raw logprobs are a second launch of the general kernels over the raw logits at temperature 1
// with no filters, scoring the token the first launch drew (SampleArgs::scored_tokens) with the
// draw's passes; the launcher never gives a scored launch to another family.

#include "args.cuh"
#include "params.cuh"
#include "rows.cuh"
#include "verify.cuh"
#include "sampler_table.cuh"
#include "philox.cuh"
#include "block.cuh"
#include "load.cuh"
#include "processing.cuh"
#include "select.cuh"
#include "candidates.cuh"
#include "numerics.cuh"
#include "stream.cuh"
#include "collect.cuh"
#include "ranked.cuh"
#include "split.cuh"
#include "unfiltered.cuh"
#include "collected.cuh"

// Threads per row block, at most. With (512, 1) ptxas may use up to 128 registers and takes about
// 82 with no spills on sm_80/89/90; at 1024 threads (64 registers) sm_90 spilled. The launcher
// reads this value (build.rs generates it for src/gpu/launch.rs).
#define SAMPLER_MAX_THREADS 512

struct TopShared {
    unsigned int count;
    unsigned int key[BATCHSAMPLE_MAX_TOP_N];
    unsigned int index[BATCHSAMPLE_MAX_TOP_N];
};

struct RowShared {
    SelectShared select;
    TopShared top;
    RowEdits edits;  // a processed row's (kernels/processing.cuh)
    unsigned long long maxima[SAMPLER_MAX_THREADS];  // collect_top_k's window maxima
};

// A streamed row's inverse-CDF table (kernels/stream_cdf.cuh) lives in the candidate list's
// room: a streamed row collects no candidates.
__device__ __forceinline__ CdfTable& cdf_table(RowShared& sh)
{
    static_assert(sizeof(CdfTable) <= sizeof(sh.select.hist), "the table fits the list's room");
    return *reinterpret_cast<CdfTable*>(sh.select.hist);
}

// ---- The general row's phases, after the scan (sample_row composes them) ----------------------

// A sampled row's cuts of the rank order: top-k, then top-p over the top-k survivors, and (from
// the sorted candidates) min-p. `candidates > 0`: the first `candidates` kept tokens are sorted in
// sh.select.hist, and the draw and top-n need no pass over the row.
struct RowCuts {
    Cut k;
    Cut p;
    unsigned int candidates;
};

// Whether a token survives every filter: in both cuts, not masked, weight at least min_p, and
// not `excluded` (a verified draft, left out of its residual's draw: kernels/verify.cuh).
struct KeptTokens {
    Cut k;
    Cut p;
    float min_p;
    unsigned int excluded;  // NO_DRAFT: none
    __device__ __forceinline__ bool operator()(unsigned int key, unsigned int index, float x,
                                               float w) const
    {
        return x != NEG_INF && in_cut(k, key, index) && in_cut(p, key, index) && w >= min_p &&
               index != excluded;
    }
};

// The drawn token, the kept mass (the logprob's norm) and this thread's count of kept tokens.
template <typename N>
struct RowDraw {
    int token;
    typename N::Mass norm;
    unsigned long long kept_count;
};

template <int DT, typename N>
__device__ __forceinline__ RowCuts cut_row(const SamplingParams& p, const ProcessedRow<DT>& row,
                                           unsigned int vocab, bool aligned,
                                           const ScaledRow<N>& scale, unsigned long long finite,
                                           bool windowed, unsigned int collected,
                                           const RowScan& scan, RowShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    // top-k, then top-p over the top-k survivors, as cuts of the rank order: from the sorted
    // candidates when they fit in shared memory (kernels/ranked.cuh), else by radix select over
    // the row.
    Cut cut_k = whole_order();
    Cut cut_p = whole_order();
    unsigned int candidates = 0u;  // > 0: the first `candidates` kept tokens are sorted in hist
    const bool top_k_on = p.top_k > 0u && (unsigned long long)p.top_k < finite;
    // The two-read small-k path, where the one-read collection above did not run. Each thread's
    // maximum is one of the row's tokens, so the k-th largest of the block's thread maxima is at
    // most the row's k-th largest logit: every top-k token is at or above it, and for k much
    // smaller than the row few others are.
    // top-p without top-k takes the same path with a guessed prefix (the top quarter of the
    // thread maxima) and sums the row's mass in the collecting pass: if the collected prefix
    // reaches p, the cut is found there; else the radix path below runs as before. Either way
    // the decision is the same: same rank order, same fixed-point masses, same target.
    const bool top_p_only = !top_k_on && p.top_p < 1.0f;
    const unsigned int guess = top_k_on ? p.top_k : blockDim.x / 4u;
    if (windowed) {
        candidates = rank_candidates(p, top_k_on, collected, scale, sh.select, cut_k, cut_p);
    } else if ((top_k_on && p.top_k <= blockDim.x) || top_p_only) {
        unsigned long long* ranked = sh.select.hist;
        ranked[threadIdx.x] = pack_candidate(order_key(scan.best), scan.best_index);
        __syncthreads();
        bitonic_sort_descending(ranked, blockDim.x);
        // Compared as a float in the pass below: x >= floor_value exactly when order_key(x) >=
        // the floor's key (the key is monotonic and ties -0 with +0, as float compares do; the
        // row has no NaN), and the key is computed only for the few tokens collected.
        const float floor_value = key_to_float(candidate_key(ranked[guess - 1u]));
        __syncthreads();
        // Pass 2: collect every finite token at or above that floor (if they fit), then sort.
        if (threadIdx.x == 0) sh.select.candidate_count = 0u;
        __syncthreads();
        unsigned long long row_mass = 0ull;  // top-p only: the target's base
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                if (top_p_only && x[j] != NEG_INF) row_mass += fixed_mass(scale.weight(x[j]));
                if (x[j] >= floor_value && x[j] != NEG_INF) {
                    const unsigned int slot = atomicAdd(&sh.select.candidate_count, 1u);
                    if (slot < CANDIDATE_CAPACITY)
                        ranked[slot] = pack_candidate(order_key(x[j]), start + j);
                }
            }
        });
        if (top_p_only) row_mass = block_sum_u64(row_mass, sh.select.scratch);
        __syncthreads();
        const unsigned int count = sh.select.candidate_count;
        __syncthreads();
        if (count <= CANDIDATE_CAPACITY && top_p_only) {
            // Every finite token at or above the floor: a prefix of the rank order.
            sort_collected(ranked, count);
            const auto mass = candidate_mass(scale, ranked);
            const unsigned long long target = mass_target(p.top_p, row_mass);
            if (candidate_total(count, mass, sh.select) >= target)
                candidates = top_p_cut(count, target, mass, sh.select, cut_p);
        } else if (count <= CANDIDATE_CAPACITY) {
            candidates = rank_candidates(p, top_k_on, count, scale, sh.select, cut_k, cut_p);
        }
    }
    if (candidates == 0u && top_k_on) cut_k = top_k_cut<DT>(row, vocab, aligned, p.top_k, sh.select);
    if (candidates == 0u && p.top_p < 1.0f) {
        auto in_top_k = [&](unsigned int key, unsigned int index, float x) {
            return x != NEG_INF && in_cut(cut_k, key, index);
        };
        auto mass = [&](unsigned int key, unsigned int index, float x) {
            return in_top_k(key, index, x) ? fixed_mass(scale.weight(x)) : 0ull;
        };
        const SelectResult r =
            radix_select<DT>(row, vocab, aligned, 0ull, p.top_p, mass, sh.select);
        cut_p = cut_at<DT>(row, vocab, aligned, r, fixed_mass(scale.weight(key_to_float(r.tau))),
                           in_top_k, sh.select);
    }
    if (candidates > 0u && p.min_p > 0.0f)
        candidates = trim_to_min_p(candidates, p.min_p, scale, sh.select);

    return RowCuts{cut_k, cut_p, candidates};
}

template <int DT, typename N>
__device__ __forceinline__ RowDraw<N> draw_row(const SamplingParams& p, unsigned int method,
                                               const ProcessedRow<DT>& row,
                                               unsigned int vocab, bool aligned,
                                               const ScaledRow<N>& scale, float max,
                                               unsigned int argmax, const RowCuts& cuts,
                                               const KeptTokens& kept, RowShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    typedef typename N::Mass Mass;
    const Cut cut_k = cuts.k, cut_p = cuts.p;
    const unsigned int candidates = cuts.candidates;
    // The draw, summing the kept weights on the way (for the logprob).
    unsigned long long kept_count = 0ull;
    int token = -1;
    Mass norm = 0;
    if (method == DRAW_GUMBEL && candidates > 0u) {
        // The kept tokens are the first `candidates` in shared memory: no pass over the row.
        const CandidateDraw<N> draw =
            draw_candidates(p, candidates, scale, sh.select, kept.excluded);
        norm = draw.norm;
        token = (int)draw.token;
        kept_count = threadIdx.x == 0 ? candidates : 0u;  // summed over the block below
    } else if (method == DRAW_GUMBEL) {
        // Gumbel noise is bounded: u <= 1 - 2^-24 gives g = -ln(-ln u) <= 16.64. A token whose
        // d + 17 is below a score the block has already found cannot win, so it needs no Philox
        // call and no logarithms — exactly. Most of an LM's vocabulary is that far below the top.
        // Seeded with the row maximum's own score (the maximum is always kept; its owner computes
        // the same bits and does not displace it), so the bound skips from the first sub-tile.
        // A verified draft that is the maximum is left out: the race starts empty, with no bound.
        const bool seeded = argmax != kept.excluded;
        float best_score = seeded ? gumbel_score<N>(scale.shifted(max),
                                                    token_uniform(p.seed, p.step, argmax))
                                  : NEG_INF;
        unsigned int best_token = seeded ? argmax : 0xffffffffu;
        Mass mass = 0;
        const bool unfiltered = cut_k.tau == 0u && cut_p.tau == 0u && p.min_p <= 0.0f &&
                                kept.excluded == NO_DRAFT;
        float bound = best_score - 17.0f;  // the block's best score at the last refresh, minus 17
        float reach = gumbel_reach(best_score);  // this thread's best
        unsigned int sub_tiles = 0u;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
            // Every 8 sub-tiles the block agrees on its best score so far (uniform: every
            // thread counts the same sub-tiles), at the cost of one block reduction.
            if ((++sub_tiles & 7u) == 0u) {
                unsigned int unused;
                bound = block_argmax(best_score, best_token, &unused, sh.select.scratch) - 17.0f;
            }
#pragma unroll
            for (int q = 0; q < VEC / 4; ++q) {
                bool noisy[4];
                float w[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float xj = x[4 * q + j];
                    const float d = scale.shifted(xj);
                    w[j] = N::exp(d);
                    const bool keep = unfiltered
                                          ? xj != NEG_INF
                                          : kept(order_key(xj), start + 4 * q + j, xj, w[j]);
                    if (keep) {
                        mass += N::mass(w[j]);
                        ++kept_count;
                    }
                    noisy[j] = keep && d >= bound;
                }
                const unsigned int quad = start + 4 * q;  // a multiple of 4
                for_each_contender(p.seed, p.step, quad, noisy, w, reach, [&](int j, float u) {
                    const float score = gumbel_score<N>(scale.shifted(x[4 * q + j]), u);
                    if (better(score, quad + j, best_score, best_token)) {
                        best_score = score;
                        best_token = quad + j;
                        reach = gumbel_reach(best_score);
                    }
                });
            }
        });
        unsigned int winner;
        block_argmax(best_score, best_token, &winner, sh.select.scratch);
        norm = block_sum(mass, sh.select.scratch);
        token = (int)winner;
    } else {
        // Inverse CDF in index order. The total is summed with the same tile-by-tile scan as the
        // walk, so the walk's running sum ends exactly at the total.
        Mass running = 0;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
            Mass local = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float w = scale.weight(x[j]);
                if (kept(order_key(x[j]), start + j, x[j], w)) {
                    local += N::mass(w);
                    ++kept_count;
                }
            }
            Mass tile_total;
            block_exclusive_scan(local, &tile_total, sh.select.scratch);
            running += tile_total;
        });
        norm = running;
        const float u =
            word_to_uniform(philox_block(p.seed, p.step, 0u, PHILOX_ROW_UNIFORM).v[0]);
        const Mass target = N::cdf_target(u, norm);
        // The first kept token whose running sum exceeds the target; failing that (rounding),
        // the last kept token with weight.
        unsigned int first = 0xffffffffu;
        unsigned int last = 0u;
        bool have_last = false;
        running = 0;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
            Mass w[VEC];
            Mass local = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float weight = scale.weight(x[j]);
                w[j] = kept(order_key(x[j]), start + j, x[j], weight) ? N::mass(weight) : Mass(0);
                local += w[j];
            }
            Mass tile_total;
            const Mass before = block_exclusive_scan(local, &tile_total, sh.select.scratch);
            Mass partial = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                if (w[j] == Mass(0)) continue;
                partial += w[j];
                if (first == 0xffffffffu && running + (before + partial) > target) first = start + j;
                last = start + j;
                have_last = true;
            }
            running += tile_total;
        });
        // The lowest first-crossing index over threads; and the highest last index, carried as
        // the value (exact in f32 below 2^24, beyond any vocabulary).
        unsigned int chosen_first, unused;
        block_argmax(first == 0xffffffffu ? NEG_INF : 0.0f, first, &chosen_first,
                     sh.select.scratch);
        const float last_value = block_argmax(have_last ? (float)last : NEG_INF, 0u, &unused,
                                              sh.select.scratch);
        token = chosen_first != 0xffffffffu ? (int)chosen_first : (int)last_value;
    }
    return RowDraw<N>{token, norm, kept_count};
}

// top-n: the first n kept tokens in rank order, written to the row's slots; returns how many.
template <int DT, typename N>
__device__ __forceinline__ unsigned int write_top_n(
    const RowOutputs& out, unsigned int row_index, const ProcessedRow<DT>& row,
    unsigned int vocab, bool aligned, const ScaledRow<N>& scale, float log_norm,
    unsigned long long kept_count, unsigned int candidates, const KeptTokens& kept, RowShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const unsigned int top_n = out.top_n;
    unsigned int filled = 0u;
    const unsigned long long wanted = top_n < kept_count ? top_n : kept_count;
    if (wanted > 0ull && candidates > 0u) {
        // Already in rank order.
        filled = (unsigned int)wanted;
        write_candidate_top_n(out, row_index, filled, scale, log_norm, sh.select);
    } else if (wanted > 0ull) {
        auto kept_count_weight = [&](unsigned int key, unsigned int index, float x) {
            return kept(key, index, x, scale.weight(x)) ? 1ull : 0ull;
        };
        auto kept_accept = [&](unsigned int key, unsigned int index, float x) {
            return kept(key, index, x, scale.weight(x));
        };
        Cut cut_n = whole_order();
        if (wanted < kept_count) {
            const SelectResult r = radix_select<DT>(row, vocab, aligned, wanted, 0.0f,
                                                    kept_count_weight, sh.select);
            cut_n = cut_at<DT>(row, vocab, aligned, r, 1ull, kept_accept, sh.select);
        }
        if (threadIdx.x == 0) sh.top.count = 0u;
        __syncthreads();
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const unsigned int key = order_key(x[j]);
                if (kept_accept(key, start + j, x[j]) && in_cut(cut_n, key, start + j)) {
                    const unsigned int slot = atomicAdd(&sh.top.count, 1u);
                    sh.top.key[slot] = key;
                    sh.top.index[slot] = start + j;
                }
            }
        });
        __syncthreads();
        filled = (unsigned int)wanted;
        // The slots were filled in a racy order; each entry's rank fixes its output position.
        for (unsigned int i = threadIdx.x; i < filled; i += blockDim.x) {
            const unsigned int key = sh.top.key[i], index = sh.top.index[i];
            unsigned int rank = 0u;
            for (unsigned int o = 0; o < filled; ++o) {
                const unsigned int ok = sh.top.key[o], oi = sh.top.index[o];
                rank += (ok > key || (ok == key && oi < index)) ? 1u : 0u;
            }
            out.top_tokens[(size_t)row_index * out.top_stride + rank] = (int)index;
            out.top_logprobs[(size_t)row_index * out.top_stride + rank] =
                N::sub(scale.shifted(key_to_float(key)), log_norm);
        }
    }
    return filled;
}

// A verified position (kernels/verify.cuh): `drawn` is the residual's draw (the draft left out
// of the kept set) and its mass; with the draft's own mass that is the position's total, and the
// draft is accepted when u * total < m(draft) (N::accepts). The row outputs get the residual's
// token and logprob, `positions` the decision and the draft's logprob. A residual without mass
// (the draft the only kept token) accepts: p(draft) is 1.
template <int DT, typename N>
__device__ __forceinline__ void decide_position(const SampleArgs& a, unsigned int row_index,
                                                const SamplingParams& p,
                                                const ProcessedRow<DT>& row,
                                                const ScaledRow<N>& scale, const KeptTokens& kept,
                                                const RowDraw<N>& drawn)
{
    typedef typename N::Mass Mass;
    const unsigned int draft = kept.excluded;
    KeptTokens all = kept;
    all.excluded = NO_DRAFT;
    const float x = row.at(draft);
    const float w = scale.weight(x);
    const Mass m = all(order_key(x), draft, x, w) ? N::mass(w) : Mass(0);
    const Mass total = drawn.norm + m;
    const bool empty = drawn.norm == Mass(0);
    const bool accept = empty || N::accepts(accept_uniform(p.seed, p.step), 1.0f, total, m);
    const float draft_logprob = N::sub(scale.shifted(x), N::log_of_mass(total));
    const int token = empty ? -1 : drawn.token;
    const float logprob = empty ? __int_as_float(0x7fffffff)
                                : N::sub(scale.shifted(row.at(drawn.token)),
                                         N::log_of_mass(drawn.norm));
    if (threadIdx.x == 0) a.verify.positions[row_index] = VerifyPosition{draft_logprob, accept};
    write_row(a.out, row_index, token, logprob, STATUS_OK, 0u);
}

// A dense draft's distribution is usable: finite, non-negative, and positive at the draft.
__device__ __forceinline__ bool draft_probs_valid(const DraftRef& d, unsigned int vocab,
                                                  BlockScratch& scratch)
{
    unsigned long long bad = 0ull;
    for (unsigned int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float q = d.probs[i];
        if (!(q >= 0.0f && q <= 3.402823466e38f)) ++bad;
    }
    return block_sum_u64(bad, scratch) == 0ull && d.probs[d.token] > 0.0f;
}

// A dense draft's residual draw: max(0, p - q) over the kept tokens (N::residual), by the
// position's draw method with a plain draw's uniforms at its step; the winner, its residual
// mass and the residual's total (0: no residual mass).
template <typename N>
struct ResidualDraw {
    unsigned int token;
    typename N::Mass mass;
    typename N::Mass total;
};

template <int DT, typename N>
__device__ __forceinline__ ResidualDraw<N> draw_residual(const SamplingParams& p,
                                                         unsigned int method,
                                                         const ProcessedRow<DT>& row,
                                                         unsigned int vocab, bool aligned,
                                                         const ScaledRow<N>& scale,
                                                         const KeptTokens& kept,
                                                         typename N::Mass total, const float* q,
                                                         RowShared& sh)
{
    constexpr int VEC = Dtype<DT>::VEC;
    typedef typename N::Mass Mass;
    auto residual = [&](unsigned int i, float x) -> Mass {
        if (i >= vocab) return Mass(0);
        const float w = scale.weight(x);
        return kept(order_key(x), i, x, w) ? N::residual(N::mass(w), q[i], total) : Mass(0);
    };
    ResidualDraw<N> out;
    unsigned int chosen = 0xffffffffu;
    if (method == DRAW_GUMBEL) {
        float best_score = NEG_INF;
        unsigned int best_token = 0xffffffffu;
        Mass sum = 0;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const Mass r = residual(start + j, x[j]);
                if (r == Mass(0)) continue;
                sum += r;
                const float score = gumbel_score<N>(N::log_of_mass(r),
                                                    token_uniform(p.seed, p.step, start + j));
                if (better(score, start + j, best_score, best_token)) {
                    best_score = score;
                    best_token = start + j;
                }
            }
        });
        block_argmax(best_score, best_token, &chosen, sh.select.scratch);
        out.total = block_sum(sum, sh.select.scratch);
    } else {
        // The inverse CDF over the residual in index order, as draw_row walks the kept mass.
        Mass running = 0;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
            Mass local = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) local += residual(start + j, x[j]);
            Mass tile_total;
            block_exclusive_scan(local, &tile_total, sh.select.scratch);
            running += tile_total;
        });
        out.total = running;
        const float u =
            word_to_uniform(philox_block(p.seed, p.step, 0u, PHILOX_ROW_UNIFORM).v[0]);
        const Mass target = N::cdf_target(u, out.total);
        unsigned int first = 0xffffffffu, last = 0u;
        bool have_last = false;
        running = 0;
        for_each_chunk<DT>(row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) {
            Mass r[VEC];
            Mass local = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                r[j] = residual(start + j, x[j]);
                local += r[j];
            }
            Mass tile_total;
            const Mass before = block_exclusive_scan(local, &tile_total, sh.select.scratch);
            Mass partial = 0;
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                if (r[j] == Mass(0)) continue;
                partial += r[j];
                if (first == 0xffffffffu && running + (before + partial) > target) first = start + j;
                last = start + j;
                have_last = true;
            }
            running += tile_total;
        });
        unsigned int unused;
        block_argmax(first == 0xffffffffu ? NEG_INF : 0.0f, first, &chosen, sh.select.scratch);
        const float last_value = block_argmax(have_last ? (float)last : NEG_INF, 0u, &unused,
                                              sh.select.scratch);
        if (chosen == 0xffffffffu && last_value != NEG_INF) chosen = (unsigned int)last_value;
    }
    out.token = chosen;
    // The winner's residual, recomputed by every thread (the same bits as in the pass).
    out.mass = chosen < vocab ? residual(chosen, row.at(chosen)) : Mass(0);
    return out;
}

// A dense draft's position: the position's total from its full draw, the accept test
// u * q(draft) * total < m(draft), and the residual's draw (the position's own draw when the
// residual has no mass).
template <int DT, typename N>
__device__ __forceinline__ void decide_dense_position(const SampleArgs& a, unsigned int row_index,
                                                      const SamplingParams& p,
                                                      const ProcessedRow<DT>& row, bool aligned,
                                                      const ScaledRow<N>& scale,
                                                      const KeptTokens& kept,
                                                      const RowDraw<N>& drawn,
                                                      const DraftRef& draft, RowShared& sh)
{
    typedef typename N::Mass Mass;
    const Mass total = drawn.norm;
    const float x = row.at(draft.token);
    const float w = scale.weight(x);
    const Mass m = kept(order_key(x), draft.token, x, w) ? N::mass(w) : Mass(0);
    const bool accept =
        N::accepts(accept_uniform(p.seed, p.step), draft.probs[draft.token], total, m);
    const float draft_logprob = N::sub(scale.shifted(x), N::log_of_mass(total));
    const ResidualDraw<N> res =
        draw_residual<DT, N>(p, a.method, row, a.vocab, aligned, scale, kept, total, draft.probs,
                             sh);
    const bool empty = res.total == Mass(0) || res.token >= a.vocab;
    const int token = empty ? drawn.token : (int)res.token;
    const float logprob =
        empty ? N::sub(scale.shifted(row.at(drawn.token)), N::log_of_mass(total))
              : N::sub(N::log_of_mass(res.mass), N::log_of_mass(res.total));
    if (threadIdx.x == 0)
        a.verify.positions[row_index] = VerifyPosition{draft_logprob, accept ? 1u : 0u};
    write_row(a.out, row_index, token, logprob, STATUS_OK, 0u);
}

// The row from `row` (its logits, processed or not): sample_row's work once the row's edits
// are built. A processed row takes the passes that read through `row` (not the one-read stream
// or collection, which read the raw logits).
template <int DT, typename N>
__device__ __forceinline__ void sample_row_from(const SampleArgs& a, unsigned int row_index,
                                                const SamplingParams p, RowShared& sh,
                                                const ProcessedRow<DT>& row, bool from_merged,
                                                RangeSummary merged, unsigned int merged_count,
                                                DraftRef draft)
{
    const unsigned int vocab = a.vocab, method = a.method, top_n = a.out.top_n;
    const RowOutputs& out = a.out;
    const bool processed = row.edits != nullptr;
    // A verified draft's row draws its residual: the passes that can leave the draft out. A
    // scored row's logprob and top-n come from the draw's passes too.
    const bool scored = a.scored_tokens != nullptr;
    const bool general_only = processed || draft.token != NO_DRAFT || scored;
    const bool aligned = (reinterpret_cast<unsigned long long>(row.logits) & 15ull) == 0ull;
    const float nan = __int_as_float(0x7fffffff);

    if (!params_valid(p)) {
        write_invalid_row(out, row_index);
        return;
    }
    if (draft.token != NO_DRAFT &&
        (draft.token >= vocab ||
         (draft.probs != nullptr && !draft_probs_valid(draft, vocab, sh.select.scratch)))) {
        write_row(out, row_index, -1, nan, STATUS_INVALID_DRAFT, 0u);
        return;
    }
    if constexpr (N::RESCALES) {
        if (!from_merged && !general_only && p.temperature > 0.0f &&
            streamable(p, vocab, method, top_n)) {
            // Temperature-only: one read of the row from DRAM (kernels/stream.cuh), not a pass
            // for the maximum and one or two for the draw.
            stream_whole_row<DT, ANY_DRAW>(row_index, p, method, row.logits, vocab, aligned,
                                           cdf_table(sh), sh.select.scratch, out.tokens,
                                           out.logprobs, out.status);
            return;
        }
    }

    // Rows with a small top-k: one read collects the candidates and the first pass's summary
    // (kernels/collect.cuh). Else, or when too many tokens tie at its floor, pass 1 below.
    RangeSummary first;
    unsigned int collected = merged_count;
    bool windowed = from_merged;
    if (windowed)
        first = merged;
    else if (!general_only && p.temperature > 0.0f && p.top_k > 0u && p.top_k <= blockDim.x)
        windowed = collect_top_k<DT>(row.logits, vocab, 0u, aligned, p.top_k, sh.select,
                                     sh.maxima, first, &collected);
    // Pass 1: maximum (lowest index on ties), finite count, and the NaN / +inf check.
    RowScan scan;
    if (!windowed) scan_row<DT>(row, vocab, aligned, sh.select.scratch, scan, first);
    const bool bad = first.bad != 0u;
    const unsigned int argmax = first.best_token;
    const float max = first.best_score;
    const unsigned long long finite = first.finite;
    if (bad || finite == 0ull) {
        write_row(out, row_index, -1, nan,
                  bad ? STATUS_NON_FINITE_LOGIT : STATUS_NO_FINITE_LOGIT, 0u);
        return;
    }
    if (p.temperature == 0.0f) {
        // A greedy chain accepts the draft that is the greedy token; else it emits that token.
        if (draft.token != NO_DRAFT && threadIdx.x == 0)
            a.verify.positions[row_index] = VerifyPosition{0.0f, draft.token == argmax ? 1u : 0u};
        write_greedy_row(out, row_index, argmax);
        return;
    }

    const ScaledRow<N> scale(max, p.temperature);

    const RowCuts cuts =
        cut_row<DT, N>(p, row, vocab, aligned, scale, finite, windowed, collected, scan, sh);
    // A point-mass draft is left out of the draw (its residual); a dense one's residual takes a
    // pass of its own after the position's full draw.
    const KeptTokens kept{cuts.k, cuts.p, p.min_p,
                          draft.probs == nullptr ? draft.token : NO_DRAFT};
    const RowDraw<N> drawn =
        draw_row<DT, N>(p, method, row, vocab, aligned, scale, max, argmax, cuts, kept, sh);
    if (draft.token != NO_DRAFT) {
        if (draft.probs != nullptr)
            decide_dense_position<DT, N>(a, row_index, p, row, aligned, scale, kept, drawn, draft,
                                         sh);
        else
            decide_position<DT, N>(a, row_index, p, row, scale, kept, drawn);
        return;
    }
    const unsigned long long kept_count = block_sum_u64(drawn.kept_count, sh.select.scratch);
    const float log_norm = N::log_of_mass(drawn.norm);
    // A scored row reports the earlier launch's token (sample_row checked it), not this draw.
    const int token = scored ? a.scored_tokens[row_index] : drawn.token;
    const float chosen_logit = row.at(token);
    const float logprob = N::sub(scale.shifted(chosen_logit), log_norm);
    const unsigned int filled = write_top_n<DT, N>(out, row_index, row, vocab, aligned, scale,
                                                   log_norm, kept_count, cuts.candidates, kept,
                                                   sh);
    write_row(out, row_index, token, logprob, STATUS_OK, filled);
}

template <int DT, typename N>
__device__ void sample_row(const SampleArgs& a, unsigned int row_index, const SamplingParams p,
                           RowShared& sh, bool from_merged = false,
                           RangeSummary merged = RangeSummary(), unsigned int merged_count = 0u,
                           DraftRef draft = DraftRef{NO_DRAFT, nullptr})
{
    // `from_merged`: the split kernels' last block, whose slices have already collected the
    // row's top-k candidates into sh.select.hist[0, merged_count); `merged` is the row's summary.
    // (By value: a pointer chosen at the call site put the summary in local memory.) Such rows
    // are never processed or scored (sample_row_split).
    if (a.scored_tokens != nullptr) {
        // Raw logprobs' second launch: a row the first launch refused keeps its token, logprob
        // and status (its top-n is empty); a token past the vocabulary (not one the sampler
        // drew) is refused.
        const int token = a.scored_tokens[row_index];
        if (token < 0) {
            empty_top_n(a.out, row_index, 0u);
            return;
        }
        if ((unsigned int)token >= a.vocab) {
            write_invalid_row(a.out, row_index);
            return;
        }
    }
    const bool processed = !from_merged && row_processed(a.proc, row_index);
    const bool usable = !processed || build_row_edits(a.proc, row_index, a.vocab, sh.edits);
    const ProcessedRow<DT> row{row_logits<DT>(a, row_index), processed ? &sh.edits : nullptr};
    if (usable)
        sample_row_from<DT, N>(a, row_index, p, sh, row, from_merged, merged, merged_count,
                               draft);
    else
        write_invalid_row(a.out, row_index);
    if (processed) clear_row_edits(a.proc, row_index, a.vocab);
}

// ---- Split rows: several blocks per row when the batch is too small to fill the GPU ------------
//
// One block per row leaves most SMs idle at small batches (batch 1 uses one SM of 132). The
// split kernels give each row `gridDim.x` blocks, each a contiguous slice of the row, and the
// row's last block to arrive (an integer ticket) finishes it from what the slices published, in
// slice order, so the result does not depend on the arrival order. Two kinds of rows split:
//  - a maximum and a draw over every finite token — greedy, or temperature-only with no top-n
//    (streamable): each slice is summarised by stream_range or stream_range_cdf
//    (kernels/stream.cuh) and the last block combines the summaries (stream_slice, split.cuh;
//    an inverse-CDF draw reads the slice its target falls in once more);
//  - Gumbel draws with a top-k of at most COLLECTED_MAX_TOP_K (collectable): each slice
//    collects its own top k (kernels/collect.cuh) — every row top-k token is in its slice's top
//    k — and publishes them in rank order; the last block gathers them into shared memory and
//    sample_row finishes from there, exactly as the one-block kernel does from its own collection
//    (same candidates, same order: the same bits). A slice whose candidates overflow makes the
//    last block sample the row whole.
// Every other row (other filters, filtered inverse CDF, processing, invalid parameters) is sampled whole by
// its first block with the ordinary path, bit for bit as the one-block kernels do (same block
// size), and the other blocks leave. Fast numerics only: the combination rescales each slice's sum and best
// score from its own maximum to the row's, which rounds differently from one block's order.

// The last block stages the summaries in RowShared::maxima.
static_assert(SPLIT_MAX_SLICES * sizeof(RangeSummary) <=
                  SAMPLER_MAX_THREADS * sizeof(unsigned long long),
              "MAX_SPLITS (src/gpu/launch.rs) summaries fit in maxima");

// Gumbel draws with a small top-k (kernels/row_rules.cuh); greedy rows stream instead.
__device__ __forceinline__ bool collectable(const SamplingParams& p, unsigned int vocab,
                                            unsigned int method)
{
    return !row_greedy(p, vocab) && method == DRAW_GUMBEL && row_small_top_k(p, vocab);
}

// What is left for a split block once its slice of a collectable row is done.
enum SliceOutcome {
    SLICE_DONE,     // nothing: not the row's last block
    SAMPLE_WHOLE,   // the row, whole, the one-block way (a slice's candidates overflowed)
    SAMPLE_MERGED,  // the row from the merged candidates in hist and the `merged` summary
};

// A collectable row's slice: collect the slice's top k, publish them, take a ticket, and in the
// row's last block merge every slice's candidates. (Streamable rows: stream_slice, split.cuh.)
template <int DT>
__device__ SliceOutcome collect_slice(const SampleArgs& a, const SamplingParams& p, RowShared& sh,
                                      RangeSummary& merged, unsigned int* gathered_count)
{
    const unsigned int row_index = blockIdx.y;
    const unsigned int split = blockIdx.x, splits = gridDim.x;
    const unsigned int vocab = a.vocab;
    SlicePartial* __restrict__ partials = a.partials;
    unsigned int* __restrict__ arrivals = a.arrivals;
    const typename Dtype<DT>::Raw* __restrict__ row = row_logits<DT>(a, row_index);
    const Slice slice = slice_of<DT>(vocab, split, splits);
    const typename Dtype<DT>::Raw* __restrict__ part = row + slice.start;
    const bool aligned = (reinterpret_cast<unsigned long long>(part) & 15ull) == 0ull;
    SlicePartial* __restrict__ mine = partials + (size_t)row_index * splits + split;
    RangeSummary s;
    unsigned int count;
    if (collect_top_k<DT>(part, slice.len, slice.start, aligned, p.top_k, sh.select, sh.maxima, s,
                          &count)) {
        // Only the slice's top k can be among the row's.
        sort_collected(sh.select.hist, count);
        s.pad = min(count, p.top_k);
        for (unsigned int i = threadIdx.x; i < s.pad; i += blockDim.x)
            mine->candidates[i] = sh.select.hist[i];
    } else {
        s.pad = SLICE_OVERFLOWED;
    }
    if (threadIdx.x == 0) mine->summary = s;

    // Publish the partial; the row's last block to arrive finishes the row.
    if (!last_to_arrive(arrivals, row_index, splits, sh.select.found_index)) return SLICE_DONE;
    const RangeSummary* ranges =
        stage_summaries(partials + (size_t)row_index * splits, splits, arrivals, row_index,
                        reinterpret_cast<unsigned int*>(sh.maxima));
    // The row's summary, and the slices' candidates gathered into hist.
    merged.max = NEG_INF;
    merged.argmax = 0xffffffffu;
    merged.finite = 0u;
    merged.bad = 0u;
    bool overflowed = false;
    for (unsigned int k = 0; k < splits; ++k) {
        const RangeSummary c = ranges[k];
        merged.bad |= c.bad;
        merged.finite += c.finite;
        overflowed |= c.pad == SLICE_OVERFLOWED;
        if (c.finite > 0u && better(c.max, c.argmax, merged.max, merged.argmax)) {
            merged.max = c.max;
            merged.argmax = c.argmax;
        }
    }
    if (overflowed) {
        // Thousands of tokens tied at a slice's floor: the whole row, the one-block way.
        __syncthreads();  // every thread has read the staged summaries
        return SAMPLE_WHOLE;
    }
    merged.best_score = merged.max;
    merged.best_token = merged.argmax;
    merged.mass = 0.0f;
    merged.pad = 0u;
    unsigned int gathered = 0u;
    for (unsigned int k = 0; k < splits; ++k) {
        const unsigned int n = ranges[k].pad;
        const volatile unsigned long long* from =
            reinterpret_cast<const volatile unsigned long long*>(
                partials[(size_t)row_index * splits + k].candidates);
        for (unsigned int i = threadIdx.x; i < n; i += blockDim.x)
            sh.select.hist[gathered + i] = from[i];
        gathered += n;
    }
    __syncthreads();
    *gathered_count = gathered;
    return SAMPLE_MERGED;
}

// One call site for sample_row (it is inlined: each call is a copy of the whole sampler).
template <int DT>
__device__ __forceinline__ void sample_row_split(const SampleArgs& a, RowShared& sh)
{
    const unsigned int row_index = blockIdx.y;
    const SamplingParams p = row_params(a, row_index);
    if (a.scored_tokens != nullptr) {
        // Scored launches take the one-block general kernels (src/gpu/mod.rs): refused here,
        // row by row, never ignored.
        if (blockIdx.x == 0u) write_invalid_row(a.out, row_index);
        return;
    }
    // A processed row is sampled whole by its first block (its edits are built once).
    const bool may_split = params_valid(p) && !row_processed(a.proc, row_index);
    const bool streamed = may_split && streamable(p, a.vocab, a.method, a.out.top_n);
    const bool collected = may_split && !streamed && collectable(p, a.vocab, a.method);
    if (streamed) {
        stream_slice<DT, ANY_DRAW>(row_index, p, a.method, row_logits<DT>(a, row_index), a.vocab,
                                   a.partials + (size_t)row_index * gridDim.x, a.arrivals,
                                   cdf_table(sh), sh.select.scratch, sh.select.found_index,
                                   reinterpret_cast<unsigned int*>(sh.maxima), a.out.tokens,
                                   a.out.logprobs, a.out.status);
        return;
    }
    RangeSummary merged = RangeSummary();
    unsigned int gathered = 0u;
    SliceOutcome outcome = SAMPLE_WHOLE;  // rows that do not split: the first block, whole
    if (collected)
        outcome = collect_slice<DT>(a, p, sh, merged, &gathered);
    else if (blockIdx.x != 0u)
        return;
    if (outcome == SLICE_DONE) return;
    sample_row<DT, FastNumerics>(a, row_index, p, sh, outcome == SAMPLE_MERGED, merged, gathered);
}

// The row templates the entry points instantiate, one per family (kernels/sampler_table.cuh).
// Launch: grid.x = batch (split families: grid = (splits, batch)), block.x a power of two in
// [64, SAMPLER_MAX_THREADS]. A row's shared memory is declared in these templates (one instance
// per entry point), not in the macros: the host shim's rewriter must see every __shared__
// declaration.
template <int DT, typename N>
__device__ __forceinline__ void sample_rows(const SampleArgs& a)
{
    __shared__ RowShared shared;
    // A verification launch's rows are target positions: the request's parameters at the
    // position's step, its draft, and the request's ticket after the row (kernels/verify.cuh).
    const bool verify = verifying(a);
    const VerifyRow target = verify ? verify_row(a.verify, blockIdx.x, a.vocab) : VerifyRow();
    if (verify && !target.valid) return;
    SamplingParams p = row_params(a, verify ? target.request : blockIdx.x);
    if (verify) p.step += target.position;
    sample_row<DT, N>(a, blockIdx.x, p, shared, false, RangeSummary(), 0u,
                      verify ? target.draft : DraftRef{NO_DRAFT, nullptr});
    if (verify) finish_position(a, target, p);
}

template <int DT, unsigned int DRAW>
__device__ __forceinline__ void unfiltered_rows(const SampleArgs& a)
{
    __shared__ UnfilteredShared shared;
    stream_row<DT, DRAW>(a, shared);
}

struct CollectedShared {
    SelectShared select;
    unsigned long long maxima[SAMPLER_MAX_THREADS];  // collect_top_k's window maxima
};

template <int DT>
__device__ __forceinline__ void collected_rows(const SampleArgs& a)
{
    __shared__ CollectedShared shared;
    collected_row<DT>(a, shared.select, shared.maxima);
}

// Split rows (fast numerics): `a.partials` holds batch * splits SlicePartial entries,
// `a.arrivals` batch counters that start at 0 and are left at 0.
template <int DT>
__device__ __forceinline__ void sample_rows_split(const SampleArgs& a)
{
    __shared__ RowShared shared;
    sample_row_split<DT>(a, shared);
}

template <int DT, unsigned int DRAW>
__device__ __forceinline__ void unfiltered_rows_split(const SampleArgs& a)
{
    __shared__ UnfilteredShared shared;
    stream_row_split<DT, DRAW>(a, shared);
}

// The `rows` column of kernels/sampler_table.cuh.
#define GENERAL_ROWS(DT) sample_rows<DT, FastNumerics>
#define INVARIANT_ROWS(DT) sample_rows<DT, InvariantNumerics>
#define GENERAL_SPLIT_ROWS(DT) sample_rows_split<DT>
#define UNFILTERED_GUMBEL_ROWS(DT) unfiltered_rows<DT, DRAW_GUMBEL>
#define UNFILTERED_CDF_ROWS(DT) unfiltered_rows<DT, DRAW_INVERSE_CDF>
#define UNFILTERED_GUMBEL_SPLIT_ROWS(DT) unfiltered_rows_split<DT, DRAW_GUMBEL>
#define UNFILTERED_CDF_SPLIT_ROWS(DT) unfiltered_rows_split<DT, DRAW_INVERSE_CDF>
#define COLLECTED_ROWS(DT) collected_rows<DT>

// Entry points: every family in the table, for each dtype, with the one argument (f16 and bf16
// logits as their raw 16-bit patterns). `MIN_BLOCKS` row blocks of SAMPLER_MAX_THREADS threads
// must fit an SM: 1 for the general kernels (up to 128 registers), UNFILTERED_MIN_BLOCKS for the
// light ones.
#define SAMPLER_ENTRY(NAME, DT, MIN_BLOCKS, ROWS)                                                  \
    extern "C" __global__ void __launch_bounds__(SAMPLER_MAX_THREADS, MIN_BLOCKS)                  \
        NAME(const __grid_constant__ SampleArgs args)                                              \
    {                                                                                              \
        ROWS(DT)(args);                                                                            \
    }
#define SAMPLER_FAMILY_ENTRIES(name, kind, numerics, draw, split, min_blocks, rows)                \
    SAMPLER_ENTRY(name##_f32, DTYPE_F32, min_blocks, rows)                                         \
    SAMPLER_ENTRY(name##_f16, DTYPE_F16, min_blocks, rows)                                         \
    SAMPLER_ENTRY(name##_bf16, DTYPE_BF16, min_blocks, rows)
SAMPLER_FAMILIES(SAMPLER_FAMILY_ENTRIES)

#ifdef BATCHSAMPLE_HOST_SIMT
extern "C" {
unsigned long long host_simt_collect_fallbacks = 0ull;  // kernels/collect.cuh
}
// Host-shim launchers (kernels/host/README.md): the same kernels, run on the CPU by the tests,
// `host_launch_<entry>(cfg, &args)`, one per entry point, from the same table.
#define SAMPLER_EXPORT(NAME) HOST_SIMT_EXPORT(NAME, (const SampleArgs* args), (*args))
#define SAMPLER_FAMILY_EXPORTS(name, kind, numerics, draw, split, min_blocks, rows)                \
    SAMPLER_EXPORT(name##_f32) SAMPLER_EXPORT(name##_f16) SAMPLER_EXPORT(name##_bf16)
SAMPLER_FAMILIES(SAMPLER_FAMILY_EXPORTS)
#endif
