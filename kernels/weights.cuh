// A token's weight relative to a reference logit, as the one-read draws compute it
// (kernels/stream.cuh, kernels/stream_cdf.cuh): (x - m) / T in base 2 and the hardware exp2.
#pragma once

constexpr float LOG2E = 1.44269504088896341f;

// (x - m) / T as the fast kernels compute it: times 1/T, or divided where 1/T overflows (a
// subnormal T). `log2` is the same in base 2, for exp2 weights: the hot loop's one multiply and
// one MUFU a token (where log2(e)/T overflows, T below ~4.2e-39: the division, then the scale).
struct TemperatureShift {
    float temperature, inv, log2_scale;
    bool inv_ok, log2_ok;

    __device__ explicit TemperatureShift(float t)
        : temperature(t), inv(1.0f / t), log2_scale(inv * LOG2E),
          inv_ok(inv <= 3.402823466e38f), log2_ok(log2_scale <= 3.402823466e38f)
    {
    }
    __device__ float operator()(float x, float m) const
    {
        return inv_ok ? (x - m) * inv : (x - m) / temperature;
    }
    __device__ float log2(float x, float m) const
    {
        return log2_ok ? (x - m) * log2_scale : (x - m) / temperature * LOG2E;
    }
};

// 2^x by the hardware approximation (relative error about 2^-22), subnormal results flushed to 0:
// a weight below 2^-126 of the running maximum's adds nothing to a mass of at least 1 and is far
// below the skip bound. The host shim rounds exactly, then flushes the same way.
__device__ __forceinline__ float exp2_flushed(float x)
{
#if defined(__CUDA_ARCH__)
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    const float r = exp2f(x);
    return r < 1.17549435e-38f ? 0.0f : r;
#endif
}
