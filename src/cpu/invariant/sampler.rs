//! One row in the batch-invariant numerics: the steps of `kernels/sampler.cu` with
//! `InvariantNumerics` (`kernels/numerics.cuh`), in the semantics of the crate docs.

use super::math::{exact_exp, exact_log};
use crate::cpu::reference::{scan_row, RowOutput, RowScan, SampleOptions, TokenLogprob};
use crate::cpu::select::{top_sorted, Candidate};
use crate::dtype::Logit;
use crate::params::{DrawMethod, RowStatus, SamplingParams};
use crate::philox;

/// `fixed_mass` of `kernels/select.cuh`: a weight in 2^-32 fixed point, truncated (top-p).
#[inline]
fn mass32(w: f32) -> u64 {
    (w * 4_294_967_296.0) as u64
}

/// `InvariantNumerics::mass`: a weight in 2^-40 fixed point, truncated (normaliser, inverse CDF).
#[inline]
pub(super) fn mass40(w: f32) -> u64 {
    (w * 1_099_511_627_776.0) as u64
}

/// `mass_target` of `kernels/select.cuh`: ceil(p * total) in f64, at least 1.
fn mass_target(p: f32, total: u64) -> u64 {
    let goal = p as f64 * total as f64;
    let mut t = goal as u64;
    if (t as f64) < goal {
        t += 1;
    }
    t.max(1)
}

/// The scaled, max-shifted logit as the kernel computes it: a multiply by the f32 reciprocal of
/// the temperature, or a division when that reciprocal overflows (subnormal temperatures).
pub(super) struct Shift {
    max: f32,
    temperature: f32,
    inv_temperature: f32,
}

impl Shift {
    pub(super) fn new(scan: &RowScan, temperature: f32) -> Self {
        Shift {
            max: scan.max,
            temperature,
            inv_temperature: 1.0 / temperature,
        }
    }
    #[inline(always)]
    pub(super) fn d(&self, x: f32) -> f32 {
        if self.inv_temperature <= f32::MAX {
            (x - self.max) * self.inv_temperature
        } else {
            (x - self.max) / self.temperature
        }
    }
    #[inline(always)]
    pub(super) fn weight(&self, x: f32) -> f32 {
        exact_exp(self.d(x))
    }
}

/// The sum of `fixed(weight)` over the row's finite tokens, in one streaming pass (a plain loop:
/// compiled inside [`sample_row_fma`] with the FMA instruction).
#[inline(always)]
pub(super) fn row_total<T: Logit>(row: &[T], shift: &Shift, fixed: fn(f32) -> u64) -> u64 {
    let mut total = 0u64;
    for x in row {
        let x = x.to_f32();
        if x != f32::NEG_INFINITY {
            total += fixed(shift.weight(x));
        }
    }
    total
}

/// The row's finite tokens as `(token, logit)` in index order.
#[inline(always)]
pub(super) fn finite_tokens<T: Logit>(row: &[T]) -> impl Iterator<Item = (u32, f32)> + '_ {
    row.iter()
        .enumerate()
        .map(|(i, x)| (i as u32, x.to_f32()))
        .filter(|&(_, x)| x != f32::NEG_INFINITY)
}

/// The survivors of top-k, top-p and min-p in rank order, or `None` when no filter is active
/// (every finite token survives).
#[inline(always)]
pub(super) fn kept_ranked<T: Logit>(
    row: &[T],
    scan: &RowScan,
    p: &SamplingParams,
    shift: &Shift,
) -> Option<Vec<Candidate>> {
    let top_k_on = p.top_k > 0 && (p.top_k as usize) < scan.finite;
    let top_p_on = p.top_p < 1.0;
    let min_p_on = p.min_p > 0.0;
    let weight = |c: &Candidate| shift.weight(c.logit);
    // top-p's target: p times the mass of the top-k survivors (the whole row without top-k).
    let mut target = None;
    let mut ranked = if top_k_on {
        top_sorted(row, p.top_k as usize)
    } else if top_p_on {
        // The top-p prefix of the whole row: select growing prefixes until one reaches the target.
        let target = *target.insert(mass_target(p.top_p, row_total(row, shift, mass32)));
        let mut len = 256usize;
        loop {
            let prefix = top_sorted(row, len.min(scan.finite));
            let mut running = 0u64;
            if len >= scan.finite
                || prefix.iter().any(|c| {
                    running += mass32(weight(c));
                    running >= target
                })
            {
                break prefix;
            }
            len = len.saturating_mul(8);
        }
    } else if min_p_on {
        top_sorted(row, scan.finite)
    } else {
        return None;
    };
    if top_p_on {
        let masses: Vec<u64> = ranked.iter().map(|c| mass32(weight(c))).collect();
        let target = target.unwrap_or_else(|| mass_target(p.top_p, masses.iter().sum()));
        let mut running = 0u64;
        if let Some(j) = masses.iter().position(|&m| {
            running += m;
            running >= target
        }) {
            ranked.truncate(j + 1);
        }
    }
    // exact_exp is monotone (tests/invariant_math.rs checks every float <= 0), so the tokens at or
    // above min-p are a prefix of the rank order.
    let keep = ranked.iter().take_while(|c| weight(c) >= p.min_p).count();
    ranked.truncate(keep);
    Some(ranked)
}

/// Samples one row exactly as `sample_rows_invariant_*` does: the same token, and the same bits of
/// every logprob. Never panics; bad rows come back with the kernel's status.
pub fn sample_row<T: Logit>(row: &[T], p: &SamplingParams, opts: &SampleOptions) -> RowOutput {
    sample_row_scanned(row, None, p, opts)
}

/// [`sample_row`] given the row's `scan_row` when the caller has it (processing computes it in
/// its own pass over the row).
pub(crate) fn sample_row_scanned<T: Logit>(
    row: &[T],
    known: Option<RowScan>,
    p: &SamplingParams,
    opts: &SampleOptions,
) -> RowOutput {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA. The results are the same bits either way (`mul_add` is
        // correctly rounded with or without the instruction); without it, it is a libm call.
        return unsafe { sample_row_fma(row, known, p, opts) };
    }
    sample_row_portable(row, known, p, opts)
}

/// [`sample_row_portable`] compiled with the FMA instruction available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn sample_row_fma<T: Logit>(
    row: &[T],
    known: Option<RowScan>,
    p: &SamplingParams,
    opts: &SampleOptions,
) -> RowOutput {
    sample_row_portable(row, known, p, opts)
}

#[inline(always)]
fn sample_row_portable<T: Logit>(
    row: &[T],
    known: Option<RowScan>,
    p: &SamplingParams,
    opts: &SampleOptions,
) -> RowOutput {
    if !p.is_valid_on_device() {
        return RowOutput::failed(RowStatus::InvalidParams);
    }
    let scan = match known.map_or_else(|| scan_row(row), Ok) {
        Ok(s) => s,
        Err(status) => return RowOutput::failed(status),
    };
    if p.is_greedy() {
        return RowOutput::greedy(&scan, opts.top_n);
    }
    let shift = Shift::new(&scan, p.temperature);
    let kept = kept_ranked(row, &scan, p, &shift);
    let (norm, token) = match &kept {
        // No filter: stream over the row (no per-token buffer for a long row).
        None => {
            let norm = row_total(row, &shift, mass40);
            let token = match opts.method {
                DrawMethod::Gumbel => gumbel_argmax(finite_tokens(row), &shift, p, -20.0),
                DrawMethod::InverseCdf => inverse_cdf(finite_tokens(row), norm, &shift, p),
            };
            (norm, token)
        }
        Some(ranked) => {
            // The survivors in index order.
            let mut by_index: Vec<(u32, f32)> = ranked.iter().map(|c| (c.token, c.logit)).collect();
            by_index.sort_unstable_by_key(|&(t, _)| t);
            let mut norm = 0u64;
            for &(_, x) in &by_index {
                norm += mass40(shift.weight(x));
            }
            let survivors = by_index.iter().copied();
            let token = match opts.method {
                DrawMethod::Gumbel => gumbel_argmax(survivors, &shift, p, -20.0),
                DrawMethod::InverseCdf => inverse_cdf(survivors, norm, &shift, p),
            };
            (norm, token)
        }
    };
    // `InvariantNumerics::log_of_mass`: the total rounded once to f32, scaled by 2^-40 (exact).
    let log_norm = exact_log(norm as f32 * 9.094_947e-13);
    let logprob = |x: f32| (shift.d(x) - log_norm) as f64;
    let top: Vec<Candidate> = match &kept {
        None => top_sorted(row, opts.top_n),
        Some(ranked) => ranked.iter().take(opts.top_n).copied().collect(),
    };
    RowOutput {
        token: Some(token),
        logprob: logprob(row[token as usize].to_f32()),
        top_logprobs: top
            .iter()
            .map(|c| TokenLogprob {
                token: c.token,
                logprob: logprob(c.logit),
            })
            .collect(),
        status: RowStatus::Ok,
    }
}

/// Gumbel-max: the largest `d - ln(-ln u)` in f32 with [`exact_log`], ties to the lower index.
///
/// Tokens with `d < floor` are skipped, exactly, when `floor` is 20 below the largest `d` of the
/// race (-20 for a race the row's maximum is in): that token scores at least `-ln(16.64) > -2.82`
/// above its `d`, while Gumbel noise is at most 16.64, so a skipped token scores below it by
/// more than 3.3 (f32 rounding at these magnitudes is far smaller) and cannot win.
#[inline(always)]
pub(super) fn gumbel_argmax(
    by_index: impl Iterator<Item = (u32, f32)>,
    shift: &Shift,
    p: &SamplingParams,
    floor: f32,
) -> u32 {
    let mut best = (f32::NEG_INFINITY, u32::MAX);
    // One Philox call serves four consecutive tokens.
    let mut cached: (u32, [f32; 4]) = (u32::MAX, [0.0; 4]);
    for (token, x) in by_index {
        let d = shift.d(x);
        if d < floor {
            continue;
        }
        if cached.0 != token / 4 {
            cached = (token / 4, philox::token_uniforms(p.seed, p.step, token / 4));
        }
        let u = cached.1[(token % 4) as usize];
        let score = d - exact_log(-exact_log(u));
        if score > best.0 || (score == best.0 && token < best.1) {
            best = (score, token);
        }
    }
    best.1
}

/// Inverse CDF on 2^-40 fixed-point weights in index order: the first token whose running sum
/// exceeds `floor(u * total)` (computed in f64 as the kernel does). Integer sums always get
/// there; the kernel's fallback (the last token with weight) is kept for parity.
#[inline(always)]
pub(super) fn inverse_cdf(
    by_index: impl Iterator<Item = (u32, f32)>,
    norm: u64,
    shift: &Shift,
    p: &SamplingParams,
) -> u32 {
    let u = philox::row_uniform(p.seed, p.step);
    let target = (u as f64 * norm as f64) as u64;
    let mut running = 0u64;
    let mut last = u32::MAX;
    for (token, x) in by_index {
        let m = mass40(shift.weight(x));
        if m == 0 {
            continue;
        }
        running += m;
        last = token;
        if running > target {
            return token;
        }
    }
    last
}

/// The logprobs of `token` and of the row's `top_n` most probable tokens under the raw logits'
/// softmax at temperature 1 ([`crate::processing::LogprobsMode::Raw`]), in the invariant
/// numerics: `(x - max) - log(total)`, the total of 2^-40 fixed-point weights as for a
/// temperature-1 row.
pub fn raw_logprobs<T: Logit>(
    row: &[T],
    scan: &RowScan,
    token: u32,
    top_n: usize,
) -> (f64, Vec<TokenLogprob>) {
    let shift = Shift::new(scan, 1.0);
    let log_norm = exact_log(row_total(row, &shift, mass40) as f32 * 9.094_947e-13);
    let logprob = |x: f32| (shift.d(x) - log_norm) as f64;
    let top = top_sorted(row, top_n)
        .iter()
        .map(|c| TokenLogprob {
            token: c.token,
            logprob: logprob(c.logit),
        })
        .collect();
    (logprob(row[token as usize].to_f32()), top)
}
