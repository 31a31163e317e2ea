//! The exact verification of speculative drafts ([`crate::verify`]): every probability in f64,
//! each target position's kept set built as [`super::sample_row`] builds it, and the same random
//! stream — so a verified position that emits a token it did not have to resample emits what
//! `sample_row` would have drawn there.

use super::reference::{
    gumbel_argmax, inverse_cdf, kept_set, sample_row_scanned, scan_row, shifted, KeptSet, RowScan,
    SampleOptions,
};
use crate::dtype::Logit;
use crate::error::Result;
use crate::params::Numerics;
use crate::params::{row_params, DrawMethod, RowStatus, SamplingParams};
use crate::philox;
use crate::processing::{process_row_scanned, Processing};
use crate::verify::{Draft, Drafts, Step, VerifyOptions, VerifyOutput};
use rayon::prelude::*;

/// Verifies a batch of requests' drafts against `target` (`[drafts.target_rows(), vocab]`).
/// `params` holds one entry for every request or one per request; `processing` (over the target
/// rows, see the [`crate::verify`] docs) is applied to each target row before its distribution
/// is formed. Malformed batches are errors; a bad request gets its status and the others are
/// verified as if alone.
pub fn verify_batch<T: Logit>(
    target: &[T],
    vocab: usize,
    drafts: &Drafts,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &VerifyOptions,
) -> Result<Vec<VerifyOutput>> {
    drafts.check_batch(target.len(), vocab, params.len(), processing)?;
    let batch = drafts.batch();
    Ok((0..batch)
        .into_par_iter()
        .map(|r| {
            let request = Request {
                target,
                vocab,
                drafts,
                index: r,
                processing,
            };
            request.verify(row_params(params, r), opts)
        })
        .collect())
}

/// One request of a batch.
struct Request<'a, T> {
    target: &'a [T],
    vocab: usize,
    drafts: &'a Drafts<'a>,
    index: usize,
    processing: &'a Processing<'a>,
}

/// A target position's logits: the caller's row, or its processed copy.
enum PositionRow<'a, T> {
    Raw(&'a [T]),
    Processed(Vec<f32>),
}

impl<'a, T: Logit> Request<'a, T> {
    fn verify(&self, params: &SamplingParams, opts: &VerifyOptions) -> VerifyOutput {
        if params.validate(self.index).is_err() {
            return VerifyOutput::failed(RowStatus::InvalidParams);
        }
        let status = self.drafts.request_status(self.index, self.vocab);
        if status != RowStatus::Ok {
            return VerifyOutput::failed(status);
        }
        // Every position is scanned before the chain starts, so a broken target row fails the
        // request whichever position the chain would stop at: the status never depends on a
        // random number.
        let n = self.drafts.count(self.index);
        let mut rows = Vec::with_capacity(n + 1);
        for j in 0..=n {
            match self.position_row(j) {
                Ok(row) => rows.push(row),
                Err(status) => return VerifyOutput::failed(status),
            }
        }
        let draft_tokens = self.drafts.request_tokens(self.index);
        let mut out = VerifyOutput {
            accepted: 0,
            tokens: Vec::with_capacity(n + 1),
            logprobs: Vec::with_capacity(n + 1),
            status: RowStatus::Ok,
        };
        for (j, (row, scan)) in rows.iter().enumerate() {
            // Position j (0-based) draws at step + j: the steps a plain decode would use.
            let p = params.at_step(params.step.wrapping_add(j as u64));
            let draft = (j < n).then(|| Draft {
                token: draft_tokens[j],
                probs: self.drafts.draft_probs(self.index, j, self.vocab),
            });
            let step = match row {
                PositionRow::Raw(x) => position_in(x, *scan, &p, draft, opts),
                PositionRow::Processed(x) => position_in(x, *scan, &p, draft, opts),
            };
            match step {
                Step::Accept(logprob) => {
                    out.tokens.push(draft_tokens[j]);
                    out.logprobs.push(logprob);
                    out.accepted += 1;
                }
                Step::Emit(token, logprob) => {
                    out.tokens.push(token);
                    out.logprobs.push(logprob);
                    break;
                }
            }
        }
        out
    }

    /// Position `j`'s row, processed if its lists say so, with its scan; or the row's status.
    fn position_row(
        &self,
        j: usize,
    ) -> std::result::Result<(PositionRow<'a, T>, RowScan), RowStatus> {
        let t = self.drafts.target_row(self.index, j);
        let raw = &self.target[t * self.vocab..(t + 1) * self.vocab];
        let lists = self.processing.row(t, self.vocab);
        if lists.is_off() {
            return Ok((PositionRow::Raw(raw), scan_row(raw)?));
        }
        let mut processed = Vec::new();
        let scan = process_row_scanned(raw, &lists, &mut processed)?;
        Ok((PositionRow::Processed(processed), scan))
    }
}

/// One position in the numerics `opts` asks for.
fn position_in<U: Logit>(
    row: &[U],
    scan: RowScan,
    p: &SamplingParams,
    draft: Option<Draft>,
    opts: &VerifyOptions,
) -> Step {
    match opts.numerics {
        Numerics::Fast => verify_position(row, scan, p, draft, opts.method),
        Numerics::Invariant => super::invariant::verify_position(row, scan, p, draft, opts.method),
    }
}

/// One position of the chain: accept or reject `draft` (the bonus position has none and draws
/// from `p` as [`super::sample_row`] does).
fn verify_position<U: Logit>(
    row: &[U],
    scan: RowScan,
    p: &SamplingParams,
    draft: Option<Draft>,
    method: DrawMethod,
) -> Step {
    let plain_draw = || {
        let opts = SampleOptions {
            method,
            ..SampleOptions::default()
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
    let dist = TargetDistribution::new(row, &scan, p);
    let p_draft = dist.prob(draft.token);
    let q_draft = draft.probs.map_or(1.0, |q| q[draft.token as usize] as f64);
    // Accept with probability min(1, p/q): u * q < p, with no division (q > 0 was checked).
    let u = philox::accept_uniform(p.seed, p.step) as f64;
    if u * q_draft < p_draft {
        return Step::Accept(dist.logprob(draft.token));
    }
    // The residual as (token, ln weight, weight): Gumbel races the logs, the inverse CDF walks
    // the weights.
    let residual: Vec<(u32, f64, f64)> = match draft.probs {
        // A point mass's residual is p without the draft, in weights (the normaliser cancels),
        // so the race is the plain draw's with the draft left out.
        None => dist
            .kept
            .iter()
            .filter(|&&(t, _)| t != draft.token)
            .map(|&(t, s)| (t, s, s.exp()))
            .collect(),
        Some(q) => dist
            .kept
            .iter()
            .map(|&(t, s)| (t, s.exp() / dist.norm - q[t as usize] as f64))
            .filter(|&(_, r)| r > 0.0)
            .map(|(t, r)| (t, r.ln(), r))
            .collect(),
    };
    let total: f64 = residual.iter().map(|&(_, _, w)| w).sum();
    if residual.is_empty() || total <= 0.0 {
        // No residual mass: only rounding of a dense q at or above p everywhere gets here.
        return plain_draw();
    }
    let token = match method {
        DrawMethod::Gumbel => gumbel_argmax(residual.iter().map(|&(t, ln_w, _)| (t, ln_w)), p),
        DrawMethod::InverseCdf => inverse_cdf(residual.iter().map(|&(t, _, w)| (t, w)), total, p),
    };
    let ln_weight = residual
        .iter()
        .find(|&&(t, _, _)| t == token)
        .map(|&(_, ln_w, _)| ln_w)
        .expect("the drawn token has residual weight");
    Step::Emit(token, ln_weight - total.ln())
}

/// A position's final distribution: its kept tokens in index order with their scaled logits
/// `s = (x - max) / T`, and the normaliser `sum exp(s)` summed as [`super::sample_row`] sums it.
struct TargetDistribution {
    kept: Vec<(u32, f64)>,
    norm: f64,
}

impl TargetDistribution {
    fn new<U: Logit>(row: &[U], scan: &RowScan, p: &SamplingParams) -> Self {
        let scaled = |x: f32| shifted(x, scan.max, p.temperature);
        match kept_set(row, scan, p) {
            KeptSet::AllFinite => {
                let kept: Vec<(u32, f64)> = row
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (i as u32, x.to_f32()))
                    .filter(|&(_, x)| x != f32::NEG_INFINITY)
                    .map(|(i, x)| (i, scaled(x)))
                    .collect();
                let norm = kept.iter().map(|&(_, s)| s.exp()).sum();
                TargetDistribution { kept, norm }
            }
            KeptSet::Ranked {
                candidates,
                weights,
            } => {
                let norm = weights.iter().sum();
                let mut kept: Vec<(u32, f64)> = candidates
                    .iter()
                    .map(|c| (c.token, scaled(c.logit)))
                    .collect();
                kept.sort_unstable_by_key(|&(t, _)| t);
                TargetDistribution { kept, norm }
            }
        }
    }

    fn scaled(&self, token: u32) -> Option<f64> {
        self.kept
            .binary_search_by_key(&token, |&(t, _)| t)
            .ok()
            .map(|i| self.kept[i].1)
    }

    /// `p(token)`; 0 for a token the filters or masks drop.
    fn prob(&self, token: u32) -> f64 {
        self.scaled(token).map_or(0.0, |s| s.exp() / self.norm)
    }

    /// `ln p(token)` for a kept token.
    fn logprob(&self, token: u32) -> f64 {
        self.scaled(token).expect("an accepted draft is kept") - self.norm.ln()
    }
}
