// Reading a row of logits: 16-byte vector loads when the row is aligned, element loads otherwise,
// every element widened exactly to f32. Positions past the end read as -inf (a masked token), so
// the tail needs no special path.
#pragma once

#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)

enum DtypeCode { DTYPE_F32 = 0, DTYPE_F16 = 1, DTYPE_BF16 = 2 };

// IEEE half bits to f32, exactly (every half is an f32). The GPU uses the conversion
// instruction; the host shim runs the portable twin, which the host tests check bit for bit.
__device__ __forceinline__ float f16_bits_to_float(unsigned short h)
{
#if defined(__CUDA_ARCH__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    const unsigned int sign = (unsigned int)(h >> 15) << 31;
    const unsigned int exponent = (h >> 10) & 0x1fu;
    const unsigned int mantissa = h & 0x3ffu;
    if (exponent == 0) {
        // Zero or subnormal: mantissa * 2^-24, exact in f32.
        const float magnitude = (float)mantissa * (1.0f / 16777216.0f);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

__device__ __forceinline__ float bf16_bits_to_float(unsigned short b)
{
    return __uint_as_float((unsigned int)b << 16);
}

template <int DT> struct Dtype;
template <> struct Dtype<DTYPE_F32> {
    typedef float Raw;
    static constexpr int VEC = 4;
    __device__ static __forceinline__ float widen(float r) { return r; }
};
template <> struct Dtype<DTYPE_F16> {
    typedef unsigned short Raw;
    static constexpr int VEC = 8;
    __device__ static __forceinline__ float widen(unsigned short r) { return f16_bits_to_float(r); }
};
template <> struct Dtype<DTYPE_BF16> {
    typedef unsigned short Raw;
    static constexpr int VEC = 8;
    __device__ static __forceinline__ float widen(unsigned short r) { return bf16_bits_to_float(r); }
};

// The VEC elements starting at `start` (a multiple of VEC) as they lie in memory: one 16-byte
// load when the row is aligned, else element loads, positions past the end as -inf.
template <int DT>
__device__ __forceinline__ uint4 load_raw(const typename Dtype<DT>::Raw* __restrict__ row,
                                          unsigned int vocab, unsigned int start, bool aligned)
{
    if (aligned && start + Dtype<DT>::VEC <= vocab)
        return *reinterpret_cast<const uint4*>(row + start);
    unsigned int w[4];
    if constexpr (DT == DTYPE_F32) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
            w[j] = start + j < vocab ? __float_as_uint(row[start + j]) : 0xff800000u;
    } else {
        const unsigned int neg_inf = DT == DTYPE_F16 ? 0xfc00u : 0xff80u;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const unsigned int at = start + 2u * j;
            const unsigned int lo = at < vocab ? (unsigned int)row[at] : neg_inf;
            const unsigned int hi = at + 1u < vocab ? (unsigned int)row[at + 1u] : neg_inf;
            w[j] = lo | (hi << 16);
        }
    }
    uint4 raw;
    raw.x = w[0];
    raw.y = w[1];
    raw.z = w[2];
    raw.w = w[3];
    return raw;
}

// A chunk's raw words as f32 values, exactly.
template <int DT>
__device__ __forceinline__ void widen_chunk(const uint4& raw, float (&x)[Dtype<DT>::VEC])
{
    const unsigned int words[4] = {raw.x, raw.y, raw.z, raw.w};
    if constexpr (DT == DTYPE_F32) {
#pragma unroll
        for (int j = 0; j < 4; ++j) x[j] = __uint_as_float(words[j]);
    } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            x[2 * j] = Dtype<DT>::widen((unsigned short)(words[j] & 0xffffu));
            x[2 * j + 1] = Dtype<DT>::widen((unsigned short)(words[j] >> 16));
        }
    }
}

// The VEC elements starting at `start` (a multiple of VEC), widened.
template <int DT>
__device__ __forceinline__ void load_chunk(const typename Dtype<DT>::Raw* __restrict__ row,
                                           unsigned int vocab, unsigned int start, bool aligned,
                                           float (&x)[Dtype<DT>::VEC])
{
    widen_chunk<DT>(load_raw<DT>(row, vocab, start, aligned), x);
}

// Chunks a thread loads before using any: 16 values in registers (4 f32 chunks, 2 f16/bf16).
// The reads that stream a row from DRAM with nothing else in flight take READ_AHEAD_CHUNKS: 64
// bytes a thread for every dtype, held raw until used (v9 on an H200: greedy read 256 f32 rows
// in 44.8 us and the same rows in bf16, half the bytes, in 49.0 — as many round trips, each
// carrying half as much).
template <int DT>
__device__ __forceinline__ constexpr int default_unroll()
{
    return 16 / Dtype<DT>::VEC;
}
#define READ_AHEAD_CHUNKS 4

// Calls f(start, x) for each of this thread's chunks, in index order of the sub-tiles: a
// sub-tile is blockDim.x consecutive chunks (thread t holds the t-th), and each thread loads
// UNROLL sub-tiles' chunks before using any, so several 16-byte loads are in flight per thread
// (one block per row leaves little other parallelism to hide memory latency). Every thread runs
// the same number of iterations in the same sub-tile order, so f may contain block-wide barriers
// and ordered block scans see the row in index order. (UNROLL changes only how many chunks are
// in flight, and how many all -inf chunks past the end f sees.)
template <int DT, int UNROLL = default_unroll<DT>(), typename F>
__device__ __forceinline__ void for_each_chunk(const typename Dtype<DT>::Raw* __restrict__ row,
                                               unsigned int vocab, bool aligned, F&& f)
{
    constexpr int VEC = Dtype<DT>::VEC;
    const unsigned int sub_tile = blockDim.x * VEC;
    for (unsigned int base = 0; base < vocab; base += sub_tile * UNROLL) {
        uint4 raw[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u)
            raw[u] = load_raw<DT>(row, vocab, base + u * sub_tile + threadIdx.x * VEC, aligned);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float x[VEC];
            widen_chunk<DT>(raw[u], x);
            f(base + u * sub_tile + threadIdx.x * VEC, x);
        }
    }
}

// What the first read of a row tells a thread about its share: the largest finite logit (lowest
// index on ties), how many logits are finite, and whether any is NaN or +inf. `add` takes the
// chunks in for_each_chunk's order, in which a thread's indices only grow, so only a strictly
// larger value displaces its best; and a chunk's own maximum is found by a tree of adjacent pairs
// (depth 2 or 3, ties to the left, which holds the lower indices) rather than a chain of VEC
// dependent compares against the running best. A NaN can hide a chunk's maximum from the tree:
// such rows are rejected (`bad`) before their maximum is used.
struct RowScan {
    float best;
    unsigned int best_index;
    unsigned int finite;
    bool bad;

    __device__ RowScan() : best(NEG_INF), best_index(0xffffffffu), finite(0u), bad(false) {}

    template <int VEC>
    __device__ __forceinline__ void add(unsigned int start, const float (&x)[VEC])
    {
        float v[VEC];
        unsigned int at[VEC];
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const bool is_finite = fabsf(x[j]) < POS_INF;
            finite += is_finite ? 1u : 0u;
            bad |= !is_finite && x[j] != NEG_INF;
            v[j] = x[j];
            at[j] = (unsigned int)j;
        }
#pragma unroll
        for (int stride = 1; stride < VEC; stride *= 2) {
#pragma unroll
            for (int j = 0; j + stride < VEC; j += 2 * stride) {
                if (v[j + stride] > v[j]) {
                    v[j] = v[j + stride];
                    at[j] = at[j + stride];
                }
            }
        }
        if (v[0] > best) {
            best = v[0];
            best_index = start + at[0];
        }
    }
};

// Rank order as an unsigned key: a larger key is a larger float; -0 is keyed as +0 so that they
// tie (the semantics compare values). NaN never reaches here (such rows are rejected first).
__device__ __forceinline__ unsigned int order_key(float x)
{
    unsigned int b = __float_as_uint(x);
    if (b == 0x80000000u) b = 0u;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_to_float(unsigned int k)
{
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}
