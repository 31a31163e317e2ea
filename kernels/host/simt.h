// Host SIMT shim: lets g++ compile the kernels' own .cu source as C++20 and run it on the CPU.
//
// Force-included (`-include simt.h`) before every kernel translation unit by build/host_simt.rs,
// which also rewrites `__shared__` declarations (see README.md beside this file). Never included
// by NVRTC/nvcc builds. `__CUDA_ARCH__` and `__CUDACC__` stay undefined: guarded Hopper-only code
// (`#if __CUDA_ARCH__ >= 900`) is skipped and its portable twin is what runs here.
//
// Model: the blocks of a launch run one after another; a block's threads are cooperative fibers
// on the calling OS thread. Every `__syncthreads*` and every `*_sync` warp primitive is a meeting
// point where a fiber yields to the scheduler (kernels/host/simt_runtime.cpp).
#ifndef BATCHSAMPLE_HOST_SIMT_H
#define BATCHSAMPLE_HOST_SIMT_H

#ifndef __cplusplus
#error "kernels/host/simt.h is C++ only"
#endif

// Standard headers first: libstdc++ spells `__attribute__((__noinline__))`, so everything that
// uses it must be parsed before `__noinline__` becomes a macro below.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <new>
#include <source_location>
#include <type_traits>
#include <utility>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// CUDA types: the pinned wheel headers when the build found them, else a minimal stand-in.
// ---------------------------------------------------------------------------------------------
#if !defined(HOST_SIMT_NO_CUDA_HEADERS) && __has_include(<cuda_fp16.h>) && \
    __has_include(<cuda_bf16.h>) && __has_include(<vector_types.h>)
#include <vector_types.h>
#include <vector_functions.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define HOST_SIMT_CUDA_HEADERS 1
#else
#define HOST_SIMT_CUDA_HEADERS 0
// Minimal stand-ins (build without the wheel headers): vector types with CUDA's alignments,
// dim3, and __half / __nv_bfloat16 as storage types with round-to-nearest-even conversions.
// Arithmetic on __half/__nv_bfloat16 goes through float here (operator float).
#define HOST_SIMT_VEC1_(T, N) \
  struct N##1 { T x; };       \
  inline N##1 make_##N##1(T x) { return {x}; }
#define HOST_SIMT_VEC2_(T, N, A)        \
  struct __attribute__((aligned(A))) N##2 { T x, y; }; \
  inline N##2 make_##N##2(T x, T y) { return {x, y}; }
#define HOST_SIMT_VEC3_(T, N) \
  struct N##3 { T x, y, z; }; \
  inline N##3 make_##N##3(T x, T y, T z) { return {x, y, z}; }
#define HOST_SIMT_VEC4_(T, N, A)              \
  struct __attribute__((aligned(A))) N##4 { T x, y, z, w; }; \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return {x, y, z, w}; }
#define HOST_SIMT_VEC_(T, N, A2, A4) \
  HOST_SIMT_VEC1_(T, N) HOST_SIMT_VEC2_(T, N, A2) HOST_SIMT_VEC3_(T, N) HOST_SIMT_VEC4_(T, N, A4)
HOST_SIMT_VEC_(signed char, char, 2, 4)
HOST_SIMT_VEC_(unsigned char, uchar, 2, 4)
HOST_SIMT_VEC_(short, short, 4, 8)
HOST_SIMT_VEC_(unsigned short, ushort, 4, 8)
HOST_SIMT_VEC_(int, int, 8, 16)
HOST_SIMT_VEC_(unsigned int, uint, 8, 16)
HOST_SIMT_VEC_(float, float, 8, 16)
HOST_SIMT_VEC1_(long long, longlong)
HOST_SIMT_VEC2_(long long, longlong, 16)
HOST_SIMT_VEC1_(unsigned long long, ulonglong)
HOST_SIMT_VEC2_(unsigned long long, ulonglong, 16)
HOST_SIMT_VEC1_(double, double)
HOST_SIMT_VEC2_(double, double, 16)
#undef HOST_SIMT_VEC_
#undef HOST_SIMT_VEC1_
#undef HOST_SIMT_VEC2_
#undef HOST_SIMT_VEC3_
#undef HOST_SIMT_VEC4_
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __attribute__((aligned(2))) __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(std::bit_cast<unsigned short>(static_cast<_Float16>(f))) {}
  operator float() const { return static_cast<float>(std::bit_cast<_Float16>(__x)); }
};
struct __attribute__((aligned(2))) __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) {
    unsigned u = std::bit_cast<unsigned>(f);
    __x = (u & 0x7fffffffu) > 0x7f800000u
              ? static_cast<unsigned short>((u >> 16) | 0x40u)
              : static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  operator float() const { return std::bit_cast<float>(static_cast<unsigned>(__x) << 16); }
};
typedef __half half;
struct __attribute__((aligned(4))) __half2 { __half x, y; };
struct __attribute__((aligned(4))) __nv_bfloat162 { __nv_bfloat16 x, y; };
inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { __half h; h.__x = u; return h; }
inline bool __hisnan(__half h) { return (h.__x & 0x7fffu) > 0x7c00u; }
inline int __hisinf(__half h) { return (h.__x & 0x7fffu) == 0x7c00u ? ((h.__x >> 15) ? -1 : 1) : 0; }
inline float __bfloat162float(__nv_bfloat16 b) { return static_cast<float>(b); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { __nv_bfloat16 b; b.__x = u; return b; }
inline bool __hisnan(__nv_bfloat16 b) { return (b.__x & 0x7fffu) > 0x7f80u; }
inline __half2 __halves2half2(__half a, __half b) { return {a, b}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline __half2 __float22half2_rn(float2 f) { return {__half(f.x), __half(f.y)}; }
inline float2 __half22float2(__half2 h) { return {float(h.x), float(h.y)}; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return {a, b}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return {float(h.x), float(h.y)}; }
inline float __low2float(__nv_bfloat162 h) { return float(h.x); }
inline float __high2float(__nv_bfloat162 h) { return float(h.y); }
#endif

// NVRTC does not define these; keep the host build as strict (kernels spell
// `__int_as_float(0x7f800000)`).
#undef INFINITY
#undef NAN

// ---------------------------------------------------------------------------------------------
// Keywords
// ---------------------------------------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __constant__
#undef __managed__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#undef __noinline__
#define __noinline__ __attribute__((noinline))
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#undef __launch_bounds__
#define __launch_bounds__(...)
#ifndef __grid_constant__
#define __grid_constant__
#endif
// build/host_simt.rs rewrites every `__shared__` declaration; one it could not see (e.g. inside a
// macro definition) would silently become per-thread storage, so make it a compile error.
#define __shared__ HOST_SIMT_ERROR_unrewritten___shared___see_kernels_host_README

// ---------------------------------------------------------------------------------------------
// Launch ABI (shared with src/host_simt/mod.rs)
// ---------------------------------------------------------------------------------------------
extern "C" {
struct HostLaunch {
  unsigned grid_x, grid_y, block_x;
  size_t dynamic_smem;
  int schedule;  // 0 forward, 1 reverse, 2 seeded random
  unsigned long long schedule_seed;
};
// Message of the calling OS thread's last failed launch ("" if none). Valid until its next launch.
const char* host_simt_last_error(void);
// Base of the dynamic shared memory arena (`extern __shared__ T x[];` is rewritten to alias it).
extern unsigned char host_simt_dynamic_smem[];
}

#define HOST_SIMT_OK 0
#define HOST_SIMT_ERR_DEADLOCK 1     // barrier / warp primitive that can never complete
#define HOST_SIMT_ERR_TRAP 2         // __trap(), assert()
#define HOST_SIMT_ERR_LAUNCH 3       // invalid launch configuration
#define HOST_SIMT_ERR_MEMORY 4       // SIGSEGV/SIGBUS in a kernel thread (stack overflow included)
#define HOST_SIMT_ERR_WARP_USAGE 5   // warp primitive with a mask that cannot be right
#define HOST_SIMT_ERR_EXCEPTION 6    // C++ exception escaped a kernel

// Built-in variables. Plain globals: launches are serialised by a global mutex and the scheduler
// stores the running fiber's values before resuming it (threadIdx.y/z, blockIdx.z are always 0).
extern uint3 threadIdx __attribute__((visibility("hidden")));
extern uint3 blockIdx __attribute__((visibility("hidden")));
extern dim3 blockDim __attribute__((visibility("hidden")));
extern dim3 gridDim __attribute__((visibility("hidden")));
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------
// Runtime entry points (simt_runtime.cpp)
// ---------------------------------------------------------------------------------------------
namespace host_simt {
using Loc = std::source_location;

enum BarKind : int { kBarSync = 0, kBarCount = 1, kBarAnd = 2, kBarOr = 3 };
enum WarpOp : int {
  kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncWarp, kMatchAny, kMatchAll,
  kReduceAdd, kReduceMinU, kReduceMaxU, kReduceMinI, kReduceMaxI, kReduceAnd, kReduceOr,
  kReduceXor,
};

int block_barrier(int kind, int pred, Loc loc);
unsigned long long warp_op(int op, unsigned mask, unsigned long long value, int b, int width,
                           Loc loc);
unsigned active_mask();
void yield_now();
[[noreturn]] void trap(const char* what, Loc loc);
[[noreturn]] void assert_fail(const char* expr, const char* file, unsigned line, const char* fn);

// Registers a static `__shared__` variable: poisoned (0xFF) now and before every block.
struct SharedReg {
  SharedReg(void* p, size_t bytes) noexcept;
};

int run_launch(const HostLaunch* cfg, const char* name, void (*body)(void*), void* ctx) noexcept;

// Generic launch: `kernel(args...)` runs once per CUDA thread of every block of `cfg`.
template <class... P, class... A>
int launch(const HostLaunch* cfg, const char* name, void (*kernel)(P...), A... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
  auto body = [&]() { kernel(args...); };
  using Body = decltype(body);
  return run_launch(cfg, name, [](void* p) { (*static_cast<Body*>(p))(); }, &body);
}

template <class T>
inline unsigned long long to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp primitives take values of at most 8 bytes");
  unsigned long long u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
inline T from_bits(unsigned long long u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
}  // namespace host_simt

// One-line C ABI export of a kernel:
//   HOST_SIMT_EXPORT(my_kernel, (const float* in, float* out, int n), (in, out, n))
// defines `extern "C" int host_launch_my_kernel(const HostLaunch* cfg, const float* in, ...)`.
// Template kernels: HOST_SIMT_EXPORT_AS(my_kernel_256, (my_kernel<256>), (params), (args)).
#define HOST_SIMT_PREPEND_COMMA_(...) __VA_OPT__(, ) __VA_ARGS__
#define HOST_SIMT_EXPORT_AS(export_name, kernel, params, args)                                 \
  extern "C" int host_launch_##export_name(const HostLaunch* cfg HOST_SIMT_PREPEND_COMMA_ params) { \
    return ::host_simt::launch(cfg, #export_name, kernel HOST_SIMT_PREPEND_COMMA_ args);       \
  }
#define HOST_SIMT_EXPORT(name, params, args) HOST_SIMT_EXPORT_AS(name, name, params, args)

// ---------------------------------------------------------------------------------------------
// Block barriers
// ---------------------------------------------------------------------------------------------
inline void __syncthreads(host_simt::Loc l = host_simt::Loc::current()) {
  host_simt::block_barrier(host_simt::kBarSync, 0, l);
}
inline int __syncthreads_count(int p, host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::block_barrier(host_simt::kBarCount, p, l);
}
inline int __syncthreads_and(int p, host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::block_barrier(host_simt::kBarAnd, p, l);
}
inline int __syncthreads_or(int p, host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::block_barrier(host_simt::kBarOr, p, l);
}

// ---------------------------------------------------------------------------------------------
// Warp primitives (meeting points of exactly the lanes named in `mask`)
// ---------------------------------------------------------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu, host_simt::Loc l = host_simt::Loc::current()) {
  host_simt::warp_op(host_simt::kSyncWarp, mask, 0, 0, 32, l);
}
inline unsigned __activemask() { return host_simt::active_mask(); }

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,
                     host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::from_bits<T>(host_simt::warp_op(host_simt::kShflIdx, mask,
                                                    host_simt::to_bits(var), srcLane, width, l));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::from_bits<T>(host_simt::warp_op(
      host_simt::kShflUp, mask, host_simt::to_bits(var), static_cast<int>(delta), width, l));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::from_bits<T>(host_simt::warp_op(
      host_simt::kShflDown, mask, host_simt::to_bits(var), static_cast<int>(delta), width, l));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                         host_simt::Loc l = host_simt::Loc::current()) {
  return host_simt::from_bits<T>(host_simt::warp_op(host_simt::kShflXor, mask,
                                                    host_simt::to_bits(var), laneMask, width, l));
}
inline unsigned __ballot_sync(unsigned mask, int pred,
                              host_simt::Loc l = host_simt::Loc::current()) {
  return static_cast<unsigned>(host_simt::warp_op(host_simt::kBallot, mask, pred != 0, 0, 32, l));
}
inline int __any_sync(unsigned mask, int pred, host_simt::Loc l = host_simt::Loc::current()) {
  return static_cast<int>(host_simt::warp_op(host_simt::kAny, mask, pred != 0, 0, 32, l));
}
inline int __all_sync(unsigned mask, int pred, host_simt::Loc l = host_simt::Loc::current()) {
  return static_cast<int>(host_simt::warp_op(host_simt::kAll, mask, pred != 0, 0, 32, l));
}
inline int __uni_sync(unsigned mask, int pred, host_simt::Loc l = host_simt::Loc::current()) {
  unsigned b = __ballot_sync(mask, pred, l);
  return b == 0 || b == mask;
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value,
                                 host_simt::Loc l = host_simt::Loc::current()) {
  return static_cast<unsigned>(
      host_simt::warp_op(host_simt::kMatchAny, mask, host_simt::to_bits(value), 0, 32, l));
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred,
                                 host_simt::Loc l = host_simt::Loc::current()) {
  unsigned long long r =
      host_simt::warp_op(host_simt::kMatchAll, mask, host_simt::to_bits(value), 0, 32, l);
  *pred = static_cast<int>(r >> 32);
  return static_cast<unsigned>(r);
}
#define HOST_SIMT_REDUCE_(name, op, T)                                                     \
  inline T name(unsigned mask, T value, host_simt::Loc l = host_simt::Loc::current()) {   \
    return static_cast<T>(host_simt::warp_op(host_simt::op, mask,                          \
                                             static_cast<unsigned>(value), 0, 32, l));     \
  }
HOST_SIMT_REDUCE_(__reduce_add_sync, kReduceAdd, unsigned)
HOST_SIMT_REDUCE_(__reduce_add_sync, kReduceAdd, int)
HOST_SIMT_REDUCE_(__reduce_min_sync, kReduceMinU, unsigned)
HOST_SIMT_REDUCE_(__reduce_min_sync, kReduceMinI, int)
HOST_SIMT_REDUCE_(__reduce_max_sync, kReduceMaxU, unsigned)
HOST_SIMT_REDUCE_(__reduce_max_sync, kReduceMaxI, int)
HOST_SIMT_REDUCE_(__reduce_and_sync, kReduceAnd, unsigned)
HOST_SIMT_REDUCE_(__reduce_or_sync, kReduceOr, unsigned)
HOST_SIMT_REDUCE_(__reduce_xor_sync, kReduceXor, unsigned)
#undef HOST_SIMT_REDUCE_

// ---------------------------------------------------------------------------------------------
// Fences, traps, misc
// ---------------------------------------------------------------------------------------------
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap(host_simt::Loc l = host_simt::Loc::current()) {
  host_simt::trap("__trap()", l);
}
[[noreturn]] inline void __brkpt(host_simt::Loc l = host_simt::Loc::current()) {
  host_simt::trap("__brkpt()", l);
}
// Lets a spin-wait on memory written by other threads of the block make progress.
inline void __nanosleep(unsigned) { host_simt::yield_now(); }
inline long long clock64() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}
#undef assert
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) \
  ((e) ? (void)0 : ::host_simt::assert_fail(#e, __FILE__, __LINE__, __PRETTY_FUNCTION__))
#endif

// ---------------------------------------------------------------------------------------------
// Atomics (shared and global memory alike), via std::atomic_ref, relaxed like CUDA's
// ---------------------------------------------------------------------------------------------
namespace host_simt {
template <class T>
inline std::atomic_ref<T> aref(T* p) {
  return std::atomic_ref<T>(*p);
}
template <class T, class F>
inline T atomic_update(T* p, F f) {
  auto a = aref(p);
  T old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace host_simt

#define HOST_SIMT_RELAXED_ std::memory_order_relaxed
#define HOST_SIMT_ATOMIC_(T)                                                                 \
  inline T atomicAdd(T* p, T v) { return host_simt::aref(p).fetch_add(v, HOST_SIMT_RELAXED_); } \
  inline T atomicExch(T* p, T v) { return host_simt::aref(p).exchange(v, HOST_SIMT_RELAXED_); }
HOST_SIMT_ATOMIC_(int)
HOST_SIMT_ATOMIC_(unsigned)
HOST_SIMT_ATOMIC_(unsigned long long)
HOST_SIMT_ATOMIC_(float)
HOST_SIMT_ATOMIC_(double)
#undef HOST_SIMT_ATOMIC_
#define HOST_SIMT_ATOMIC_INT_(T)                                                             \
  inline T atomicSub(T* p, T v) { return host_simt::aref(p).fetch_sub(v, HOST_SIMT_RELAXED_); } \
  inline T atomicOr(T* p, T v) { return host_simt::aref(p).fetch_or(v, HOST_SIMT_RELAXED_); }   \
  inline T atomicAnd(T* p, T v) { return host_simt::aref(p).fetch_and(v, HOST_SIMT_RELAXED_); } \
  inline T atomicXor(T* p, T v) { return host_simt::aref(p).fetch_xor(v, HOST_SIMT_RELAXED_); } \
  inline T atomicMax(T* p, T v) {                                                                \
    return host_simt::atomic_update(p, [v](T o) { return o < v ? v : o; });                      \
  }                                                                                              \
  inline T atomicMin(T* p, T v) {                                                                \
    return host_simt::atomic_update(p, [v](T o) { return v < o ? v : o; });                      \
  }                                                                                              \
  inline T atomicCAS(T* p, T cmp, T v) {                                                         \
    host_simt::aref(p).compare_exchange_strong(cmp, v, HOST_SIMT_RELAXED_);                      \
    return cmp;                                                                                  \
  }
HOST_SIMT_ATOMIC_INT_(int)
HOST_SIMT_ATOMIC_INT_(unsigned)
HOST_SIMT_ATOMIC_INT_(unsigned long long)
HOST_SIMT_ATOMIC_INT_(long long)
#undef HOST_SIMT_ATOMIC_INT_
inline unsigned short atomicCAS(unsigned short* p, unsigned short cmp, unsigned short v) {
  host_simt::aref(p).compare_exchange_strong(cmp, v, std::memory_order_relaxed);
  return cmp;
}
inline unsigned atomicInc(unsigned* p, unsigned lim) {
  return host_simt::atomic_update(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned lim) {
  return host_simt::atomic_update(p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; });
}
// Scoped variants: every scope is the same on one CPU thread.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicOr_block atomicOr
#define atomicAnd_block atomicAnd
#define atomicExch_block atomicExch
#define atomicCAS_block atomicCAS

// ---------------------------------------------------------------------------------------------
// Loads/stores with cache hints: plain accesses
// ---------------------------------------------------------------------------------------------
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// ---------------------------------------------------------------------------------------------
// Integer / bit intrinsics
// ---------------------------------------------------------------------------------------------
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline int __double2hiint(double x) { return static_cast<int>(std::bit_cast<unsigned long long>(x) >> 32); }
inline int __double2loint(double x) { return static_cast<int>(std::bit_cast<unsigned long long>(x)); }
inline double __hiloint2double(int hi, int lo) {
  return std::bit_cast<double>((static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32) |
                               static_cast<unsigned>(lo));
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) {
  return static_cast<long long>((static_cast<__int128>(a) * b) >> 64);
}
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) {
  return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1;
}
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) |
         __brev(static_cast<unsigned>(x >> 32));
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (sh & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (sh & 31));
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (sh > 32 ? 32 : sh)) >> 32);
}
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned sh) {
  unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (sh > 32 ? 32 : sh));
}

// ---------------------------------------------------------------------------------------------
// min / max with CUDA's overload set (mixed signedness compares as unsigned; float uses fminf)
// ---------------------------------------------------------------------------------------------
#define HOST_SIMT_MINMAX_(R, A, B)                  \
  inline R min(A a, B b) {                          \
    const R x = static_cast<R>(a), y = static_cast<R>(b); \
    return x < y ? x : y;                           \
  }                                                 \
  inline R max(A a, B b) {                          \
    const R x = static_cast<R>(a), y = static_cast<R>(b); \
    return x > y ? x : y;                           \
  }
HOST_SIMT_MINMAX_(int, int, int)
HOST_SIMT_MINMAX_(unsigned, unsigned, unsigned)
HOST_SIMT_MINMAX_(unsigned, int, unsigned)
HOST_SIMT_MINMAX_(unsigned, unsigned, int)
HOST_SIMT_MINMAX_(long, long, long)
HOST_SIMT_MINMAX_(unsigned long, unsigned long, unsigned long)
HOST_SIMT_MINMAX_(unsigned long, long, unsigned long)
HOST_SIMT_MINMAX_(unsigned long, unsigned long, long)
HOST_SIMT_MINMAX_(long long, long long, long long)
HOST_SIMT_MINMAX_(unsigned long long, unsigned long long, unsigned long long)
HOST_SIMT_MINMAX_(unsigned long long, long long, unsigned long long)
HOST_SIMT_MINMAX_(unsigned long long, unsigned long long, long long)
#undef HOST_SIMT_MINMAX_
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
inline unsigned umin(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long llmin(long long a, long long b) { return a < b ? a : b; }
inline long long llmax(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Float intrinsics. The host computes them exactly (IEEE, no FMA contraction): GPU results of the
// approximate `__expf`-style intrinsics differ in the last bits.
// ---------------------------------------------------------------------------------------------
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

namespace host_simt {
// PTX cvt semantics: NaN -> 0, out of range saturates.
template <class I, class F>
inline I cvt_sat(F r) {
  if (r != r) return 0;
  if (r <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (r >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(r);
}
}  // namespace host_simt
inline int __float2int_rn(float x) { return host_simt::cvt_sat<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return host_simt::cvt_sat<int>(truncf(x)); }
inline int __float2int_rd(float x) { return host_simt::cvt_sat<int>(floorf(x)); }
inline int __float2int_ru(float x) { return host_simt::cvt_sat<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return host_simt::cvt_sat<unsigned>(nearbyintf(x)); }
inline unsigned __float2uint_rz(float x) { return host_simt::cvt_sat<unsigned>(truncf(x)); }
inline unsigned __float2uint_rd(float x) { return host_simt::cvt_sat<unsigned>(floorf(x)); }
inline unsigned __float2uint_ru(float x) { return host_simt::cvt_sat<unsigned>(ceilf(x)); }
inline long long __float2ll_rn(float x) { return host_simt::cvt_sat<long long>(nearbyintf(x)); }
inline long long __float2ll_rz(float x) { return host_simt::cvt_sat<long long>(truncf(x)); }
inline int __double2int_rn(double x) { return host_simt::cvt_sat<int>(nearbyint(x)); }
inline int __double2int_rz(double x) { return host_simt::cvt_sat<int>(trunc(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __ll2float_rn(long long x) { return static_cast<float>(x); }
inline float __ull2float_rn(unsigned long long x) { return static_cast<float>(x); }
inline double __int2double_rn(int x) { return static_cast<double>(x); }
inline double __ull2double_rn(unsigned long long x) { return static_cast<double>(x); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }

#endif  // BATCHSAMPLE_HOST_SIMT_H
