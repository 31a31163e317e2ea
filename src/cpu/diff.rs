//! Diffing another implementation's token against the exact reference, and explaining a
//! disagreement when it comes from float rounding at a boundary: a top-p or min-p cut that an f32
//! sum puts one token further or nearer, a Gumbel near-tie, or an inverse-CDF target that lands
//! within rounding of a cumulative boundary. Anything else is a real bug.

use super::reference::{kept_set, sample_row, scan_row, KeptSet, SampleOptions};
use super::select::{top_sorted, Candidate};
use crate::dtype::Logit;
use crate::params::{DrawMethod, SamplingParams};
use crate::philox;

/// How far f32 evaluation may move each quantity, relative to the reference.
#[derive(Clone, Copy, Debug)]
pub struct Tolerances {
    /// Relative change of `top_p` (covers f32 weights and the kernels' 2^-32 fixed-point mass).
    pub top_p: f64,
    /// Relative change of `min_p` (covers an f32 `exp`).
    pub min_p: f64,
    /// Absolute gap between two Gumbel scores, scaled by `1 + |score|`.
    pub score: f64,
    /// Gap between the inverse-CDF target and a cumulative boundary, relative to the total.
    pub cumulative: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            top_p: 1e-4,
            min_p: 1e-4,
            score: 2e-5,
            cumulative: 1e-4,
        }
    }
}

/// The verdict on another implementation's token.
#[derive(Clone, Debug, PartialEq)]
pub enum Agreement {
    Same,
    /// Different, and within float error of a boundary (the text says which and by how much).
    Explained(String),
    /// Different for no reason the tolerances cover.
    Unexplained(String),
}

/// Compares `token` (from another implementation) with the reference draw of this row.
pub fn compare_token<T: Logit>(
    row: &[T],
    p: &SamplingParams,
    method: DrawMethod,
    token: u32,
    tol: &Tolerances,
) -> Agreement {
    let opts = SampleOptions {
        method,
        top_n: 0,
        ..Default::default()
    };
    let reference = sample_row(row, p, &opts);
    if reference.token == Some(token) {
        return Agreement::Same;
    }
    let Some(expected) = reference.token else {
        return Agreement::Unexplained(format!(
            "reference failed the row ({:?})",
            reference.status
        ));
    };
    let Ok(scan) = scan_row(row) else {
        return Agreement::Unexplained("row unusable".into());
    };
    if p.is_greedy() {
        return Agreement::Unexplained(format!("greedy: expected {expected}, got {token}"));
    }
    // The longest and shortest kept prefixes that parameters within tolerance give.
    let loose = SamplingParams {
        top_p: ((p.top_p as f64) * (1.0 + tol.top_p)).min(1.0) as f32,
        min_p: ((p.min_p as f64) * (1.0 - tol.min_p)) as f32,
        ..*p
    };
    let tight = SamplingParams {
        top_p: ((p.top_p as f64) * (1.0 - tol.top_p)) as f32,
        min_p: ((p.min_p as f64) * (1.0 + tol.min_p)).min(0.999_999) as f32,
        ..*p
    };
    let ranked = |set: KeptSet| -> Vec<Candidate> {
        match set {
            KeptSet::AllFinite => top_sorted(row, scan.finite),
            KeptSet::Ranked { candidates, .. } => candidates,
        }
    };
    let longest = ranked(kept_set(row, &scan, &loose));
    let shortest_len = match p.top_p < 1.0 || p.min_p > 0.0 {
        true => ranked(kept_set(row, &scan, &tight)).len(),
        false => longest.len(),
    };
    let exact_len = ranked(kept_set(row, &scan, p)).len();
    let Some(rank) = longest.iter().position(|c| c.token == token) else {
        return Agreement::Unexplained(format!(
            "token {token} is outside every kept set within tolerance (expected {expected})"
        ));
    };
    let d = |x: f32| (x as f64 - scan.max as f64) / p.temperature as f64;
    let mut lengths = vec![
        shortest_len.max(rank + 1),
        exact_len.max(rank + 1),
        longest.len(),
    ];
    lengths.dedup();
    for len in lengths {
        let prefix = &longest[..len];
        match method {
            DrawMethod::Gumbel => {
                let score = |c: &Candidate| {
                    d(c.logit) + philox::gumbel(philox::token_uniform(p.seed, p.step, c.token))
                };
                let best = prefix.iter().map(score).fold(f64::NEG_INFINITY, f64::max);
                let mine = score(&longest[rank]);
                if best - mine <= tol.score * (1.0 + best.abs()) {
                    return Agreement::Explained(format!(
                        "Gumbel near-tie: score gap {:.3e} with {len} kept (reference kept {exact_len})",
                        best - mine
                    ));
                }
            }
            DrawMethod::InverseCdf => {
                let mut by_index: Vec<&Candidate> = prefix.iter().collect();
                by_index.sort_unstable_by_key(|c| c.token);
                let norm: f64 = by_index.iter().map(|c| d(c.logit).exp()).sum();
                let target = philox::row_uniform(p.seed, p.step) as f64 * norm;
                let mut before = 0.0;
                for c in by_index {
                    let after = before + d(c.logit).exp();
                    if c.token == token {
                        let slack = tol.cumulative * norm;
                        if target >= before - slack && target <= after + slack {
                            return Agreement::Explained(format!(
                                "inverse-CDF target within {:.3e} of a cumulative boundary with {len} kept (reference kept {exact_len})",
                                (target - before).abs().min((target - after).abs()) / norm
                            ));
                        }
                        break;
                    }
                    before = after;
                }
            }
        }
    }
    Agreement::Unexplained(format!(
        "expected {expected}, got {token} (rank {rank}, kept {exact_len}, {shortest_len}..={} within tolerance)",
        longest.len()
    ))
}
