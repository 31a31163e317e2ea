// Inverse-CDF draws over a range of one row, read once from DRAM: what the inverse CDF adds to
// the one-read walk of kernels/stream.cuh.
//
// The inverse CDF draws the first token, in index order, whose running sum of weights exceeds u
// times the row's total. The total must be known before that walk can start, so the general
// kernels read such a row three times (maximum, total, walk: kernels/sampler.cu). Here the
// window reads that find the maximum also leave in shared memory the mass of every sub-tile
// (blockDim.x * VEC consecutive tokens: 2048 f32 or 4096 16-bit tokens at 512 threads), relative
// to the running maximum of its window. Once the range is read, a scan of that table, each entry
// rescaled to the range's maximum, gives the total and the sub-tile where the target falls; only
// that sub-tile is read again (8 KiB: 1.6 % of a 128256-token f32 row).
//
// The sums, all in fixed orders: a sub-tile's mass is its warps' sums (shuffle trees) added in
// warp order; the table is scanned in index order (a run of entries a thread, then
// block_exclusive_scan_f32); the sub-tile is walked the block-scan way. The walk and the table
// entry round differently: when the table puts the target in an entry and the walk runs past the
// entry's last token, the entry's last weighted token is drawn (as the general kernels' walk
// falls back to the row's last). Fast numerics only: the rescaled sums round differently from
// one ordered sum, within the parity tests' tolerance of the f64 reference.
#pragma once

#include "block.cuh"
#include "load.cuh"
#include "numerics.cuh"
#include "params.cuh"
#include "philox.cuh"
#include "weights.cuh"

// A stream window is CDF_WINDOW_VALUES values a thread (kernels/stream.cuh), so a window holds
// CDF_WINDOW_VALUES / VEC sub-tiles: 8 for f32, 4 for f16 / bf16.
#define CDF_WINDOW_VALUES 32u
#define CDF_MAX_SUBTILES 8u
// Windows a table holds: rows of up to 128 * 32 * 512 = 2^21 tokens at 512 threads (the host
// mirrors this: src/gpu/launch.rs CDF_STREAM_MAX_VOCAB). Longer rows take the general draw.
#define CDF_MAX_WINDOWS 128u
#define CDF_MAX_WARPS 32u

struct CdfTable {
    float entry[CDF_MAX_WINDOWS * CDF_MAX_SUBTILES];  // sub-tile masses, relative to ref[window]
    float ref[CDF_MAX_WINDOWS];  // the running maximum a window was weighed against (-inf: none)
    float warp_mass[2][CDF_MAX_SUBTILES][CDF_MAX_WARPS];  // a window's warp sums; two in flight
    float picked_before;  // cdf_pick: the range's sum before the chosen entry
};

template <int DT>
__device__ __forceinline__ constexpr unsigned int cdf_subtiles()
{
    return CDF_WINDOW_VALUES / Dtype<DT>::VEC;
}

// Stream windows over `len` tokens at this block size.
__device__ __forceinline__ unsigned int cdf_windows(unsigned int len)
{
    const unsigned int window = CDF_WINDOW_VALUES * blockDim.x;
    return len / window + (len % window != 0u ? 1u : 0u);
}

// Whether a row of `vocab` tokens (hence each of its slices) fits the table.
__device__ __forceinline__ bool cdf_fits(unsigned int vocab)
{
    return cdf_windows(vocab) <= CDF_MAX_WINDOWS;
}

// Rows the one-read inverse CDF serves: temperature above 0 and the inverse-CDF method.
__device__ __forceinline__ bool inverse_cdf_draw(const SamplingParams& p, unsigned int method)
{
    return p.temperature > 0.0f && method == DRAW_INVERSE_CDF;
}

// The row's inverse-CDF target: its uniform (src/philox.rs `row_uniform`) times its total.
__device__ __forceinline__ float cdf_target(const SamplingParams& p, float total)
{
    const float u = word_to_uniform(philox_block(p.seed, p.step, 0u, PHILOX_ROW_UNIFORM).v[0]);
    return FastNumerics::cdf_target(u, total);
}

// Second read of a window (from L1): each warp's mass of each sub-tile, relative to `ref` (the
// running maximum, finite), into warp_mass[buf]. Called by every thread.
template <int DT>
__device__ __forceinline__ void cdf_weigh_window(const typename Dtype<DT>::Raw* __restrict__ win,
                                                 unsigned int wlen, bool aligned,
                                                 const TemperatureShift& shifted, float ref,
                                                 unsigned int buf, CdfTable& t)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const unsigned int sub_tile = blockDim.x * VEC;
    for_each_chunk<DT>(win, wlen, aligned, [&](unsigned int at, const float (&x)[VEC]) {
        float m = 0.0f;
#pragma unroll
        for (int j = 0; j < VEC; ++j) m += exp2_flushed(shifted.log2(x[j], ref));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) m += __shfl_xor_sync(FULL_MASK, m, o);
        if (lane_id() == 0) t.warp_mass[buf][at / sub_tile][warp_id()] = m;
    });
}

// The entries of window `window` (`wlen` tokens): its warp sums (warp_mass[buf], complete and
// visible) in warp order, or 0 when nothing was weighed (`weighed` false) and past the window's
// end (a short last window leaves older sums there). Called by every thread.
template <int DT>
__device__ __forceinline__ void cdf_fold(unsigned int window, unsigned int wlen,
                                         unsigned int buf, bool weighed, CdfTable& t)
{
    constexpr unsigned int SUBS = cdf_subtiles<DT>();
    const unsigned int sub_tile = blockDim.x * Dtype<DT>::VEC;
    for (unsigned int s = threadIdx.x; s < SUBS; s += blockDim.x) {
        float e = 0.0f;
        if (weighed && s * sub_tile < wlen)
            for (unsigned int w = 0; w < warp_count(); ++w) e += t.warp_mass[buf][s][w];
        t.entry[window * SUBS + s] = e;
    }
}

// Window `window`'s weights relative to `top` (the range's maximum): 2^((ref - top) / T ...).
__device__ __forceinline__ float cdf_scale(const CdfTable& t, unsigned int window, float top,
                                           const TemperatureShift& shifted)
{
    const float ref = t.ref[window];
    return ref == NEG_INF ? 0.0f : exp2_flushed(shifted.log2(ref, top));
}

// One thread's run of table entries and the range's sum before it.
struct CdfRun {
    unsigned int first, end;
    float before;
};

// The table of a range of `windows` windows, each entry rescaled to `top`, scanned in index
// order: returns the range's total (relative to `top`); `run` gets this thread's entries.
// Called by every thread, once the table is complete and visible.
template <int DT>
__device__ __forceinline__ float cdf_scan(const CdfTable& t, unsigned int windows, float top,
                                          const TemperatureShift& shifted, BlockScratch& scratch,
                                          CdfRun& run)
{
    constexpr unsigned int SUBS = cdf_subtiles<DT>();
    const unsigned int n = windows * SUBS;
    const unsigned int per = (n + blockDim.x - 1u) / blockDim.x;
    run.first = min(threadIdx.x * per, n);
    run.end = min(run.first + per, n);
    float local = 0.0f;
    for (unsigned int e = run.first; e < run.end; ++e)
        local += cdf_scale(t, e / SUBS, top, shifted) * t.entry[e];
    float total;
    run.before = block_exclusive_scan_f32(local, &total, scratch);
    return total;
}

// The inverse-CDF token of a range read again whole: each token weighed against `top`, in index
// order, a block scan a sub-tile; the first token at which c_before + outer * (the range's
// running sum) exceeds `target`, failing that (rounding) the range's last weighted token. For a
// split row's last block (the slice's table was another block's: `top` the slice's maximum) and
// for cdf_pick's sub-tile (UNROLL 1: one chunk a thread). Called by every thread; every thread
// gets the range-relative index.
template <int DT, int UNROLL = default_unroll<DT>()>
__device__ __forceinline__ unsigned int cdf_walk(const typename Dtype<DT>::Raw* __restrict__ range,
                                                 unsigned int len, bool aligned,
                                                 const TemperatureShift& shifted, float top,
                                                 float c_before, float outer, float target,
                                                 BlockScratch& scratch)
{
    constexpr int VEC = Dtype<DT>::VEC;
    constexpr unsigned int NONE = 0xffffffffu;
    float running = 0.0f;  // the range's sum before the sub-tile (the same in every thread)
    unsigned int first = NONE, last = NONE;
    for_each_chunk<DT, UNROLL>(range, len, aligned, [&](unsigned int at, const float (&x)[VEC]) {
        float w[VEC];
        float local = 0.0f;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            w[j] = exp2_flushed(shifted.log2(x[j], top));
            local += w[j];
        }
        float tile;
        float partial = running + block_exclusive_scan_f32(local, &tile, scratch);
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            if (w[j] <= 0.0f) continue;
            partial += w[j];
            if (first == NONE && c_before + outer * partial > target) first = at + j;
            last = at + j;
        }
        running += tile;
    });
    unsigned int token;
    block_argmax(first == NONE ? NEG_INF : 0.0f, first, &token, scratch);
    if (token == NONE)  // token indices are below 2^24: exact as floats
        block_argmax(last == NONE ? NEG_INF : (float)last, last, &token, scratch);
    return token == NONE ? 0u : token;
}

// The inverse-CDF token of a whole row (`top` its maximum) whose table is built: the first
// token, in index order, at which the row's running sum exceeds `target`; failing that
// (rounding), the last weighted token of the last entry with mass. (Split rows' last block walks
// its slice instead: cdf_walk.) Called by every thread; every thread gets the token.
template <int DT>
__device__ __forceinline__ unsigned int cdf_pick(const typename Dtype<DT>::Raw* __restrict__ row,
                                                 unsigned int vocab, bool aligned,
                                                 const TemperatureShift& shifted, float top,
                                                 float target, CdfTable& t,
                                                 BlockScratch& scratch)
{
    constexpr int VEC = Dtype<DT>::VEC;
    constexpr unsigned int SUBS = cdf_subtiles<DT>();
    constexpr unsigned int NONE = 0xffffffffu;

    // The entry: this thread's first crossing (or last with mass), then the block's lowest
    // crossing (or highest with mass).
    CdfRun run;
    cdf_scan<DT>(t, cdf_windows(vocab), top, shifted, scratch, run);
    unsigned int crossing = NONE, last = NONE;
    float crossing_before = 0.0f, last_before = 0.0f, running = run.before;
    for (unsigned int e = run.first; e < run.end; ++e) {
        const float m = cdf_scale(t, e / SUBS, top, shifted) * t.entry[e];
        if (m > 0.0f) {
            if (crossing == NONE && running + m > target) {
                crossing = e;
                crossing_before = running;
            }
            last = e;
            last_before = running;
        }
        running += m;
    }
    unsigned int entry;
    block_argmax(crossing == NONE ? NEG_INF : 0.0f, crossing, &entry, scratch);
    const bool crossed = entry != NONE;
    if (!crossed)  // entry numbers are below 2^24: exact as floats
        block_argmax(last == NONE ? NEG_INF : (float)last, last, &entry, scratch);
    // Unreachable for a row with a finite maximum (its own entry has mass 1 or more); kept so
    // that no input can index past the table.
    if (entry == NONE) return 0u;
    if (entry == (crossed ? crossing : last))
        t.picked_before = crossed ? crossing_before : last_before;
    __syncthreads();

    // The token: the entry's sub-tile read again and walked, weighed as cdf_weigh_window weighed
    // it (against its window's running maximum), its sums rescaled as the table's.
    const unsigned int window = entry / SUBS;
    const unsigned int start =
        window * CDF_WINDOW_VALUES * blockDim.x + (entry % SUBS) * blockDim.x * VEC;
    const float before_entry = t.picked_before;
    return start + cdf_walk<DT, 1>(row + start, min(blockDim.x * VEC, vocab - start), aligned,
                                   shifted, t.ref[window], before_entry,
                                   cdf_scale(t, window, top, shifted), target, scratch);
}
