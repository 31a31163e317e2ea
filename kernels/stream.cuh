// Greedy and temperature-only Gumbel draws over a range of one row (a whole row, or a split-row
// slice), reading the range once from DRAM.
//
// A temperature-only draw needs the range's maximum (the logprob's shift) before it can weigh a
// token, and a pass over a whole 128k-token row leaves it in no cache by the time the second pass
// comes when every SM streams its own row (132 rows of 512 KiB outgrow a 50 MiB L2): the two-pass
// draw read each row from DRAM twice. Here the range is walked in windows of 32 values a thread
// (64 KiB of f32 at 512 threads): each window is read for its maximum, then again, from L1, for
// the noise and the mass, relative to a running maximum that the block agrees on at every window.
// When the running maximum rises, each thread rescales what it holds: its mass by
// exp((old - new) / T), and its best score is recomputed from the token's logit and noise, with
// the same formula a token read after the rise gets. The next window is prefetched into L2 while
// the current one is drawn.
//
// Fast numerics only: rescaled sums round differently from a single ordered sum (the invariant
// kernels keep their two passes; kernels/numerics.cuh).
#pragma once

#include "block.cuh"
#include "load.cuh"
#include "numerics.cuh"
#include "params.cuh"
#include "philox.cuh"
#include "processing.cuh"  // scan_row of a processed row
#include "row_rules.cuh"
#include "stream_cdf.cuh"
#include "weights.cuh"

// What a range contributes to its row's draw. The split kernels publish it per slice, at the
// head of a SlicePartial (kernels/sampler.cu).
struct RangeSummary {
    float max;                // the range's largest finite logit (-inf if none)
    unsigned int argmax;      // its lowest index
    unsigned int finite;      // finite logits in the range
    unsigned int bad;         // the range holds NaN or +inf
    float best_score;         // best Gumbel score, relative to the range's maximum
    unsigned int best_token;  // its index (0xffffffff if none)
    float mass;               // sum of exp((x - max) / T) over the range
    unsigned int pad;
};
static_assert(sizeof(RangeSummary) == 8 * sizeof(unsigned int), "RangeSummary is 8 words");

// ln(-ln u) = -g for the Gumbel noise g = -ln(-ln u), in numerics N: a score is d - this.
template <typename N = FastNumerics>
__device__ __forceinline__ float gumbel_noise(float u)
{
    return N::noise_log(-N::log(u));
}

// Asks L2 for the bytes [begin, end) (rounded inward to 16 bytes, so nothing outside is touched).
// A hint: no result depends on it. Hopper takes one bulk prefetch from one thread; older cards a
// line prefetch per 128 bytes, spread over the block. Nothing to do on the host shim.
__device__ __forceinline__ void prefetch_l2(const void* begin, const void* end)
{
#if defined(__CUDA_ARCH__)
    const unsigned long long first =
        (reinterpret_cast<unsigned long long>(begin) + 15ull) & ~15ull;
    const unsigned long long last = reinterpret_cast<unsigned long long>(end) & ~15ull;
    if (last <= first) return;
#if __CUDA_ARCH__ >= 900
    if (threadIdx.x == 0) {
        const unsigned long long global =
            __cvta_generic_to_global(reinterpret_cast<const void*>(first));
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;"
                     :
                     : "l"(global), "r"((unsigned int)(last - first)));
    }
#else
    for (unsigned long long a = first + threadIdx.x * 128ull; a < last; a += blockDim.x * 128ull)
        asm volatile("prefetch.global.L2 [%0];" : : "l"(a));
#endif
#else
    (void)begin;
    (void)end;
#endif
}

// A block's finite count, bad flag, best (value, index) and mass in one two-level reduction of
// three barriers: the end of stream_range (as four block reductions it took ten, which matters at
// batch 1, where a split slice is a few thousand tokens) and of sample_row's first pass (best =
// the maximum). Each quantity is combined in the same
// shuffle tree as block.cuh's own reductions, so the bits are theirs: the mass's depend on the
// block size only. The count carries the bad flag in its top bit (a range holds < 2^31 tokens).
__device__ __forceinline__ void block_reduce_summary(unsigned int finite, int bad, float score,
                                                     unsigned int token, float mass,
                                                     BlockScratch& sh, RangeSummary& out)
{
    unsigned int count = finite | (bad ? 0x80000000u : 0u);
    auto combine = [&](unsigned int c2, float s2, unsigned int t2, float m2) {
        count = ((count + c2) & 0x7fffffffu) | ((count | c2) & 0x80000000u);
        if (better(s2, t2, score, token)) {
            score = s2;
            token = t2;
        }
        mass += m2;
    };
    auto warp_reduce = [&]() {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned int c2 = __shfl_xor_sync(FULL_MASK, count, o);
            const float s2 = __shfl_xor_sync(FULL_MASK, score, o);
            const unsigned int t2 = __shfl_xor_sync(FULL_MASK, token, o);
            const float m2 = __shfl_xor_sync(FULL_MASK, mass, o);
            combine(c2, s2, t2, m2);
        }
    };
    warp_reduce();
    if (lane_id() == 0) {
        sh.f32[warp_id()] = score;
        sh.idx[warp_id()] = token;
        sh.u64[warp_id()] = ((unsigned long long)count << 32) | __float_as_uint(mass);
    }
    __syncthreads();
    if (warp_id() == 0) {
        const bool live = lane_id() < warp_count();
        score = live ? sh.f32[lane_id()] : NEG_INF;
        token = live ? sh.idx[lane_id()] : 0xffffffffu;
        const unsigned long long packed = live ? sh.u64[lane_id()] : 0ull;
        count = (unsigned int)(packed >> 32);
        mass = __uint_as_float((unsigned int)packed);
        warp_reduce();
        if (lane_id() == 0) {
            sh.f32[32] = score;
            sh.idx[32] = token;
            sh.u64[32] = ((unsigned long long)count << 32) | __float_as_uint(mass);
        }
    }
    __syncthreads();
    out.best_score = sh.f32[32];
    out.best_token = sh.idx[32];
    const unsigned long long total = sh.u64[32];
    out.finite = (unsigned int)(total >> 32) & 0x7fffffffu;
    out.bad = (unsigned int)(total >> 63);
    out.mass = __uint_as_float((unsigned int)total);
    __syncthreads();
}

// The rows these draws serve: valid parameters, greedy, or no filter and no top-n with the
// Gumbel draw or the inverse CDF (rows whose windows fit its table: kernels/stream_cdf.cuh).
// (top-k at or above the vocabulary keeps every token, like top-k off.)
__device__ __forceinline__ bool streamable(const SamplingParams& p, unsigned int vocab,
                                           unsigned int method, unsigned int top_n)
{
    const bool draw_streams =
        method == DRAW_GUMBEL || (method == DRAW_INVERSE_CDF && cdf_fits(vocab));
    return top_n == 0u && (row_greedy(p, vocab) || (draw_streams && row_unfiltered(p, vocab)));
}

// Read 1 of a window of `wlen` logits at `win` (row index `base` on), from DRAM or from L2 after
// the prefetch: adds the window's finite count and NaN / +inf flag to this thread's, and returns
// the window's maximum (lowest index on ties: `*index`), the same in every thread. Then asks L2
// for the range's next window, [next, end). Called by every thread.
// Pass 1 over a whole row: this thread's share in `scan` (its maximum: the small-k floor's input)
// and the block's summary in `first` (max as best_score / best_token, finite count, bad flag;
// one fused reduction). `row`: a raw row pointer or a ProcessedRow (kernels/processing.cuh).
template <int DT, typename Row>
__device__ __forceinline__ void scan_row(Row row,
                                         unsigned int vocab, bool aligned, BlockScratch& scratch,
                                         RowScan& scan, RangeSummary& first)
{
    constexpr int VEC = Dtype<DT>::VEC;
    for_each_chunk<DT, READ_AHEAD_CHUNKS>(
        row, vocab, aligned, [&](unsigned int start, const float (&x)[VEC]) { scan.add(start, x); });
    block_reduce_summary(scan.finite, scan.bad ? 1 : 0, scan.best, scan.best_index, 0.0f, scratch,
                         first);
}

template <int DT>
__device__ __forceinline__ float scan_window(const typename Dtype<DT>::Raw* __restrict__ win,
                                             unsigned int wlen, unsigned int base, bool aligned,
                                             const typename Dtype<DT>::Raw* next,
                                             const typename Dtype<DT>::Raw* end,
                                             unsigned int& finite, int& bad, unsigned int* index,
                                             BlockScratch& scratch)
{
    constexpr int VEC = Dtype<DT>::VEC;
    RowScan scan;
    for_each_chunk<DT, READ_AHEAD_CHUNKS>(
        win, wlen, aligned, [&](unsigned int at, const float (&x)[VEC]) { scan.add(base + at, x); });
    finite += scan.finite;
    bad |= scan.bad ? 1 : 0;
    const float wmax = block_argmax(scan.best, scan.best_index, index, scratch);
    prefetch_l2(next, end);
    return wmax;
}

// The summary of `len` logits at `range` (row indices `first` on; `first` a multiple of the
// dtype's vector width, so Philox blocks line up), for a greedy or Gumbel row whose parameters
// pass params_valid and streamable. Called by every thread; every thread gets the same summary.
// Greedy (temperature 0) reads the range once and leaves the draw fields at -inf / 0xffffffff /
// 0.
// (GUMBEL false: a kernel that sends its sampled rows elsewhere; only greedy rows come here.)
template <int DT, bool GUMBEL = true>
__device__ __forceinline__ RangeSummary
stream_range(const typename Dtype<DT>::Raw* __restrict__ range, unsigned int len,
             unsigned int first, bool aligned, const SamplingParams& p, BlockScratch& scratch)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const bool sampling = GUMBEL && p.temperature > 0.0f;
    // Greedy needs no second read: one window.
    const unsigned int window = sampling ? CDF_WINDOW_VALUES * blockDim.x : len;
    const TemperatureShift shifted(p.temperature);

    // The block's running maximum (the same in every thread) ...
    float ref = NEG_INF;
    unsigned int ref_index = 0xffffffffu;
    // ... and this thread's share, relative to it.
    unsigned int finite = 0u;
    int bad = 0;
    float best_score = NEG_INF;  // = shifted(best_x, ref) - best_g
    float best_x = NEG_INF, best_g = 0.0f;
    unsigned int best_token = 0xffffffffu;
    float reach = POS_INF;        // gumbel_reach(best_score)
    float noisy_floor = NEG_INF;  // (best_score - 17) * log2(e): d2 below it cannot win
    auto set_best = [&](float score, unsigned int token, float x, float g) {
        best_score = score;
        best_token = token;
        best_x = x;
        best_g = g;
        reach = gumbel_reach(score);
        noisy_floor = (score - 17.0f) * LOG2E;
    };
    float mass = 0.0f;

    for (unsigned int w0 = 0; w0 < len; w0 += window) {
        const unsigned int wlen = min(window, len - w0);
        const typename Dtype<DT>::Raw* __restrict__ win = range + w0;
        const unsigned int base = first + w0;  // row index of win[0]

        unsigned int wmax_index;
        const float wmax = scan_window<DT>(win, wlen, base, aligned, win + window,
                                           range + min(len, w0 + 2u * window), finite, bad,
                                           &wmax_index, scratch);
        if (!better(wmax, wmax_index, ref, ref_index)) {
            if (!sampling || wmax == NEG_INF) continue;
        } else if (!sampling) {
            ref = wmax;
            ref_index = wmax_index;
            continue;
        } else {
            // The running maximum rises (block-uniform): rescale, then seed the best score with
            // the new maximum's own (a real candidate: its owner computes the same bits and keeps
            // it), so the skip bound below holds from the window's first token.
            mass *= exp2_flushed(shifted.log2(ref, wmax));  // 0 on the first rise
            ref = wmax;
            ref_index = wmax_index;
            if (best_token != 0xffffffffu)
                set_best(shifted(best_x, ref) - best_g, best_token, best_x, best_g);
            const float g = gumbel_noise(token_uniform(p.seed, p.step, ref_index));
            const float seed_score = shifted(ref, ref) - g;
            if (better(seed_score, ref_index, best_score, best_token))
                set_best(seed_score, ref_index, ref, g);
        }

        // Read 2 (L1): the window's mass and Gumbel scores. A token whose d + 17 is below the
        // thread's best score cannot win (the noise is at most 16.64): no Philox call, no
        // logarithm — exactly. (The 0.36 to spare absorbs the base-2 rounding of the test.) A
        // masked token needs no test of its own: d2 = -inf weighs 0 and is below the floor,
        // which the seed above made finite.
        for_each_chunk<DT>(win, wlen, aligned, [&](unsigned int at, const float (&x)[VEC]) {
#pragma unroll
            for (int q = 0; q < VEC / 4; ++q) {
                bool noisy[4];
                float w[4];
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float d2 = shifted.log2(x[4 * q + j], ref);
                    // The mass only feeds the logprob: the hardware exp2 is enough. The skip
                    // test below allows for its error.
                    w[j] = exp2_flushed(d2);
                    mass += w[j];
                    noisy[j] = d2 >= noisy_floor;
                }
                const unsigned int quad = base + at + 4 * q;  // a multiple of 4
                for_each_contender(p.seed, p.step, quad, noisy, w, reach, [&](int j, float u) {
                    const float g = gumbel_noise(u);
                    const float score = shifted(x[4 * q + j], ref) - g;
                    if (better(score, quad + j, best_score, best_token))
                        set_best(score, quad + j, x[4 * q + j], g);
                });
            }
        });
    }

    RangeSummary s;
    s.max = ref;
    s.argmax = ref_index;
    s.pad = 0u;
    block_reduce_summary(finite, bad, best_score, best_token, mass, scratch, s);
    if (!sampling) {
        s.best_score = NEG_INF;
        s.best_token = 0xffffffffu;
        s.mass = 0.0f;
    }
    return s;
}

// stream_range for an inverse-CDF row: the same windows and summary (no best score), with the
// range's table of sub-tile masses left in `cdf` for cdf_pick and `mass` its scanned total.
template <int DT>
__device__ __forceinline__ RangeSummary
stream_range_cdf(const typename Dtype<DT>::Raw* __restrict__ range, unsigned int len,
                 unsigned int first, bool aligned, const SamplingParams& p, CdfTable& cdf,
                 BlockScratch& scratch)
{
    const unsigned int window = CDF_WINDOW_VALUES * blockDim.x;
    const TemperatureShift shifted(p.temperature);
    float ref = NEG_INF;  // the running maximum, the same in every thread
    unsigned int ref_index = 0xffffffffu;
    unsigned int finite = 0u;
    int bad = 0;
    bool weighed = false;  // the last window's warp sums await cdf_fold
    unsigned int index = 0u;
    for (unsigned int w0 = 0; w0 < len; w0 += window, ++index) {
        const unsigned int wlen = min(window, len - w0);
        const typename Dtype<DT>::Raw* __restrict__ win = range + w0;
        unsigned int wmax_index;
        const float wmax = scan_window<DT>(win, wlen, first + w0, aligned, win + window,
                                           range + min(len, w0 + 2u * window), finite, bad,
                                           &wmax_index, scratch);
        // The previous window's warp sums are complete (scan_window's barriers): fold them.
        if (index > 0u) cdf_fold<DT>(index - 1u, window, (index - 1u) & 1u, weighed, cdf);
        if (better(wmax, wmax_index, ref, ref_index)) {
            ref = wmax;
            ref_index = wmax_index;
        }
        if (threadIdx.x == 0) cdf.ref[index] = ref;
        weighed = ref != NEG_INF;  // windows before the first finite logit weigh nothing
        if (weighed) cdf_weigh_window<DT>(win, wlen, aligned, shifted, ref, index & 1u, cdf);
    }
    RangeSummary s;
    s.max = ref;
    s.argmax = ref_index;
    s.pad = 0u;
    block_reduce_summary(finite, bad, NEG_INF, 0xffffffffu, 0.0f, scratch, s);
    // The last window's warp sums are visible (block_reduce_summary's barriers).
    if (index > 0u)
        cdf_fold<DT>(index - 1u, len - (index - 1u) * window, (index - 1u) & 1u, weighed, cdf);
    __syncthreads();
    CdfRun unused;
    s.mass = cdf_scan<DT>(cdf, index, ref, shifted, scratch, unused);
    return s;
}

// The draw a kernel instance serves: DRAW_GUMBEL or DRAW_INVERSE_CDF, fixed when it is compiled
// (the unfiltered kernels: one instance per method, so that neither walk's registers weigh on
// the other's), or ANY_DRAW, the launch's `method` (the general kernels).
constexpr unsigned int ANY_DRAW = 0xffffffffu;

// A streamable row's range, summarised by the walk its draw needs.
template <int DT, unsigned int DRAW>
__device__ __forceinline__ RangeSummary
summarise_range(const typename Dtype<DT>::Raw* __restrict__ range, unsigned int len,
                unsigned int first, bool aligned, const SamplingParams& p, unsigned int method,
                CdfTable& cdf, BlockScratch& scratch)
{
    if (DRAW != DRAW_GUMBEL && inverse_cdf_draw(p, method))
        return stream_range_cdf<DT>(range, len, first, aligned, p, cdf, scratch);
    return stream_range<DT, DRAW != DRAW_INVERSE_CDF>(range, len, first, aligned, p, scratch);
}

// What a row's ranges add up to: its maximum (lowest index on ties), whether any logit is NaN or
// +inf, and how many are finite. `range(s)` returns the s-th summary (a callable, so a lone
// summary can stay in registers).
struct RowTotals {
    float max;
    unsigned int argmax;
    unsigned int bad;
    unsigned int finite;
};

template <typename Ranges>
__device__ __forceinline__ RowTotals row_totals(Ranges&& range, unsigned int count)
{
    RowTotals r{NEG_INF, 0xffffffffu, 0u, 0u};
    for (unsigned int s = 0; s < count; ++s) {
        const RangeSummary c = range(s);
        r.bad |= c.bad;
        r.finite += c.finite;
        if (c.finite > 0u && better(c.max, c.argmax, r.max, r.argmax)) {
            r.max = c.max;
            r.argmax = c.argmax;
        }
    }
    return r;
}

// Thread 0 writes a sampled row: `token`, its logprob against the row's maximum and mass.
template <int DT>
__device__ __forceinline__ void write_drawn(unsigned int row_index, const SamplingParams& p,
                                            const typename Dtype<DT>::Raw* __restrict__ row,
                                            unsigned int token, float row_max, float norm,
                                            int* __restrict__ tokens,
                                            float* __restrict__ logprobs,
                                            unsigned int* __restrict__ status)
{
    if (threadIdx.x != 0) return;
    const TemperatureShift shifted(p.temperature);
    tokens[row_index] = (int)token;
    logprobs[row_index] = shifted(Dtype<DT>::widen(row[token]), row_max) - logf(norm);
    status[row_index] = STATUS_OK;
}

// Thread 0 writes a row that needs no draw: a failing row, or greedy (the argmax). Returns
// whether the row is written (the same in every thread).
__device__ __forceinline__ bool write_undrawn(unsigned int row_index, const SamplingParams& p,
                                              const RowTotals& r, int* __restrict__ tokens,
                                              float* __restrict__ logprobs,
                                              unsigned int* __restrict__ status)
{
    const bool failed = r.bad != 0u || r.finite == 0u;
    if (!failed && p.temperature > 0.0f) return false;
    if (threadIdx.x == 0) {
        tokens[row_index] = failed ? -1 : (int)r.argmax;
        logprobs[row_index] = failed ? __int_as_float(0x7fffffff) : 0.0f;
        status[row_index] = !failed  ? STATUS_OK
                            : r.bad ? STATUS_NON_FINITE_LOGIT
                                    : STATUS_NO_FINITE_LOGIT;
    }
    return true;
}

// A Gumbel row's result from the summaries of its ranges, in index order (thread 0 only): each
// range's mass and best score rescaled to the row's maximum.
template <int DT, typename Ranges>
__device__ __forceinline__ void write_gumbel(unsigned int row_index, const SamplingParams& p,
                                             const typename Dtype<DT>::Raw* __restrict__ row,
                                             const RowTotals& r, Ranges&& range,
                                             unsigned int count, int* __restrict__ tokens,
                                             float* __restrict__ logprobs,
                                             unsigned int* __restrict__ status)
{
    const TemperatureShift shifted(p.temperature);
    float norm = 0.0f, top_score = NEG_INF;
    unsigned int token = 0xffffffffu;
    for (unsigned int s = 0; s < count; ++s) {
        const RangeSummary c = range(s);
        if (c.finite == 0u) continue;
        const float offset = shifted(c.max, r.max);  // <= 0: this range's max, rescaled
        norm += c.mass * expf(offset);
        const float score = c.best_score + offset;
        if (better(score, c.best_token, top_score, token)) {
            top_score = score;
            token = c.best_token;
        }
    }
    write_drawn<DT>(row_index, p, row, token, r.max, norm, tokens, logprobs, status);
}

// A streamable row sampled by one block: one read, then the result. Called by every thread.
// `DRAW`: summarise_range.
template <int DT, unsigned int DRAW>
__device__ __forceinline__ void stream_whole_row(unsigned int row_index, const SamplingParams& p,
                                                 unsigned int method,
                                                 const typename Dtype<DT>::Raw* __restrict__ row,
                                                 unsigned int vocab, bool aligned, CdfTable& cdf,
                                                 BlockScratch& scratch, int* __restrict__ tokens,
                                                 float* __restrict__ logprobs,
                                                 unsigned int* __restrict__ status)
{
    const RangeSummary s =
        summarise_range<DT, DRAW>(row, vocab, 0u, aligned, p, method, cdf, scratch);
    auto only = [&](unsigned int) { return s; };
    const RowTotals r = row_totals(only, 1u);
    if (write_undrawn(row_index, p, r, tokens, logprobs, status)) return;
    if (DRAW != DRAW_GUMBEL && inverse_cdf_draw(p, method)) {
        const unsigned int token =
            cdf_pick<DT>(row, vocab, aligned, TemperatureShift(p.temperature), s.max,
                         cdf_target(p, s.mass), cdf, scratch);
        write_drawn<DT>(row_index, p, row, token, s.max, s.mass, tokens, logprobs, status);
    } else if (DRAW != DRAW_INVERSE_CDF && threadIdx.x == 0) {
        write_gumbel<DT>(row_index, p, row, r, only, 1u, tokens, logprobs, status);
    }
}
