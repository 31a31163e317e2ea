// Toy kernels that exercise the host SIMT shim (kernels/host/). Plain CUDA: the same file also
// compiles with nvcc/NVRTC; the HOST_SIMT_EXPORT lines at the end exist only in the host build.
// Driven by tests/simt_selftest.rs through src/host_simt/selftest.rs.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define FULL_MASK 0xffffffffu

// Lanes of this thread's warp that exist (the last warp of a block may be partial).
__device__ __forceinline__ unsigned warp_lanes() {
  const unsigned warp = threadIdx.x / 32;
  return min(32u, blockDim.x - warp * 32);
}
__device__ __forceinline__ unsigned warp_mask() {
  const unsigned n = warp_lanes();
  return n == 32 ? FULL_MASK : ((1u << n) - 1);
}

// Sum of a row, strided over the block's threads.
__device__ __noinline__ float row_partial(const float* __restrict__ row, int n) {
  float acc = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) acc += row[i];
  return acc;
}

// ---- block reductions: one block per row ----------------------------------------------------
extern "C" __global__ void __launch_bounds__(1024)
    st_block_sum_smem(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float partial[1024];
  const float acc = row_partial(in + (size_t)blockIdx.x * n, n);
  partial[threadIdx.x] = acc;
  __syncthreads();
  unsigned p = 1;
  while (p * 2 <= blockDim.x) p *= 2;  // largest power of two <= blockDim.x
  if (threadIdx.x < blockDim.x - p) partial[threadIdx.x] += partial[threadIdx.x + p];
  __syncthreads();
  for (unsigned s = p / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

__device__ __forceinline__ float warp_sum_down(float v, unsigned mask, unsigned lanes) {
  const unsigned lane = threadIdx.x % 32;
#pragma unroll
  for (unsigned off = 16; off > 0; off >>= 1) {
    const float o = __shfl_down_sync(mask, v, off);
    if (lane + off < lanes) v += o;
  }
  return v;
}

extern "C" __global__ void st_block_sum_warp(const float* __restrict__ in,
                                             float* __restrict__ out, int n) {
  static __shared__ float warp_sums[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned nwarps = (blockDim.x + 31) / 32;
  float v = row_partial(in + (size_t)blockIdx.x * n, n);
  v = warp_sum_down(v, warp_mask(), warp_lanes());
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < nwarps ? warp_sums[lane] : 0.0f;
    if (warp_lanes() == 32) {
#pragma unroll 5
      for (int off = 16; off > 0; off >>= 1) w += __shfl_xor_sync(FULL_MASK, w, off);
    } else {
      w = warp_sum_down(w, warp_mask(), warp_lanes());
    }
    if (lane == 0) out[blockIdx.x] = w;
  }
}

// ---- warp primitives --------------------------------------------------------------------------
extern "C" __global__ void st_warp_allreduce_xor(const float* in, float* out) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  float v = in[g];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
  out[g] = v;
}

extern "C" __global__ void st_warp_scan(const int* in, int* out) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned lane = threadIdx.x % 32, mask = warp_mask();
  int v = in[g];
  for (unsigned d = 1; d < 32; d <<= 1) {
    const int o = __shfl_up_sync(mask, v, d);
    if (lane >= d) v += o;
  }
  out[g] = v;
}

// Every shuffle value type, from lane (lane + 1) % 32.
extern "C" __global__ void st_shfl_types(int* oi, unsigned* ou, float* of, long long* oll,
                                         unsigned long long* oull, double* od) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  const int src = (lane + 1) % 32;
  oi[g] = __shfl_sync(FULL_MASK, -(lane * 1000 + 7), src);
  ou[g] = __shfl_sync(FULL_MASK, 0x80000000u + lane, src);
  of[g] = __shfl_sync(FULL_MASK, lane + 0.5f, src);
  oll[g] = __shfl_sync(FULL_MASK, -(1LL << 40) - lane, src);
  oull[g] = __shfl_sync(FULL_MASK, (1ULL << 63) + lane, src);
  od[g] = __shfl_sync(FULL_MASK, 1e20 + lane + 0.25, src);
}

// Segmented shuffles (width < 32) and out-of-range source lanes: 6 results per thread.
extern "C" __global__ void st_shfl_width(int* out) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  out[g * 6 + 0] = __shfl_sync(FULL_MASK, lane, 0, 8);
  out[g * 6 + 1] = __shfl_xor_sync(FULL_MASK, lane, 1, 4);
  out[g * 6 + 2] = __shfl_up_sync(FULL_MASK, lane, 1, 8);
  out[g * 6 + 3] = __shfl_down_sync(FULL_MASK, lane, 1, 8);
  out[g * 6 + 4] = __shfl_sync(FULL_MASK, lane, 35);
  out[g * 6 + 5] = __shfl_down_sync(FULL_MASK, lane, 3);
}

// Votes per thread: ballot, any, all, popc(ballot), activemask, match_any, reduce_add (7 each).
extern "C" __global__ void st_vote(const int* pred, unsigned* out) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned mask = warp_mask();
  const int p = pred[g];
  const unsigned b = __ballot_sync(mask, p);
  out[g * 7 + 0] = b;
  out[g * 7 + 1] = __any_sync(mask, p);
  out[g * 7 + 2] = __all_sync(mask, p);
  out[g * 7 + 3] = __popc(b);
  out[g * 7 + 4] = __activemask();
  out[g * 7 + 5] = __match_any_sync(mask, p);
  out[g * 7 + 6] = __reduce_add_sync(mask, (unsigned)p);
}

// __syncthreads_count / _and / _or: 3 results per block.
extern "C" __global__ void st_block_votes(const int* pred, int* out) {
  const int p = pred[blockIdx.x * blockDim.x + threadIdx.x];
  const int c = __syncthreads_count(p);
  const int a = __syncthreads_and(p);
  const int o = __syncthreads_or(p);
  if (threadIdx.x == 0) {
    out[blockIdx.x * 3 + 0] = c;
    out[blockIdx.x * 3 + 1] = a;
    out[blockIdx.x * 3 + 2] = o;
  }
}

// ---- atomics ----------------------------------------------------------------------------------
extern "C" __global__ void st_histogram(const unsigned* data, int n, unsigned* hist, int nbins) {
  __shared__ unsigned bins[256];
  for (int i = threadIdx.x; i < nbins; i += blockDim.x) bins[i] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    atomicAdd(&bins[data[i] % nbins], 1u);
  __syncthreads();
  for (int i = threadIdx.x; i < nbins; i += blockDim.x) atomicAdd(&hist[i], bins[i]);
}

// iout: [max, min, sum, sub]; uout: [max, min, or, and, exch]; ullout: [sum sq, max, cas count];
// fsum: [sum].
extern "C" __global__ void st_atomics(const int* vals, int n, int* iout, unsigned* uout,
                                      unsigned long long* ullout, float* fsum) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= n) return;
  const int v = vals[g];
  atomicMax(&iout[0], v);
  atomicMin(&iout[1], v);
  atomicAdd(&iout[2], v);
  atomicSub(&iout[3], v);
  const unsigned u = (unsigned)v * 2654435761u;
  atomicMax(&uout[0], u);
  atomicMin(&uout[1], u);
  atomicOr(&uout[2], 1u << (v & 31));
  atomicAnd(&uout[3], ~(1u << (v & 31)));
  atomicExch(&uout[4], 7u);
  atomicAdd(&ullout[0], (unsigned long long)((long long)v * v));
  atomicMax(&ullout[1], (unsigned long long)u << 20);
  unsigned long long old = ullout[2], assumed;
  do {
    assumed = old;
    old = atomicCAS(&ullout[2], assumed, assumed + 1);
  } while (old != assumed);
  atomicAdd(fsum, (float)v);
}

// ---- shared memory ----------------------------------------------------------------------------
extern "C" __global__ void st_dynamic_smem(const float* in, float* out) {
  extern __shared__ __align__(16) unsigned char smem[];
  float* buf = reinterpret_cast<float*>(smem);
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  buf[threadIdx.x] = in[g];
  __syncthreads();
  out[g] = buf[blockDim.x - 1 - threadIdx.x];
}

__device__ float dynamic_as_float(int i) {
  extern __shared__ float dyn_f[];
  return dyn_f[i];
}

// Two views of the same dynamic arena; out: 8 floats (4 written, 4 poisoned bits).
extern "C" __global__ void st_dynamic_views(float* out) {
  extern __shared__ float4 dyn4[];
  if (threadIdx.x == 0) dyn4[0] = make_float4(1.0f, 2.0f, 3.0f, 4.0f);
  __syncthreads();
  if (threadIdx.x < 8) out[threadIdx.x] = dynamic_as_float(threadIdx.x);
}

__shared__ int file_scope_counter;

// Poison: shared memory read before any write shows 0xFF bytes, in every block. 5 per thread:
// [static array, static scalar, dynamic, after-write neighbour, 16-byte alignment ok].
extern "C" __global__ void st_poison(unsigned* out) {
  __shared__ unsigned s[1024];
  __shared__ float f;
  __shared__ __align__(16) float4 aligned4[2];
  extern __shared__ unsigned dyn_u[];
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  out[g * 5 + 0] = s[threadIdx.x];
  out[g * 5 + 1] = __float_as_uint(f);
  out[g * 5 + 2] = dyn_u[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = blockIdx.x;  // dirty everything for the next block
  dyn_u[threadIdx.x] = blockIdx.x;
  if (threadIdx.x == 0) {
    f = 1.0f;
    file_scope_counter = 0;
  }
  __syncthreads();
  atomicAdd(&file_scope_counter, 1);
  __syncthreads();
  out[g * 5 + 3] = s[(threadIdx.x + 1) % blockDim.x] + (unsigned)file_scope_counter * 1000u;
  out[g * 5 + 4] = ((size_t)&aligned4[1] % 16 == 0) ? 1u : 0u;
}

// Reads a neighbour's slot without the __syncthreads() it needs: the result depends on the
// order in which threads run.
extern "C" __global__ void st_racy(const int* in, int* out) {
  __shared__ int s[1024];
  s[threadIdx.x] = in[threadIdx.x];
  // missing: __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// The same with the barrier, for contrast.
extern "C" __global__ void st_not_racy(const int* in, int* out) {
  __shared__ int s[1024];
  s[threadIdx.x] = in[threadIdx.x];
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// ---- grids, conversions, vector types -----------------------------------------------------------
// 3 per thread: [bx | by << 16, tid | bdx << 16, gdx | gdy << 16].
extern "C" __global__ void st_grid2d(unsigned* out) {
  const unsigned block = blockIdx.y * gridDim.x + blockIdx.x;
  const unsigned g = block * blockDim.x + threadIdx.x;
  out[g * 3 + 0] = blockIdx.x | (blockIdx.y << 16);
  out[g * 3 + 1] = threadIdx.x | (blockDim.x << 16) | (threadIdx.y << 31) | (threadIdx.z << 30);
  out[g * 3 + 2] = gridDim.x | (gridDim.y << 16) | ((blockDim.y * blockDim.z * gridDim.z - 1) << 31);
}

extern "C" __global__ void st_convert(const __half* h, const __nv_bfloat16* b, float* hf,
                                      float* bf, __half* h2, __nv_bfloat16* b2, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  hf[i] = __half2float(h[i]);
  bf[i] = __bfloat162float(b[i]);
  h2[i] = __float2half_rn(hf[i] * 3.0f);
  b2[i] = __float2bfloat16_rn(bf[i] * 3.0f);
}

// out[i] = x + y + z + w of the i-th float4; vec: per thread 4 checksums of the other vector types.
extern "C" __global__ void st_float4(const float* in, float* out, unsigned* vec, int n4) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  const float4 v = __ldg(reinterpret_cast<const float4*>(in) + i);
  out[i] = v.x + v.y + v.z + v.w;
  const uint4 u4 = make_uint4(i, i + 1, i + 2, i + 3);
  const int4 i4 = make_int4(-i, 1, 2, 3);
  const uint2 u2 = make_uint2(i, 7);
  const ushort4 us = make_ushort4(1, 2, 3, (unsigned short)i);
  const short4 s4 = make_short4(-1, -2, -3, (short)i);
  const float2 f2 = make_float2(0.5f, 1.5f);
  vec[i * 4 + 0] = u4.x + u4.y + u4.z + u4.w;
  vec[i * 4 + 1] = (unsigned)(i4.x + i4.y + i4.z + i4.w);
  vec[i * 4 + 2] = u2.x * u2.y + us.x + us.y + us.z + us.w;
  vec[i * 4 + 3] = (unsigned)(s4.x + s4.y + s4.z + s4.w) + (unsigned)(f2.x + f2.y);
}

// Math and bit intrinsics; fixed inputs, 16 floats / 16 ints / 8 unsigned.
extern "C" __global__ void st_math(const float* x, float* of, int* oi, unsigned* ou) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const float inf = __int_as_float(0x7f800000);
  const float nan = __int_as_float(0x7fc00000);
  of[0] = expf(x[0]);
  of[1] = logf(x[1]);
  of[2] = log1pf(x[2]);
  of[3] = expm1f(x[3]);
  of[4] = fmaf(x[4], x[5], x[6]);
  of[5] = fminf(x[7], nan);
  of[6] = fmaxf(nan, x[7]);
  of[7] = fabsf(-x[8]);
  of[8] = sqrtf(x[9]);
  of[9] = min(x[7], x[8]);
  of[10] = max(x[7], x[8]);
  of[11] = __fdividef(x[9], x[5]);
  of[12] = __uint_as_float(__float_as_uint(x[4]));
  of[13] = inf;
  of[14] = max(1.0f, nan);
  of[15] = __saturatef(x[9]);
  oi[0] = min(-1, 2);
  oi[1] = (int)min(-1, 2u);  // mixed signedness: compares as unsigned, like CUDA
  oi[2] = max(-1, 2);
  oi[3] = __popc(0xf0f0u);
  oi[4] = __popcll(0xffffffffffULL);
  oi[5] = __clz(1);
  oi[6] = __clz(0);
  oi[7] = __clzll(1LL);
  oi[8] = __ffs(0x10);
  oi[9] = __ffs(0);
  oi[10] = isnan(nan) ? 1 : 0;
  oi[11] = isinf(inf) ? 1 : 0;
  oi[12] = isfinite(inf) ? 1 : 0;
  oi[13] = __float_as_int(1.0f);
  oi[14] = __float2int_rn(2.5f);
  oi[15] = __float2int_rn(nan);
  ou[0] = __brev(1u);
  ou[1] = __umulhi(0xffffffffu, 2u);
  ou[2] = max(3u, 5u);
  ou[3] = __byte_perm(0x33221100u, 0x77665544u, 0x4321u);
  ou[4] = (unsigned)__umul64hi(0xffffffffffffffffULL, 4ULL);
  ou[5] = __funnelshift_l(0x80000000u, 0x1u, 1u);
  ou[6] = (unsigned)llmax(-5LL, 3LL);
  ou[7] = umin(7u, 9u);
}

// Template kernel with a dependent static shared size (exported twice below).
template <int SCALE>
__global__ void st_scale(const float* in, float* out) {
  __shared__ float tile[SCALE * 256];
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned lane = threadIdx.x % 32;
  tile[threadIdx.x * SCALE] = in[g];
  __syncwarp();
  // read the neighbour lane's slot: needs the __syncwarp above
  const unsigned other = threadIdx.x - lane + (lane ^ 1);
  out[g] = tile[other * SCALE] * SCALE;
}

// A thread waits on a flag that a later thread sets (works through __nanosleep's yield).
extern "C" __global__ void st_spin(int* out) {
  __shared__ int flag;
  if (threadIdx.x == 0) flag = 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    while (atomicAdd(&flag, 0) == 0) __nanosleep(100);
    out[0] = 1;
  } else if (threadIdx.x == blockDim.x - 1) {
    atomicExch(&flag, 1);
  }
}

// ---- kernels that must fail cleanly ------------------------------------------------------------
// Its own frame: a large local array in the kernel itself would be reserved on every call.
__device__ __noinline__ int big_local_array() {
  volatile char big[256 * 1024];
  big[threadIdx.x] = 1;
  big[sizeof(big) - 1] = 2;
  return big[threadIdx.x];
}

// mode 0: half the block skips a __syncthreads (and exits)
// mode 1: threads reach different __syncthreads call sites
// mode 2: half a warp shuffles with the full mask, the other half exits
// mode 3: half a warp shuffles with the full mask, the other half waits at __syncthreads
// mode 4: a partial warp names lanes that do not exist (launch with blockDim 33)
// mode 5: __trap() on thread 5
// mode 6: assert fails on thread 7
// mode 7: a large local array overflows the fiber stack
// mode 8: invalid memory access (null pointer; the wrapper passes out[1] == 0)
// mode 9: a lane passes a mask without its own bit
// mode 10: a thread spins forever on a flag (livelock; reported after ~4M idle rounds)
// Waits for a flag that no thread ever sets.
__device__ __noinline__ void spin_forever() {
  __shared__ int never;
  never = 0;
  while (atomicAdd(&never, 0) == 0) __nanosleep(1000);
}

extern "C" __global__ void st_faulty(int mode, int* out) {
  const unsigned lane = threadIdx.x % 32;
  int v = threadIdx.x;
  switch (mode) {
    case 0:
      if (threadIdx.x < 16) __syncthreads();
      break;
    case 1:
      if (threadIdx.x % 2) {
        __syncthreads();
      } else {
        __syncthreads();
      }
      break;
    case 2:
      if (lane < 16) v = __shfl_xor_sync(FULL_MASK, v, 1);
      break;
    case 3:
      if (lane < 16) v = __shfl_xor_sync(FULL_MASK, v, 1);
      __syncthreads();
      break;
    case 4:
      v = __shfl_sync(FULL_MASK, v, 0);
      break;
    case 5:
      if (threadIdx.x == 5) __trap();
      break;
    case 6:
      assert(threadIdx.x != 7);
      break;
    case 7:
      v = big_local_array();
      break;
    case 8:
      if (threadIdx.x == 3) v = *(volatile int*)(size_t)(unsigned)out[1];  // out[1] is 0
      break;
    case 9:
      v = __shfl_sync(1u, v, 0);
      break;
    case 10:
      if (threadIdx.x == 0) spin_forever();
      break;
  }
  out[threadIdx.x + 2] = v;
}

#ifdef BATCHSAMPLE_HOST_SIMT
HOST_SIMT_EXPORT(st_block_sum_smem, (const float* in, float* out, int n), (in, out, n))
HOST_SIMT_EXPORT(st_block_sum_warp, (const float* in, float* out, int n), (in, out, n))
HOST_SIMT_EXPORT(st_warp_allreduce_xor, (const float* in, float* out), (in, out))
HOST_SIMT_EXPORT(st_warp_scan, (const int* in, int* out), (in, out))
HOST_SIMT_EXPORT(st_shfl_types,
                 (int* oi, unsigned* ou, float* of, long long* oll, unsigned long long* oull,
                  double* od),
                 (oi, ou, of, oll, oull, od))
HOST_SIMT_EXPORT(st_shfl_width, (int* out), (out))
HOST_SIMT_EXPORT(st_vote, (const int* pred, unsigned* out), (pred, out))
HOST_SIMT_EXPORT(st_block_votes, (const int* pred, int* out), (pred, out))
HOST_SIMT_EXPORT(st_histogram, (const unsigned* data, int n, unsigned* hist, int nbins),
                 (data, n, hist, nbins))
HOST_SIMT_EXPORT(st_atomics,
                 (const int* vals, int n, int* iout, unsigned* uout, unsigned long long* ullout,
                  float* fsum),
                 (vals, n, iout, uout, ullout, fsum))
HOST_SIMT_EXPORT(st_dynamic_smem, (const float* in, float* out), (in, out))
HOST_SIMT_EXPORT(st_dynamic_views, (float* out), (out))
HOST_SIMT_EXPORT(st_poison, (unsigned* out), (out))
HOST_SIMT_EXPORT(st_racy, (const int* in, int* out), (in, out))
HOST_SIMT_EXPORT(st_not_racy, (const int* in, int* out), (in, out))
HOST_SIMT_EXPORT(st_grid2d, (unsigned* out), (out))
HOST_SIMT_EXPORT(st_convert,
                 (const __half* h, const __nv_bfloat16* b, float* hf, float* bf, __half* h2,
                  __nv_bfloat16* b2, int n),
                 (h, b, hf, bf, h2, b2, n))
HOST_SIMT_EXPORT(st_float4, (const float* in, float* out, unsigned* vec, int n4),
                 (in, out, vec, n4))
HOST_SIMT_EXPORT(st_math, (const float* x, float* of, int* oi, unsigned* ou), (x, of, oi, ou))
HOST_SIMT_EXPORT_AS(st_scale_2, (st_scale<2>), (const float* in, float* out), (in, out))
HOST_SIMT_EXPORT_AS(st_scale_3, (st_scale<3>), (const float* in, float* out), (in, out))
HOST_SIMT_EXPORT(st_spin, (int* out), (out))
HOST_SIMT_EXPORT(st_faulty, (int mode, int* out), (mode, out))
#endif
