//! Mixed batches that exercise every path at once: LM-like and flat rows, exact ties, masked
//! tokens, greedy rows, every filter combination, and rows that must fail (NaN, +inf, all -inf).

use crate::common::{bf16_rounded, lm_like_row, mask_some, normal_row, random_params, Filters};
use batchsample::SamplingParams;
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::Rng;

/// `[batch, vocab]` logits and one parameter set per row.
pub fn mixed_batch(
    rng: &mut StdRng,
    batch: usize,
    vocab: usize,
) -> (Vec<f32>, Vec<SamplingParams>) {
    let mut logits = Vec::with_capacity(batch * vocab);
    let mut params = Vec::with_capacity(batch);
    for _ in 0..batch {
        let kind = rng.random_range(0..100);
        let mut row = match kind {
            0..=39 => lm_like_row(rng, vocab),
            40..=59 => {
                let spread = rng.random_range(0.1..4.0);
                normal_row(rng, vocab, spread)
            }
            60..=74 => bf16_rounded(&normal_row(rng, vocab, 0.5)), // many exact ties
            75..=79 => vec![rng.random_range(-3.0f32..3.0); vocab], // one big tie
            _ => lm_like_row(rng, vocab),
        };
        if rng.random_bool(0.25) {
            let fraction = rng.random_range(0.1..0.9);
            mask_some(rng, &mut row, fraction, 1);
        }
        let mut p = random_params(rng, Filters::Any);
        match rng.random_range(0..100) {
            0..=9 => p.temperature = 0.0,
            10..=14 => p.top_k = vocab as u32 + rng.random_range(0..3),
            15..=19 => p.top_k = 1,
            20..=24 => p.temperature = rng.random_range(0.01f32..0.1),
            _ => {}
        }
        // A few rows that must fail without harming the others.
        match rng.random_range(0..200) {
            0 => row[rng.random_range(0..vocab)] = f32::NAN,
            1 => row[rng.random_range(0..vocab)] = f32::INFINITY,
            2 => row.iter_mut().for_each(|x| *x = f32::NEG_INFINITY),
            _ => {}
        }
        logits.extend(row);
        params.push(p);
    }
    (logits, params)
}

pub fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

pub fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}
