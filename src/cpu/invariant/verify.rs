//! One position of speculative verification ([`crate::verify`]) in the batch-invariant numerics:
//! the invariant sampler's weights and 2^-40 fixed-point masses, so that every decision is an
//! integer sum or a fixed sequence of IEEE operations — the bits do not depend on the batch, the
//! request's position in it, or a summation order, and a kernel can reproduce them.
//!
//! The decisions, with `m(x)` a kept token's mass and `M` the kept total (an exact integer):
//! - accept the draft `d` when `(u * q(d)) * M < m(d)` in f64 (`u * q` is exact, the product
//!   with `M` is rounded once), i.e. with probability `min(1, p(d) / q(d))` to the resolution of
//!   `u`; `q = 1` for a point mass;
//! - a point mass's residual is the kept set without `d`: the plain Gumbel race or inverse-CDF
//!   walk of the invariant sampler with `d` left out, over the total `M - m(d)` (exact);
//! - a dense draft's residual masses are `r(x) = m(x) - min(m(x), floor(q(x) * M))` (f64 product,
//!   truncated): a Gumbel race of `ln(r * 2^-40) - ln(-ln u)` in f32 with the exact log, or the
//!   inverse-CDF walk over `r` in index order with the target `floor(u * R)`, `R = sum r`;
//! - logprobs are `d(x) - ln(M * 2^-40)` for an accepted draft (the sampler's formula),
//!   `d(x) - ln((M - m(d)) * 2^-40)` for a resampled point-mass residual and
//!   `ln(r * 2^-40) - ln(R * 2^-40)` for a dense one, each in f32;
//! - a residual with no mass draws from the position's distribution instead, as the sampler does.

use super::math::exact_log;
use super::sampler::{
    finite_tokens, gumbel_argmax, inverse_cdf, kept_ranked, mass40, sample_row_scanned, Shift,
};
use crate::cpu::reference::{RowScan, SampleOptions};
use crate::dtype::Logit;
use crate::params::{DrawMethod, Numerics, SamplingParams};
use crate::philox;
use crate::verify::{Draft, Step};

/// 2^-40: one unit of mass.
const MASS_UNIT: f32 = 9.094_947e-13;

/// `ln(mass * 2^-40)` as the kernels' `log_of_mass`: the integer rounded once to f32.
#[inline(always)]
fn log_mass(mass: u64) -> f32 {
    exact_log(mass as f32 * MASS_UNIT)
}

/// The invariant twin of the reference's position step (`cpu::verify`): accept or reject
/// `draft` at this position, or draw the bonus token when there is none.
pub(crate) fn verify_position<U: Logit>(
    row: &[U],
    scan: RowScan,
    p: &SamplingParams,
    draft: Option<Draft>,
    method: DrawMethod,
) -> Step {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA. The bits are the same either way (`mul_add` is correctly
        // rounded with or without the instruction); without it, the exact exp and log call libm.
        return unsafe { verify_position_fma(row, scan, p, draft, method) };
    }
    verify_position_portable(row, scan, p, draft, method)
}

/// [`verify_position_portable`] compiled with the FMA instruction available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn verify_position_fma<U: Logit>(
    row: &[U],
    scan: RowScan,
    p: &SamplingParams,
    draft: Option<Draft>,
    method: DrawMethod,
) -> Step {
    verify_position_portable(row, scan, p, draft, method)
}

#[inline(always)]
fn verify_position_portable<U: Logit>(
    row: &[U],
    scan: RowScan,
    p: &SamplingParams,
    draft: Option<Draft>,
    method: DrawMethod,
) -> Step {
    let plain_draw = || {
        let opts = SampleOptions {
            method,
            numerics: Numerics::Invariant,
            top_n: 0,
        };
        let out = sample_row_scanned(row, Some(scan), p, &opts);
        Step::Emit(out.token.expect("a scanned row samples"), out.logprob)
    };
    let Some(draft) = draft else {
        return plain_draw();
    };
    if p.is_greedy() {
        return Step::greedy(draft.token, scan.argmax);
    }
    let shift = Shift::new(&scan, p.temperature);
    let mass = |x: f32| mass40(shift.weight(x));
    // The kept tokens in index order, with their logits.
    let kept: Vec<(u32, f32)> = match kept_ranked(row, &scan, p, &shift) {
        None => finite_tokens(row).collect(),
        Some(ranked) => {
            let mut by_index: Vec<(u32, f32)> = ranked.iter().map(|c| (c.token, c.logit)).collect();
            by_index.sort_unstable_by_key(|&(t, _)| t);
            by_index
        }
    };
    let total: u64 = kept.iter().map(|&(_, x)| mass(x)).sum();
    let drafted = kept
        .binary_search_by_key(&draft.token, |&(t, _)| t)
        .ok()
        .map(|i| kept[i].1);
    let draft_mass = drafted.map_or(0, mass);
    let q = draft.probs.map_or(1.0, |q| q[draft.token as usize] as f64);
    let u = philox::accept_uniform(p.seed, p.step) as f64;
    if let Some(x) = drafted.filter(|_| (u * q) * (total as f64) < draft_mass as f64) {
        return Step::Accept((shift.d(x) - log_mass(total)) as f64);
    }
    match draft.probs {
        None => {
            let rest = total - draft_mass;
            if rest == 0 {
                return plain_draw();
            }
            let others = || kept.iter().copied().filter(|&(t, _)| t != draft.token);
            let token = match method {
                DrawMethod::Gumbel => {
                    let top = others()
                        .map(|(_, x)| shift.d(x))
                        .fold(f32::NEG_INFINITY, f32::max);
                    gumbel_argmax(others(), &shift, p, top - 20.0)
                }
                DrawMethod::InverseCdf => inverse_cdf(others(), rest, &shift, p),
            };
            let x = row[token as usize].to_f32();
            Step::Emit(token, (shift.d(x) - log_mass(rest)) as f64)
        }
        Some(q) => {
            let scale = total as f64;
            let residual: Vec<(u32, u64)> = kept
                .iter()
                .map(|&(t, x)| {
                    (
                        t,
                        mass(x).saturating_sub((q[t as usize] as f64 * scale) as u64),
                    )
                })
                .filter(|&(_, r)| r > 0)
                .collect();
            let rest: u64 = residual.iter().map(|&(_, r)| r).sum();
            if rest == 0 {
                return plain_draw();
            }
            let (token, r) = match method {
                DrawMethod::Gumbel => race_masses(&residual, p),
                DrawMethod::InverseCdf => walk_masses(&residual, rest, p),
            };
            Step::Emit(token, (log_mass(r) - log_mass(rest)) as f64)
        }
    }
}

/// The Gumbel race over `(token, mass)` in index order: the largest `ln(r * 2^-40) - ln(-ln u)`
/// in f32, ties to the lower index; returns the winner and its mass.
#[inline(always)]
fn race_masses(residual: &[(u32, u64)], p: &SamplingParams) -> (u32, u64) {
    let mut best = (f32::NEG_INFINITY, (u32::MAX, 0u64));
    let mut cached: (u32, [f32; 4]) = (u32::MAX, [0.0; 4]);
    for &(token, r) in residual {
        if cached.0 != token / 4 {
            cached = (token / 4, philox::token_uniforms(p.seed, p.step, token / 4));
        }
        let u = cached.1[(token % 4) as usize];
        let score = log_mass(r) - exact_log(-exact_log(u));
        // Index order: a later token wins only when strictly better.
        if score > best.0 {
            best = (score, (token, r));
        }
    }
    best.1
}

/// The inverse-CDF walk over `(token, mass)` in index order: the first token whose running sum
/// exceeds `floor(u * rest)` (f64), `u` the row uniform of a plain draw at this step.
fn walk_masses(residual: &[(u32, u64)], rest: u64, p: &SamplingParams) -> (u32, u64) {
    let u = philox::row_uniform(p.seed, p.step);
    let target = (u as f64 * rest as f64) as u64;
    let mut running = 0u64;
    for &(token, r) in residual {
        running += r;
        if running > target {
            return (token, r);
        }
    }
    // Integer sums reach `rest > target`: unreachable, kept total for safety.
    *residual.last().expect("a residual with mass has a token")
}
