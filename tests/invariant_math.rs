//! `kernels/exact_math.cuh` and its Rust twin: the same bits (the kernel source run through the
//! host shim against `cpu::invariant::math`), accuracy against f64, and the monotonicity of exp
//! that min-p's prefix rule relies on — over every float of the domain the sampler uses.
#![cfg(feature = "host-simt")]

use batchsample::cpu::invariant::math::{exact_exp, exact_log};
use batchsample::host_simt::exact_math::probe;
use rayon::prelude::*;

/// Distance of `got` from `exact` in units of the last place of the f32 nearest `exact`.
fn ulp_error(got: f32, exact: f64) -> f64 {
    let nearest = exact as f32;
    if got == nearest {
        return 0.0;
    }
    let ulp = f32::from_bits(nearest.abs().to_bits() + 1) - nearest.abs();
    (got as f64 - exact).abs() / ulp as f64
}

/// Every `stride`-th bit pattern, plus the special values.
fn sample_floats(stride: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..=u32::MAX).step_by(stride).map(f32::from_bits).collect();
    x.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.722_84,
        88.722_83,
        -103.972_084,
        -87.336_55,
        f32::MAX,
        f32::MIN,
    ]);
    x
}

#[test]
fn kernel_source_and_twin_give_the_same_bits() {
    let x = sample_floats(251);
    let (exp, log) = probe(&x).expect("shim launch");
    let mismatches: Vec<String> = x
        .par_iter()
        .zip(exp.par_iter().zip(&log))
        .filter(|(&x, (&e, &l))| {
            e.to_bits() != exact_exp(x).to_bits() || l.to_bits() != exact_log(x).to_bits()
        })
        .map(|(x, (e, l))| {
            format!(
                "x {x:e}: kernel ({e:e}, {l:e}) twin ({:e}, {:e})",
                exact_exp(*x),
                exact_log(*x)
            )
        })
        .take_any(5)
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} inputs differ: {mismatches:?}",
        mismatches.len()
    );
}

#[test]
fn exp_and_log_are_within_one_ulp() {
    let x = sample_floats(61);
    let worst = |f: fn(f32) -> f32, exact: fn(f64) -> f64| -> (f64, f32) {
        x.par_iter()
            .filter_map(|&x| {
                let want = exact(x as f64);
                // Normal, finite results only: below, the subnormal grid is coarser than 1 ulp.
                (want.is_finite()
                    && want.abs() >= f32::MIN_POSITIVE as f64
                    && want.abs() <= f32::MAX as f64)
                    .then(|| (ulp_error(f(x), want), x))
            })
            .reduce(|| (0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    };
    let (exp_err, exp_at) = worst(exact_exp, f64::exp);
    let (log_err, log_at) = worst(exact_log, f64::ln);
    eprintln!("worst exp error {exp_err:.3} ulp at {exp_at:e}; log {log_err:.3} ulp at {log_at:e}");
    assert!(exp_err < 1.0 && log_err < 1.0);
    assert_eq!(
        exact_exp(0.0).to_bits(),
        1.0f32.to_bits(),
        "the row's maximum weighs exactly 1"
    );
    assert_eq!(exact_exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exact_exp(-104.0), 0.0);
    assert_eq!(exact_exp(-103.9), f32::from_bits(1));
    assert_eq!(exact_exp(89.0), f32::INFINITY);
    assert_eq!(exact_log(1.0), 0.0);
    assert_eq!(exact_log(0.0), f32::NEG_INFINITY);
    assert!(exact_log(-1.0).is_nan() && exact_exp(f32::NAN).is_nan());
}

/// Weights are exp of values <= 0; min-p keeps a rank-order prefix only if a larger value never
/// gets a smaller weight. Checked for every float in [-104, 0] (below, the weight is 0).
#[test]
fn exp_is_monotone_on_every_nonpositive_float() {
    let first = (-0.0f32).to_bits();
    let last = (-104.0f32).to_bits();
    let violations: u64 = (first..last)
        .into_par_iter()
        .with_min_len(1 << 16)
        .filter(|&b| exact_exp(f32::from_bits(b + 1)) > exact_exp(f32::from_bits(b)))
        .count() as u64;
    assert_eq!(violations, 0);
}
