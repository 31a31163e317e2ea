// The two arithmetic policies of the sampler (`Numerics` in src/params.rs). The kernel's control
// flow is the same for both; these decide how a weight, a Gumbel score and the normaliser are
// computed.
//
// * FastNumerics: CUDA's expf/logf (the Gumbel noise's outer log: __logf), float sums in the
//   block's fixed order. Deterministic for a given block size, and within rounding of the f64
//   reference.
// * InvariantNumerics: every per-token value from IEEE operations only (exact_math.cuh), and every
//   sum an integer (weights in 2^-40 fixed point), so no result depends on any summation order:
//   not the block size, not the batch, not the row's position. src/cpu/invariant/ replays it bit
//   for bit on the CPU.
#pragma once

#include "exact_math.cuh"

struct FastNumerics {
    typedef float Mass;  // the normaliser and the inverse-CDF running sums
    // Partial sums may be rescaled and combined (stream.cuh): the order of a row's windows and
    // slices shows in the rounding.
    static constexpr bool RESCALES = true;
    __device__ static __forceinline__ float exp(float d) { return expf(d); }
    __device__ static __forceinline__ float log(float x) { return logf(x); }
    // The outer logarithm of the Gumbel noise g = -ln(E), E = -ln(u) in [6e-8, 16.7]: the
    // hardware approximation (absolute error below 2^-21.4 for E in [0.5, 2], 3 ulp elsewhere)
    // moves g by at most ~4e-7, within the rounding of the score d + g, at a fraction of logf's
    // instructions. The inner ln(u) stays logf: u sits near 1, where only logf is accurate.
    __device__ static __forceinline__ float noise_log(float e) { return __logf(e); }
    __device__ static __forceinline__ float sub(float a, float b) { return a - b; }
    __device__ static __forceinline__ float mul(float a, float b) { return a * b; }
    __device__ static __forceinline__ float div(float a, float b) { return a / b; }
    __device__ static __forceinline__ Mass mass(float w) { return w; }
    __device__ static __forceinline__ float log_of_mass(Mass m) { return logf(m); }
    // The inverse-CDF target for uniform u: the walk picks the first token whose running sum
    // exceeds it.
    __device__ static __forceinline__ Mass cdf_target(float u, Mass total) { return u * total; }
    // Speculative verification accepts a draft of mass m out of `total`, drafted with
    // probability q (1 for a point mass), when u * q * total < m.
    __device__ static __forceinline__ bool accepts(float u, float q, Mass total, Mass m)
    {
        return __fmul_rn(__fmul_rn(u, q), total) < m;
    }
    // A dense draft's residual at a token of mass m: max(0, m / total - q).
    __device__ static __forceinline__ Mass residual(Mass m, float q, Mass total)
    {
        const float r = __fsub_rn(__fdiv_rn(m, total), q);
        return r > 0.0f ? r : 0.0f;
    }
};

struct InvariantNumerics {
    typedef unsigned long long Mass;  // 2^-40 fixed point: up to 2^20 tokens of weight <= 1 fit
    static constexpr bool RESCALES = false;  // one ordered pass per quantity, no rescaling
    __device__ static __forceinline__ float exp(float d) { return exact_exp(d); }
    __device__ static __forceinline__ float log(float x) { return exact_log(x); }
    __device__ static __forceinline__ float noise_log(float e) { return exact_log(e); }
    __device__ static __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
    __device__ static __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
    __device__ static __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
    // Truncated: w * 2^40 is exact, the conversion drops below 2^-40 (a token that light adds at
    // most 2^-40 to a total of at least 1).
    __device__ static __forceinline__ Mass mass(float w)
    {
        return (unsigned long long)__fmul_rn(w, 1099511627776.0f);
    }
    // The total rounded once to f32, scaled back exactly.
    __device__ static __forceinline__ float log_of_mass(Mass m)
    {
        return exact_log(__fmul_rn(__ull2float_rn(m), 9.094947017729282379150390625e-13f));
    }
    // floor(u * total) in f64, one rounding of each conversion and of the product: below the
    // total, since u <= 1 - 2^-24 and the total is at least 2^40.
    __device__ static __forceinline__ Mass cdf_target(float u, Mass total)
    {
        return (unsigned long long)__dmul_rn((double)u, __ull2double_rn(total));
    }
    // (u * q) * total < m in f64 (src/cpu/invariant/verify.rs): u * q exact, one rounding of
    // the product with the total and of each conversion.
    __device__ static __forceinline__ bool accepts(float u, float q, Mass total, Mass m)
    {
        return __dmul_rn(__dmul_rn((double)u, (double)q), __ull2double_rn(total)) <
               __ull2double_rn(m);
    }
    // A dense draft's residual mass: m - min(m, floor(q * total)), the product in f64.
    __device__ static __forceinline__ Mass residual(Mass m, float q, Mass total)
    {
        const Mass drafted = (unsigned long long)__dmul_rn((double)q, __ull2double_rn(total));
        return m > drafted ? m - drafted : 0ull;
    }
};
