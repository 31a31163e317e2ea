// The batch-invariant output projection of experiment 2 (docs/determinism.md):
//
//     logits[b, v] = sum_k hidden[b, k] * weights[v, k]      (f32 accumulate, f32 out)
//
// for hidden [batch, d] and weights [vocab, d] in f32, f16 or bf16. cuBLAS picks its tiling and
// split-K by problem shape, so the same row's logits change with the batch size; here every
// output's summation order is a function of d (and the element type) alone:
//
//   * the row is cut into chunks of VEC = 16 / sizeof(element) elements (4 for f32, 8 for
//     f16/bf16); lane l (0..31) of the warp owns chunks l, l + 32, l + 64, ...;
//   * a lane's partial starts at +0.0 and takes __fmaf_rn(hidden[b, k], weights[v, k], partial)
//     for each k it owns, in increasing k (the last, partial chunk included);
//   * the 32 partials are combined by the xor butterfly p[l] += p[l ^ o], o = 16, 8, 4, 2, 1
//     (every lane ends with the same bits: IEEE addition is commutative).
//
// No split-K, no atomics, no dependence on the batch size, the row's position or the grid.
// cli/src/drift/projection.rs replays this order bit for bit on the CPU. Every multiply-add is an
// explicit __fmaf_rn and every add an explicit __fadd_rn: nvcc contracts a * b + c on its own.
//
// Speed: a block is PROJ_WARPS warps; each warp computes PROJ_VOCAB_PER_WARP vocab rows for a
// tile of PROJ_BATCH_TILE batch rows, so every weight chunk (one 16-byte load) is used for the
// whole tile. Batch tiles run along grid x, so the blocks that read the same weight rows are
// scheduled together and all but the first find them in L2.
#include "load.cuh"

// The launchers read these (build.rs generates the Rust constants; cli/src/drift/projection.rs:
// PROJECTION_*). None of them changes the summation order.
#define PROJ_WARPS 4
#define PROJ_VOCAB_PER_WARP 4
#define PROJ_BATCH_TILE 8
#define PROJ_THREADS (PROJ_WARPS * 32)

template <int DT> struct ProjChunk {
    static constexpr int VEC = 16 / (int)sizeof(typename Dtype<DT>::Raw);
};

__device__ __forceinline__ bool proj_aligned16(const void* p)
{
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0ull;
}

// The raw bits of one full chunk of VEC elements starting at p: one 16-byte load when `vector`
// (every row 16-byte aligned), element loads otherwise (load.cuh `load_raw`). Kept raw until
// used, widened by proj_element: a bf16 chunk then takes 4 registers instead of 8. The loads never
// change the order.
template <int DT>
__device__ __forceinline__ uint4 proj_load_chunk(const typename Dtype<DT>::Raw* __restrict__ p,
                                                 bool vector)
{
    return load_raw<DT>(p, Dtype<DT>::VEC, 0u, vector);
}

// Element j (a compile-time constant after unrolling) of a raw chunk, widened exactly to f32.
template <int DT>
__device__ __forceinline__ float proj_element(const uint4& raw, int j)
{
    constexpr int PER_WORD = ProjChunk<DT>::VEC / 4;
    const int q = j / PER_WORD;
    const unsigned int word = q == 0 ? raw.x : q == 1 ? raw.y : q == 2 ? raw.z : raw.w;
    if constexpr (DT == DTYPE_F32) {
        return __uint_as_float(word);
    } else {
        return Dtype<DT>::widen((unsigned short)((j & 1) ? word >> 16 : word & 0xffffu));
    }
}

template <int DT>
__device__ __forceinline__ void project_tile(const typename Dtype<DT>::Raw* __restrict__ hidden,
                                             const typename Dtype<DT>::Raw* __restrict__ weights,
                                             unsigned int batch, unsigned int vocab,
                                             unsigned int d, float* __restrict__ logits)
{
    typedef typename Dtype<DT>::Raw Raw;
    constexpr int VEC = ProjChunk<DT>::VEC;
    constexpr int VR = PROJ_VOCAB_PER_WARP;
    constexpr int TB = PROJ_BATCH_TILE;
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int b0 = blockIdx.x * TB;
    const unsigned int v0 = (blockIdx.y * PROJ_WARPS + (threadIdx.x >> 5)) * VR;
    // Whole warps only: a warp either returns here or reaches every shuffle below.
    if (v0 >= vocab || b0 >= batch) return;
    const bool vector = d % VEC == 0u && proj_aligned16(hidden) && proj_aligned16(weights);

    // Rows past the end read the last row (no out-of-bounds load); their sums are never written.
    const Raw* wrow[VR];
#pragma unroll
    for (int r = 0; r < VR; ++r)
        wrow[r] = weights + (size_t)(v0 + r < vocab ? v0 + r : vocab - 1u) * d;
    const Raw* hrow[TB];
#pragma unroll
    for (int t = 0; t < TB; ++t)
        hrow[t] = hidden + (size_t)(b0 + t < batch ? b0 + t : batch - 1u) * d;

    float acc[VR][TB];
#pragma unroll
    for (int r = 0; r < VR; ++r)
#pragma unroll
        for (int t = 0; t < TB; ++t) acc[r][t] = 0.0f;

    const unsigned int full = d / VEC;  // chunks of VEC elements; a partial one may follow
    for (unsigned int c = lane; c < full; c += 32u) {
        const unsigned int k0 = c * VEC;
        uint4 w[VR];
#pragma unroll
        for (int r = 0; r < VR; ++r) w[r] = proj_load_chunk<DT>(wrow[r] + k0, vector);
#pragma unroll
        for (int t = 0; t < TB; ++t) {
            if (b0 + t < batch) {
                const uint4 hraw = proj_load_chunk<DT>(hrow[t] + k0, vector);
                float h[VEC];
#pragma unroll
                for (int j = 0; j < VEC; ++j) h[j] = proj_element<DT>(hraw, j);
#pragma unroll
                for (int r = 0; r < VR; ++r)
#pragma unroll
                    for (int j = 0; j < VEC; ++j)
                        acc[r][t] = __fmaf_rn(h[j], proj_element<DT>(w[r], j), acc[r][t]);
            }
        }
    }
    // The partial chunk is the highest-numbered one, so its lane (full % 32) takes it last.
    const unsigned int tail = d - full * VEC;
    if (tail != 0u && lane == full % 32u) {
        const unsigned int k0 = full * VEC;
#pragma unroll
        for (int t = 0; t < TB; ++t) {
            if (b0 + t < batch) {
#pragma unroll
                for (int r = 0; r < VR; ++r)
                    for (unsigned int j = 0; j < tail; ++j)
                        acc[r][t] = __fmaf_rn(Dtype<DT>::widen(hrow[t][k0 + j]),
                                              Dtype<DT>::widen(wrow[r][k0 + j]), acc[r][t]);
            }
        }
    }

    // The fixed xor butterfly, then each lane stores one of the VR * TB sums.
#pragma unroll
    for (int r = 0; r < VR; ++r) {
#pragma unroll
        for (int t = 0; t < TB; ++t) {
            float s = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, o));
            if (lane == (unsigned int)((r * TB + t) & 31) && v0 + r < vocab && b0 + t < batch)
                logits[(size_t)(b0 + t) * vocab + v0 + r] = s;
        }
    }
}

// Grid (ceil(batch / PROJ_BATCH_TILE), ceil(vocab / (PROJ_WARPS * PROJ_VOCAB_PER_WARP))), blocks
// of PROJ_THREADS threads, no shared memory.
#define PROJECTION_ENTRY(NAME, DT, RAW)                                                            \
    extern "C" __global__ void __launch_bounds__(PROJ_THREADS) NAME(                               \
        const RAW* __restrict__ hidden,  /* [batch, d] */                                          \
        const RAW* __restrict__ weights, /* [vocab, d] */                                          \
        unsigned int batch, unsigned int vocab, unsigned int d,                                    \
        float* __restrict__ logits)      /* [batch, vocab] */                                      \
    {                                                                                              \
        project_tile<DT>(hidden, weights, batch, vocab, d, logits);                                \
    }

PROJECTION_ENTRY(project_invariant_f32, DTYPE_F32, float)
PROJECTION_ENTRY(project_invariant_f16, DTYPE_F16, unsigned short)
PROJECTION_ENTRY(project_invariant_bf16, DTYPE_BF16, unsigned short)

#ifdef BATCHSAMPLE_HOST_SIMT
// Host-shim launchers (kernels/host/README.md): the same kernels, run on the CPU by the tests.
#define PROJECTION_PARAMS(RAW)                                                                     \
    (const RAW* hidden, const RAW* weights, unsigned int batch, unsigned int vocab,                \
     unsigned int d, float* logits)
#define PROJECTION_ARGS (hidden, weights, batch, vocab, d, logits)
HOST_SIMT_EXPORT(project_invariant_f32, PROJECTION_PARAMS(float), PROJECTION_ARGS)
HOST_SIMT_EXPORT(project_invariant_f16, PROJECTION_PARAMS(unsigned short), PROJECTION_ARGS)
HOST_SIMT_EXPORT(project_invariant_bf16, PROJECTION_PARAMS(unsigned short), PROJECTION_ARGS)
#endif
