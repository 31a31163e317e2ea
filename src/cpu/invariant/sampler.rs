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
fn mass40(w: f32) -> u64 {
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

/// `params_valid` of `kernels/sampler.cu`.
fn params_valid(p: &SamplingParams) -> bool {
    p.temperature >= 0.0
        && p.temperature <= f32::MAX
        && p.top_p > 0.0
        && p.top_p <= 1.0
        && p.min_p >= 0.0
        && p.min_p < 1.0
}

/// The scaled, max-shifted logit as the kernel computes it: a multiply by the f32 reciprocal of
/// the temperature, or a division when that reciprocal overflows (subnormal temperatures).
struct Shift {
    max: f32,
    temperature: f32,
    inv_temperature: f32,
}

impl Shift {
    fn new(scan: &RowScan, temperature: f32) -> Self {
        Shift {
            max: scan.max,
            temperature,
            inv_temperature: 1.0 / temperature,
        }
    }
    #[inline]
    fn d(&self, x: f32) -> f32 {
        if self.inv_temperature <= f32::MAX {
            (x - self.max) * self.inv_temperature
        } else {
            (x - self.max) / self.temperature
        }
    }
    #[inline]
    fn weight(&self, x: f32) -> f32 {
        exact_exp(self.d(x))
    }
}

/// The survivors of top-k, top-p and min-p in rank order, or `None` when no filter is active
/// (every finite token survives).
fn kept_ranked<T: Logit>(
    row: &[T],
    scan: &RowScan,
    p: &SamplingParams,
    shift: &Shift,
) -> Option<Vec<Candidate>> {
    let top_k_on = p.top_k > 0 && (p.top_k as usize) < scan.finite;
    let top_p_on = p.top_p < 1.0;
    let min_p_on = p.min_p > 0.0;
    let finite = || {
        row.iter()
            .map(|x| x.to_f32())
            .filter(|&x| x != f32::NEG_INFINITY)
    };
    // top-p's target: p times the mass of the top-k survivors (the whole row without top-k).
    let mut target = None;
    let mut ranked = if top_k_on {
        top_sorted(row, p.top_k as usize)
    } else if top_p_on {
        // The top-p prefix of the whole row: select growing prefixes until one reaches the target.
        let target = *target.insert(mass_target(
            p.top_p,
            finite().map(|x| mass32(shift.weight(x))).sum(),
        ));
        let mut len = 256usize;
        loop {
            let prefix = top_sorted(row, len.min(scan.finite));
            let mut running = 0u64;
            if len >= scan.finite
                || prefix.iter().any(|c| {
                    running += mass32(shift.weight(c.logit));
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
        let masses: Vec<u64> = ranked
            .iter()
            .map(|c| mass32(shift.weight(c.logit)))
            .collect();
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
    let keep = ranked
        .iter()
        .take_while(|c| shift.weight(c.logit) >= p.min_p)
        .count();
    ranked.truncate(keep);
    Some(ranked)
}

/// Samples one row exactly as `sample_rows_invariant_*` does: the same token, and the same bits of
/// every logprob. Never panics; bad rows come back with the kernel's status.
pub fn sample_row<T: Logit>(row: &[T], p: &SamplingParams, opts: &SampleOptions) -> RowOutput {
    if !params_valid(p) {
        return RowOutput::failed(RowStatus::InvalidParams);
    }
    let scan = match scan_row(row) {
        Ok(s) => s,
        Err(status) => return RowOutput::failed(status),
    };
    if p.is_greedy() {
        let top = (opts.top_n > 0).then_some(TokenLogprob {
            token: scan.argmax,
            logprob: 0.0,
        });
        return RowOutput {
            token: Some(scan.argmax),
            logprob: 0.0,
            top_logprobs: top.into_iter().collect(),
            status: RowStatus::Ok,
        };
    }
    let shift = Shift::new(&scan, p.temperature);
    let kept = kept_ranked(row, &scan, p, &shift);
    // The survivors as (token, logit) in index order.
    let by_index: Vec<(u32, f32)> = match &kept {
        None => row
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u32, x.to_f32()))
            .filter(|&(_, x)| x != f32::NEG_INFINITY)
            .collect(),
        Some(ranked) => {
            let mut v: Vec<(u32, f32)> = ranked.iter().map(|c| (c.token, c.logit)).collect();
            v.sort_unstable_by_key(|&(t, _)| t);
            v
        }
    };
    let norm: u64 = by_index.iter().map(|&(_, x)| mass40(shift.weight(x))).sum();
    let token = match opts.method {
        DrawMethod::Gumbel => gumbel_argmax(&by_index, &shift, p),
        DrawMethod::InverseCdf => inverse_cdf(&by_index, norm, &shift, p),
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
fn gumbel_argmax(by_index: &[(u32, f32)], shift: &Shift, p: &SamplingParams) -> u32 {
    let mut best = (f32::NEG_INFINITY, u32::MAX);
    for &(token, x) in by_index {
        let u = philox::token_uniform(p.seed, p.step, token);
        let score = shift.d(x) - exact_log(-exact_log(u));
        if score > best.0 || (score == best.0 && token < best.1) {
            best = (score, token);
        }
    }
    best.1
}

/// Inverse CDF on 2^-40 fixed-point weights in index order: the first token whose running sum
/// exceeds `floor(u * total)` (computed in f64 as the kernel does). Integer sums always get
/// there; the kernel's fallback (the last token with weight) is kept for parity.
fn inverse_cdf(by_index: &[(u32, f32)], norm: u64, shift: &Shift, p: &SamplingParams) -> u32 {
    let u = philox::row_uniform(p.seed, p.step);
    let target = (u as f64 * norm as f64) as u64;
    let mut running = 0u64;
    let mut last = u32::MAX;
    for &(token, x) in by_index {
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
