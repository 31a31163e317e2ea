// Block-wide reductions and scans with a fixed combination order: the same block size gives the
// same bits every run (no atomics on floats anywhere). Every function is called by all threads
// of the block and ends with a barrier, so its scratch can be reused at once.
#pragma once

#define FULL_MASK 0xffffffffu

struct BlockScratch {
    unsigned long long u64[33];
    float f32[33];
    unsigned int idx[33];
};

__device__ __forceinline__ unsigned int warp_id() { return threadIdx.x >> 5; }
__device__ __forceinline__ unsigned int lane_id() { return threadIdx.x & 31u; }
__device__ __forceinline__ unsigned int warp_count() { return blockDim.x >> 5; }

__device__ __forceinline__ unsigned long long block_sum_u64(unsigned long long v, BlockScratch& s)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    if (lane_id() == 0) s.u64[warp_id()] = v;
    __syncthreads();
    if (warp_id() == 0) {
        unsigned long long w = lane_id() < warp_count() ? s.u64[lane_id()] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(FULL_MASK, w, o);
        if (lane_id() == 0) s.u64[32] = w;
    }
    __syncthreads();
    const unsigned long long total = s.u64[32];
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_sum_f32(float v, BlockScratch& s)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    if (lane_id() == 0) s.f32[warp_id()] = v;
    __syncthreads();
    if (warp_id() == 0) {
        float w = lane_id() < warp_count() ? s.f32[lane_id()] : 0.0f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) w += __shfl_xor_sync(FULL_MASK, w, o);
        if (lane_id() == 0) s.f32[32] = w;
    }
    __syncthreads();
    const float total = s.f32[32];
    __syncthreads();
    return total;
}

// The better of two (value, index) pairs: larger value, then lower index.
__device__ __forceinline__ bool better(float v, unsigned int i, float w, unsigned int j)
{
    return v > w || (v == w && i < j);
}

// Block argmax: the largest value, ties to the lowest index. Returns the value; `*index` gets
// its index (0xffffffff if every value is -inf and no index was given).
__device__ __forceinline__ float block_argmax(float v, unsigned int i, unsigned int* index,
                                              BlockScratch& s)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(FULL_MASK, v, o);
        const unsigned int j = __shfl_xor_sync(FULL_MASK, i, o);
        if (better(w, j, v, i)) {
            v = w;
            i = j;
        }
    }
    if (lane_id() == 0) {
        s.f32[warp_id()] = v;
        s.idx[warp_id()] = i;
    }
    __syncthreads();
    if (warp_id() == 0) {
        const float neg_inf = __int_as_float(0xff800000);
        float w = lane_id() < warp_count() ? s.f32[lane_id()] : neg_inf;
        unsigned int j = lane_id() < warp_count() ? s.idx[lane_id()] : 0xffffffffu;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float w2 = __shfl_xor_sync(FULL_MASK, w, o);
            const unsigned int j2 = __shfl_xor_sync(FULL_MASK, j, o);
            if (better(w2, j2, w, j)) {
                w = w2;
                j = j2;
            }
        }
        if (lane_id() == 0) {
            s.f32[32] = w;
            s.idx[32] = j;
        }
    }
    __syncthreads();
    const float best = s.f32[32];
    *index = s.idx[32];
    __syncthreads();
    return best;
}

// Exclusive prefix sum over threads in thread order; `*total` gets the block's sum.
__device__ __forceinline__ unsigned long long block_exclusive_scan_u64(unsigned long long v,
                                                                      unsigned long long* total,
                                                                      BlockScratch& s)
{
    unsigned long long inclusive = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long up = __shfl_up_sync(FULL_MASK, inclusive, o);
        if (lane_id() >= (unsigned int)o) inclusive += up;
    }
    if (lane_id() == 31) s.u64[warp_id()] = inclusive;
    __syncthreads();
    if (warp_id() == 0) {
        unsigned long long w = lane_id() < warp_count() ? s.u64[lane_id()] : 0ull;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long up = __shfl_up_sync(FULL_MASK, w, o);
            if (lane_id() >= (unsigned int)o) w += up;
        }
        s.u64[lane_id()] = w;  // inclusive over warps
    }
    __syncthreads();
    const unsigned long long warps_before = warp_id() == 0 ? 0ull : s.u64[warp_id() - 1];
    *total = s.u64[warp_count() - 1];
    __syncthreads();
    return warps_before + inclusive - v;
}

// The same in f32, combined in a fixed order (the inverse-CDF walk depends on these bits).
__device__ __forceinline__ float block_exclusive_scan_f32(float v, float* total, BlockScratch& s)
{
    float inclusive = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float up = __shfl_up_sync(FULL_MASK, inclusive, o);
        if (lane_id() >= (unsigned int)o) inclusive += up;
    }
    if (lane_id() == 31) s.f32[warp_id()] = inclusive;
    __syncthreads();
    if (warp_id() == 0) {
        float w = lane_id() < warp_count() ? s.f32[lane_id()] : 0.0f;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float up = __shfl_up_sync(FULL_MASK, w, o);
            if (lane_id() >= (unsigned int)o) w += up;
        }
        s.f32[lane_id()] = w;
    }
    __syncthreads();
    const float warps_before = warp_id() == 0 ? 0.0f : s.f32[warp_id() - 1];
    *total = s.f32[warp_count() - 1];
    __syncthreads();
    // Exclusive prefix as (warps before) + (lanes before): lanes before = inclusive - v would
    // round differently from the sum of the earlier lanes, so take it from the lane below.
    float lanes_before = __shfl_up_sync(FULL_MASK, inclusive, 1);
    if (lane_id() == 0) lanes_before = 0.0f;
    return warps_before + lanes_before;
}

// Overloads by type, for code generic over the accumulator (numerics.cuh `Mass`).
__device__ __forceinline__ float block_sum(float v, BlockScratch& s) { return block_sum_f32(v, s); }
__device__ __forceinline__ unsigned long long block_sum(unsigned long long v, BlockScratch& s)
{
    return block_sum_u64(v, s);
}
__device__ __forceinline__ float block_exclusive_scan(float v, float* total, BlockScratch& s)
{
    return block_exclusive_scan_f32(v, total, s);
}
__device__ __forceinline__ unsigned long long block_exclusive_scan(unsigned long long v,
                                                                   unsigned long long* total,
                                                                   BlockScratch& s)
{
    return block_exclusive_scan_u64(v, total, s);
}
