//! The distribution after each stage of the pipeline, dense over the vocabulary. Written plainly
//! (a full sort, normalised probabilities) and separately from the fast reference path, so the
//! two check each other; the `demo` command draws these.

use crate::params::SamplingParams;
use crate::processing::{is_allowed, RowLists};

/// Probabilities over the whole vocabulary after each stage; each stage is renormalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages {
    pub softmax: Vec<f64>,
    pub after_top_k: Vec<f64>,
    pub after_top_p: Vec<f64>,
    pub after_min_p: Vec<f64>,
}

fn renormalised(mut probs: Vec<f64>) -> Vec<f64> {
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|q| *q /= total);
    probs
}

/// The stages for one row of finite-or-`-inf` logits; `None` if the row holds NaN or `+inf` or
/// has no finite logit.
pub fn stage_distributions(row: &[f32], p: &SamplingParams) -> Option<Stages> {
    if row.iter().any(|x| x.is_nan() || *x == f32::INFINITY) {
        return None;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    // Rank order: larger logit first, ties by lower index.
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));

    let softmax = if p.temperature == 0.0 {
        let mut one_hot = vec![0.0; row.len()];
        one_hot[order[0]] = 1.0;
        one_hot
    } else {
        renormalised(
            row.iter()
                .map(|&x| ((x as f64 - max as f64) / p.temperature as f64).exp())
                .collect(),
        )
    };

    let mut after_top_k = softmax.clone();
    if p.top_k > 0 {
        for &i in order.iter().skip(p.top_k as usize) {
            after_top_k[i] = 0.0;
        }
    }
    let after_top_k = renormalised(after_top_k);

    let mut after_top_p = after_top_k.clone();
    if p.top_p < 1.0 {
        let mut mass = 0.0;
        let mut reached = false;
        for &i in &order {
            if reached {
                after_top_p[i] = 0.0;
            } else {
                mass += after_top_k[i];
                reached = mass >= p.top_p as f64;
            }
        }
    }
    let after_top_p = renormalised(after_top_p);

    // min-p: at least `min_p` times the largest surviving probability. The ratio of two
    // probabilities is taken as the ratio of their unnormalised weights,
    // `exp((x_i - x_largest) / T) >= min_p`: comparing the normalised `q_i` with
    // `min_p * q_largest` rounds both sides and can drop a token whose weight is exactly `min_p`
    // (e.g. logits [2^-49, -2^-24, -1] with min_p = 1 - 2^-24 at T = 1).
    let largest = after_top_p.iter().copied().fold(0.0, f64::max);
    let largest_logit = order
        .iter()
        .find(|&&i| after_top_p[i] == largest)
        .map_or(max, |&i| row[i]);
    let at_least_min_p = |q: f64, x: f32| {
        if p.temperature == 0.0 {
            q >= p.min_p as f64 * largest // a point mass: exact
        } else {
            ((x as f64 - largest_logit as f64) / p.temperature as f64).exp() >= p.min_p as f64
        }
    };
    let after_min_p = renormalised(
        after_top_p
            .iter()
            .zip(row)
            .map(|(&q, &x)| {
                if q > 0.0 && at_least_min_p(q, x) {
                    q
                } else {
                    0.0
                }
            })
            .collect(),
    );

    Some(Stages {
        softmax,
        after_top_k,
        after_top_p,
        after_min_p,
    })
}

/// The distribution a row is finally drawn from.
pub fn final_distribution(row: &[f32], p: &SamplingParams) -> Option<Vec<f64>> {
    stage_distributions(row, p).map(|s| s.after_min_p)
}

/// A row's logits after each processing step ([`crate::processing`]), dense over the vocabulary:
/// written plainly (a count per token, one loop per step) and separately from
/// [`crate::processing::process_row`], so the two check each other. The distributions follow
/// from [`stage_distributions`] of any of them; `after_penalties` is what the filters see.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessingStages {
    pub after_bitmask: Vec<f32>,
    pub after_banned: Vec<f32>,
    pub after_bias: Vec<f32>,
    pub after_penalties: Vec<f32>,
}

/// The processing steps of one row of raw logits; the lists must have passed
/// [`crate::processing::Processing::validate`].
pub fn processing_stages(raw: &[f32], lists: &RowLists) -> ProcessingStages {
    let vocab = raw.len();
    let after_bitmask: Vec<f32> = (0..vocab)
        .map(|i| match lists.mask {
            Some(mask) if !is_allowed(mask, i) => f32::NEG_INFINITY,
            _ => raw[i],
        })
        .collect();
    let mut banned = vec![false; vocab];
    lists.banned.iter().for_each(|&t| banned[t as usize] = true);
    let after_banned: Vec<f32> = (0..vocab)
        .map(|i| {
            if banned[i] {
                f32::NEG_INFINITY
            } else {
                after_bitmask[i]
            }
        })
        .collect();
    let mut bias = vec![None; vocab];
    for (&t, &b) in lists.bias_tokens.iter().zip(lists.biases) {
        bias[t as usize] = Some(b);
    }
    let after_bias: Vec<f32> = (0..vocab)
        .map(|i| bias[i].map_or(after_banned[i], |b| after_banned[i] + b))
        .collect();
    let mut in_history = vec![false; vocab];
    let mut output_count = vec![0usize; vocab];
    lists
        .prompt
        .iter()
        .for_each(|&t| in_history[t as usize] = true);
    for &t in lists.output {
        in_history[t as usize] = true;
        output_count[t as usize] += 1;
    }
    let pen = lists.penalties;
    let after_penalties = (0..vocab)
        .map(|i| {
            let mut x = after_bias[i];
            if in_history[i] && pen.repetition != 1.0 {
                x = if x > 0.0 {
                    x / pen.repetition
                } else {
                    x * pen.repetition
                };
            }
            let c = output_count[i];
            if c > 0 && (pen.frequency != 0.0 || pen.presence != 0.0) {
                x = (x - pen.frequency * c as f32) - pen.presence;
            }
            x
        })
        .collect();
    ProcessingStages {
        after_bitmask,
        after_banned,
        after_bias,
        after_penalties,
    }
}
