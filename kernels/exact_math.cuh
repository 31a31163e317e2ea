// exp and log from IEEE operations only (round-to-nearest add, sub, mul, div, fma; bit moves), so
// that the GPU, the host shim and the Rust twin (src/cpu/invariant/math.rs, the same steps line by
// line) produce the same bits. CUDA's expf/logf differ from any CPU libm in the last bit, and nvcc
// contracts a * b + c into an fma on its own, so every rounding step here is an explicit
// intrinsic, which the compiler never reorders or fuses.
//
// Accuracy (tests/invariant_math.rs sweeps every float of the domains the sampler uses against
// f64): at most 1 ulp, and exp is monotone over every float <= 0 — min-p keeps a rank-order
// prefix only because a larger logit never gets a smaller weight.
#pragma once

// exp(x) for every float: Cody-Waite reduction x = k ln2 + r0 + r_lo (r0 exact, |r0| <= ln2/2
// + rounding), e^r = 1 + r + r^2 q(r) with q a degree-5 Taylor polynomial (truncation below 6e-9
// relative), and 1 + r0 summed exactly (Fast2Sum) so that the only rounding that matters is the
// last addition: the value before it is within about 0.1 ulp, which is what makes the result
// nearly correctly rounded and monotone. Then a scale by 2^k in two multiplies (exact, or one
// rounding for subnormal results).
__device__ __forceinline__ float exact_exp(float x)
{
    if (x != x) return x;
    if (x > 88.72283935546875f) return __int_as_float(0x7f800000);  // above ln(FLT_MAX)
    if (x < -103.97208404541015625f) return 0.0f;                    // below ln(2^-150)
    // k = round(x / ln2): adding 1.5 * 2^23 rounds the product to an integer in the last place.
    const float shifter = 12582912.0f;
    const float k = __fsub_rn(__fmaf_rn(x, 1.44269502162933349609375f, shifter), shifter);
    // ln2 = LN2_HI + LN2_LO; k * LN2_HI is exact (LN2_HI has 16 significant bits, |k| <= 150).
    const float r0 = __fmaf_rn(k, -0.693145751953125f, x);
    const float r_lo = __fmul_rn(k, -1.428606765330187045e-06f);
    const float r = __fadd_rn(r0, r_lo);
    float q = 1.98412698e-4f;              // 1/5040
    q = __fmaf_rn(q, r, 1.38888889e-3f);   // 1/720
    q = __fmaf_rn(q, r, 8.33333377e-3f);   // 1/120
    q = __fmaf_rn(q, r, 4.16666679e-2f);   // 1/24
    q = __fmaf_rn(q, r, 1.66666672e-1f);   // 1/6
    q = __fmaf_rn(q, r, 0.5f);
    const float hi = __fadd_rn(1.0f, r0);
    const float hi_error = __fadd_rn(__fsub_rn(1.0f, hi), r0);  // exact: |r0| <= 1
    float tail = __fmaf_rn(r, __fmul_rn(r, q), r_lo);
    tail = __fadd_rn(tail, hi_error);
    const float p = __fadd_rn(hi, tail);
    // 2^k as 2^k1 * 2^k2, each a normal float for k in [-150, 128].
    const int ki = (int)k;
    const int k1 = ki / 2;
    const int k2 = ki - k1;
    const float s1 = __int_as_float((k1 + 127) << 23);
    const float s2 = __int_as_float((k2 + 127) << 23);
    return __fmul_rn(__fmul_rn(p, s1), s2);
}

// log(x) for every float: x = m 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), and
// log(1 + f) = f - hfsq + s (hfsq + R(s^2)) with s = f / (2 + f), hfsq = f^2 / 2 and R the
// atanh series 2/3 z + 2/5 z^2 + 2/7 z^3 + 2/9 z^4 (|s| <= 0.172: truncation below 1e-9).
__device__ __forceinline__ float exact_log(float x)
{
    if (x != x || x < 0.0f) return __int_as_float(0x7fffffff);
    if (x == 0.0f) return __int_as_float(0xff800000);
    if (x == __int_as_float(0x7f800000)) return x;
    int e = 0;
    if (x < 1.17549435e-38f) {  // subnormal: scale into the normal range (exact)
        x = __fmul_rn(x, 8388608.0f);
        e = -23;
    }
    const unsigned int bits = __float_as_uint(x);
    e += (int)(bits >> 23) - 127;
    const unsigned int mantissa = bits & 0x007fffffu;
    float m = __uint_as_float(mantissa | 0x3f800000u);  // [1, 2)
    if (mantissa >= 0x003504f3u) {                        // m >= sqrt(2): use m / 2, e + 1
        m = __uint_as_float(mantissa | 0x3f000000u);
        e += 1;
    }
    const float f = __fsub_rn(m, 1.0f);
    const float s = __fdiv_rn(f, __fadd_rn(2.0f, f));
    const float z = __fmul_rn(s, s);
    float r = 2.22222222e-1f;             // 2/9
    r = __fmaf_rn(r, z, 2.85714298e-1f);  // 2/7
    r = __fmaf_rn(r, z, 4.00000006e-1f);  // 2/5
    r = __fmaf_rn(r, z, 6.66666687e-1f);  // 2/3
    r = __fmul_rn(r, z);
    const float hfsq = __fmul_rn(__fmul_rn(0.5f, f), f);
    const float dk = (float)e;
    float t = __fmul_rn(s, __fadd_rn(hfsq, r));
    t = __fmaf_rn(dk, 1.428606765330187045e-06f, t);
    t = __fsub_rn(t, hfsq);
    t = __fadd_rn(t, f);
    return __fmaf_rn(dk, 0.693145751953125f, t);
}
