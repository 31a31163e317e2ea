//! The exact sampler: every quantity in f64, the kept set chosen by sorting, the same random
//! stream as the kernels. The yardstick every other path is diffed against.

pub use super::scan::{scan_row, RowScan};
use super::select::{top_sorted, Candidate};
use crate::dtype::Logit;
use crate::error::Result;
use crate::params::{row_params, validate_batch, DrawMethod, Numerics, RowStatus, SamplingParams};
use crate::philox;
use rayon::prelude::*;

/// A token and its log-probability under the final (processed) distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f64,
}

/// The result of one row.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RowOutput {
    /// The drawn token; `None` when `status` is not `Ok`.
    pub token: Option<u32>,
    /// Log-probability of `token` under the final distribution (0 for greedy rows: the
    /// distribution at temperature 0 is a point mass); NaN for failed rows.
    pub logprob: f64,
    /// The `top_n` most probable tokens of the final distribution, most probable first (fewer
    /// when fewer tokens survive the filters).
    pub top_logprobs: Vec<TokenLogprob>,
    pub status: RowStatus,
}

impl RowOutput {
    /// A greedy row: the argmax, logprob 0 (the distribution at temperature 0 is a point mass),
    /// and that one token as the top-n list when `top_n > 0`.
    pub fn greedy(scan: &RowScan, top_n: usize) -> RowOutput {
        let top = (top_n > 0).then_some(TokenLogprob {
            token: scan.argmax,
            logprob: 0.0,
        });
        RowOutput {
            token: Some(scan.argmax),
            logprob: 0.0,
            top_logprobs: top.into_iter().collect(),
            status: RowStatus::Ok,
        }
    }

    pub fn failed(status: RowStatus) -> RowOutput {
        RowOutput {
            token: None,
            logprob: f64::NAN,
            top_logprobs: Vec::new(),
            status,
        }
    }
}

/// What to compute besides the token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleOptions {
    pub method: DrawMethod,
    /// [`Numerics::Fast`]: exact f64 here; [`Numerics::Invariant`]: the kernels' bit-exact twin
    /// ([`crate::cpu::invariant`]).
    pub numerics: Numerics,
    /// How many `(token, logprob)` pairs of the final distribution to report per row.
    pub top_n: usize,
}

/// The tokens that survive top-k, top-p and min-p.
#[derive(Clone, Debug)]
pub enum KeptSet {
    /// No filter is active: every finite token.
    AllFinite,
    /// The survivors in rank order with their unnormalised probabilities `exp((x - max) / T)`.
    Ranked {
        candidates: Vec<Candidate>,
        weights: Vec<f64>,
    },
}

/// The scaled, max-shifted logit `(x - max) / T` in f64: `exp` of it never overflows.
#[inline]
pub(crate) fn shifted(x: f32, max: f32, temperature: f32) -> f64 {
    (x as f64 - max as f64) / temperature as f64
}

/// Applies top-k, then top-p over the top-k survivors, then min-p. Each filter keeps a prefix of
/// the rank order, so the survivors are the shortest of the three prefixes.
pub fn kept_set<T: Logit>(row: &[T], scan: &RowScan, p: &SamplingParams) -> KeptSet {
    let top_k_on = p.top_k > 0 && (p.top_k as usize) < scan.finite;
    let top_p_on = p.top_p < 1.0;
    let min_p_on = p.min_p > 0.0;
    let weight = |x: f32| shifted(x, scan.max, p.temperature).exp();
    // top-p's target is p times the mass of the top-k survivors: their own sum when top-k is
    // on, else the whole row's.
    let mut row_mass = None;
    let mut candidates = if top_k_on {
        top_sorted(row, p.top_k as usize)
    } else if top_p_on {
        let total: f64 = row
            .iter()
            .map(|x| x.to_f32())
            .filter(|&x| x != f32::NEG_INFINITY)
            .map(weight)
            .sum();
        row_mass = Some(total);
        prefix_reaching(row, scan.finite, p.top_p as f64 * total, weight)
    } else if min_p_on {
        // min-p alone: its survivors are exactly the tokens at or above the threshold.
        let mut c: Vec<Candidate> = row
            .iter()
            .enumerate()
            .map(|(i, x)| Candidate {
                logit: x.to_f32(),
                token: i as u32,
            })
            .filter(|c| c.logit != f32::NEG_INFINITY && weight(c.logit) >= p.min_p as f64)
            .collect();
        c.sort_unstable_by(Candidate::rank_cmp);
        c
    } else {
        return KeptSet::AllFinite;
    };
    let mut weights: Vec<f64> = candidates.iter().map(|c| weight(c.logit)).collect();
    let mut keep = candidates.len();
    if top_p_on {
        let target = p.top_p as f64 * row_mass.unwrap_or_else(|| weights.iter().sum::<f64>());
        let mut mass = 0.0;
        // The token whose mass reaches p is kept; if rounding keeps the sum just under the
        // target, every top-k survivor is kept.
        if let Some(j) = weights.iter().position(|w| {
            mass += w;
            mass >= target
        }) {
            keep = keep.min(j + 1);
        }
    }
    if min_p_on {
        // The largest surviving probability is the row's maximum, whose weight is exactly 1.
        keep = keep.min(weights.iter().take_while(|&&w| w >= p.min_p as f64).count());
    }
    candidates.truncate(keep);
    weights.truncate(keep);
    KeptSet::Ranked {
        candidates,
        weights,
    }
}

/// The shortest rank-order prefix whose weight reaches `target` (all finite tokens if rounding
/// never gets there), without sorting the whole row: the prefix is selected at growing lengths
/// until it reaches the target — top-p sets of LM rows are usually far shorter than the row.
fn prefix_reaching<T: Logit>(
    row: &[T],
    finite: usize,
    target: f64,
    weight: impl Fn(f32) -> f64,
) -> Vec<Candidate> {
    let mut len = 256usize;
    loop {
        let prefix = top_sorted(row, len.min(finite));
        let mut mass = 0.0;
        if len >= finite
            || prefix.iter().any(|c| {
                mass += weight(c.logit);
                mass >= target
            })
        {
            return prefix;
        }
        len = len.saturating_mul(8);
    }
}

/// Samples one row exactly. Never panics on any logits; bad rows come back with their status.
pub fn sample_row<T: Logit>(row: &[T], p: &SamplingParams, opts: &SampleOptions) -> RowOutput {
    sample_row_scanned(row, None, p, opts)
}

/// [`sample_row`] given the row's [`scan_row`] when the caller has it (processing computes it in
/// its own pass over the row).
pub(crate) fn sample_row_scanned<T: Logit>(
    row: &[T],
    known: Option<RowScan>,
    p: &SamplingParams,
    opts: &SampleOptions,
) -> RowOutput {
    let scan = match known.map_or_else(|| scan_row(row), Ok) {
        Ok(s) => s,
        Err(status) => return RowOutput::failed(status),
    };
    if p.is_greedy() {
        return RowOutput::greedy(&scan, opts.top_n);
    }
    let d = |x: f32| shifted(x, scan.max, p.temperature);
    let kept = kept_set(row, &scan, p);
    let finite_tokens = || {
        row.iter()
            .enumerate()
            .map(|(i, x)| (i as u32, x.to_f32()))
            .filter(|(_, x)| *x != f32::NEG_INFINITY)
    };

    let (token, log_norm) = match &kept {
        KeptSet::AllFinite => {
            let norm: f64 = finite_tokens().map(|(_, x)| d(x).exp()).sum();
            let token = match opts.method {
                DrawMethod::Gumbel => gumbel_argmax(finite_tokens().map(|(i, x)| (i, d(x))), p),
                DrawMethod::InverseCdf => {
                    inverse_cdf(finite_tokens().map(|(i, x)| (i, d(x).exp())), norm, p)
                }
            };
            (token, norm.ln())
        }
        KeptSet::Ranked {
            candidates,
            weights,
        } => {
            let norm: f64 = weights.iter().sum();
            let token = match opts.method {
                DrawMethod::Gumbel => {
                    gumbel_argmax(candidates.iter().map(|c| (c.token, d(c.logit))), p)
                }
                DrawMethod::InverseCdf => {
                    let mut by_index: Vec<(u32, f64)> = candidates
                        .iter()
                        .zip(weights)
                        .map(|(c, &w)| (c.token, w))
                        .collect();
                    by_index.sort_unstable_by_key(|&(t, _)| t);
                    inverse_cdf(by_index.into_iter(), norm, p)
                }
            };
            (token, norm.ln())
        }
    };

    let top_logprobs = match &kept {
        KeptSet::AllFinite => top_sorted(row, opts.top_n),
        KeptSet::Ranked { candidates, .. } => candidates.iter().take(opts.top_n).copied().collect(),
    }
    .into_iter()
    .map(|c| TokenLogprob {
        token: c.token,
        logprob: d(c.logit) - log_norm,
    })
    .collect();

    RowOutput {
        token: Some(token),
        logprob: d(row[token as usize].to_f32()) - log_norm,
        top_logprobs,
        status: RowStatus::Ok,
    }
}

/// Gumbel-max over `(token, scaled logit)`: the largest `d + g(u_token)`, ties to the lower index.
pub(crate) fn gumbel_argmax(tokens: impl Iterator<Item = (u32, f64)>, p: &SamplingParams) -> u32 {
    let mut best = (f64::NEG_INFINITY, u32::MAX);
    // One Philox call serves four consecutive tokens; keep the last block's four uniforms.
    let mut cached: (u32, [f32; 4]) = (u32::MAX, [0.0; 4]);
    for (token, d) in tokens {
        if cached.0 != token / 4 {
            cached = (token / 4, philox::token_uniforms(p.seed, p.step, token / 4));
        }
        let score = d + philox::gumbel(cached.1[(token % 4) as usize]);
        if score > best.0 || (score == best.0 && token < best.1) {
            best = (score, token);
        }
    }
    best.1
}

/// Inverse CDF over `(token, weight)` in index order: the first token whose running sum exceeds
/// `u * norm`. If rounding leaves the target past the sum, the last token with weight wins.
pub(crate) fn inverse_cdf(
    tokens: impl Iterator<Item = (u32, f64)>,
    norm: f64,
    p: &SamplingParams,
) -> u32 {
    let target = philox::row_uniform(p.seed, p.step) as f64 * norm;
    let mut mass = 0.0;
    let mut last = u32::MAX;
    for (token, w) in tokens {
        if w > 0.0 {
            mass += w;
            last = token;
            if mass > target {
                return token;
            }
        }
    }
    last
}

/// Samples a `[batch, vocab]` batch, rows in parallel. `params` holds one entry for every row or
/// one per row.
pub fn sample_batch<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
) -> Result<Vec<RowOutput>> {
    let batch = batch_size(logits.len(), vocab)?;
    validate_batch(params, batch)?;
    Ok(logits
        .par_chunks(vocab)
        .enumerate()
        .map(|(r, row)| match opts.numerics {
            Numerics::Fast => sample_row(row, row_params(params, r), opts),
            Numerics::Invariant => super::invariant::sample_row(row, row_params(params, r), opts),
        })
        .collect())
}

/// The batch size of `len` logits of `vocab` each, or a shape error.
pub fn batch_size(len: usize, vocab: usize) -> Result<usize> {
    if vocab == 0 {
        return Err(crate::SampleError::Shape(
            "vocab size must be at least 1".into(),
        ));
    }
    if len % vocab != 0 {
        return Err(crate::SampleError::Shape(format!(
            "{len} logits do not divide into rows of {vocab}"
        )));
    }
    Ok(len / vocab)
}
