//! The twin of `kernels/exact_math.cuh`: the same IEEE steps, line for line, so the results are
//! bit-identical to the kernels'. Rust never contracts `a * b + c`; every fma is an explicit
//! [`f32::mul_add`] (correctly rounded, like `__fmaf_rn`).

/// `exact_exp` of `kernels/exact_math.cuh`.
#[inline(always)]
pub fn exact_exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.722_84_f32 {
        return f32::INFINITY;
    }
    if x < -103.972_084_f32 {
        return 0.0;
    }
    const SHIFTER: f32 = 12_582_912.0;
    let k = x.mul_add(std::f32::consts::LOG2_E, SHIFTER) - SHIFTER;
    let r0 = k.mul_add(-LN2_HI, x);
    let r_lo = k * -LN2_LO;
    let r = r0 + r_lo;
    let mut q = 1.984_127e-4_f32;
    q = q.mul_add(r, 1.388_888_9e-3);
    q = q.mul_add(r, 8.333_334e-3);
    q = q.mul_add(r, 4.166_666_8e-2);
    q = q.mul_add(r, 1.666_666_7e-1);
    q = q.mul_add(r, 0.5);
    let hi = 1.0 + r0;
    let hi_error = (1.0 - hi) + r0;
    let mut tail = r.mul_add(r * q, r_lo);
    tail += hi_error;
    let p = hi + tail;
    let ki = k as i32;
    let k1 = ki / 2;
    let k2 = ki - k1;
    let s1 = f32::from_bits(((k1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((k2 + 127) as u32) << 23);
    p * s1 * s2
}

/// `exact_log` of `kernels/exact_math.cuh`.
#[inline(always)]
pub fn exact_log(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::from_bits(0x7fff_ffff); // the kernel's NaN
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut x = x;
    let mut e = 0i32;
    if x < f32::MIN_POSITIVE {
        x *= 8_388_608.0;
        e = -23;
    }
    let bits = x.to_bits();
    e += (bits >> 23) as i32 - 127;
    let mantissa = bits & 0x007f_ffff;
    let mut m = f32::from_bits(mantissa | 0x3f80_0000);
    if mantissa >= 0x0035_04f3 {
        m = f32::from_bits(mantissa | 0x3f00_0000);
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut r = 2.222_222_2e-1_f32;
    r = r.mul_add(z, 2.857_143e-1);
    r = r.mul_add(z, 0.4);
    r = r.mul_add(z, 0.666_666_7);
    r *= z;
    let hfsq = 0.5 * f * f;
    let dk = e as f32;
    let mut t = s * (hfsq + r);
    t = dk.mul_add(LN2_LO, t);
    t -= hfsq;
    t += f;
    dk.mul_add(LN2_HI, t)
}

/// ln 2 split so that `k * LN2_HI` is exact for every `|k| <= 151`.
const LN2_HI: f32 = 0.693_145_75; // 0.693145751953125 exactly
const LN2_LO: f32 = 1.428_606_8e-6;
