//! Determinism-drift experiments (issue 5). Experiments 1 and 3 are **CPU emulations** of the
//! reduction orders a GPU uses, measuring how they move sampling results (no GPU used);
//! experiment 2 measures real GPU logits and needs a GPU.
//!
//! - [`orders`]: the summation orders (sequential, thread block, split row, split-K merge, float
//!   atomics), each with a sum, a prefix sum and an argmax.
//! - [`reduction_order`]: experiment 1, how each order moves probabilities and drawn tokens away
//!   from exact arithmetic.
//! - [`batch_size`]: experiment 2, how the batch size moves projection logits (cuBLAS, and the
//!   batch-invariant kernel of `kernels/projection.cu`) and greedy tokens at temperature 0.
//! - [`projection`]: that kernel's CPU twin (bit for bit) and the f64 dot product.
//! - [`run_to_run`]: experiment 3, the same batch run many times with float atomics against fixed
//!   orders.
//! - [`plot`]: the SVG figures of experiments 1 and 3.
//!
//! Shared conventions (experiments 1 and 3): weights `w = exp((x - max) / T)` in f32 (`-inf` logits weigh 0); the
//! "exact" sums are compensated f64 sums of those same f32 weights, so every difference is the
//! reduction order's; uniforms come from [`batchsample::philox`] keyed by each row's seed
//! ([`crate::io::row_seed`]) and the step, exactly as the sampler draws them.

pub mod batch_size;
pub mod orders;
pub mod plot;
pub mod projection;
pub mod reduction_order;
pub mod run_to_run;

pub use orders::Order;

use batchsample::error::{Result, SampleError};
use batchsample::philox;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// The first line of every report of experiments 1 and 3.
pub const BANNER: &str = "CPU emulation of GPU reduction orders (no GPU used)";

/// `[rows, vocab]` f32 logits and where they came from.
#[derive(Clone, Debug)]
pub struct Batch {
    pub rows: usize,
    pub vocab: usize,
    pub logits: Vec<f32>,
    pub source: String,
}

impl Batch {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.logits[r * self.vocab..(r + 1) * self.vocab]
    }
}

/// What every experiment shares: temperature, base seed, first step and draws per row.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Setup {
    pub temperature: f32,
    pub seed: u64,
    pub step: u64,
    /// Draws per row, at steps `step .. step + draws`.
    pub draws: u64,
}

impl Setup {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(SampleError::InvalidParam {
                row: 0,
                field: "temperature",
                value: self.temperature.to_string(),
                reason: "must be finite and > 0 (at 0 the sampler is an argmax, exact under any \
                         order: nothing to measure)",
            });
        }
        if self.draws == 0 {
            return Err(SampleError::InvalidParam {
                row: 0,
                field: "draws",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// A standard normal variate (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One heavy-tailed, LM-like row (as `lm_like_row` in the tests): a normal bulk, a few Zipf-like
/// "plausible next tokens" far above it, a Student-t-like tail, shuffled, around a random offset.
fn lm_like_row(rng: &mut StdRng, vocab: usize) -> Vec<f32> {
    let offset: f64 = rng.random_range(-20.0..20.0);
    let bulk_sd: f64 = rng.random_range(1.0..2.5);
    let mut row: Vec<f64> = (0..vocab).map(|_| bulk_sd * normal(rng)).collect();
    let spikes = rng.random_range(1..=vocab.clamp(1, 24));
    let top: f64 = rng.random_range(6.0..16.0);
    let zipf: f64 = rng.random_range(0.8..2.5);
    for (r, x) in row.iter_mut().take(spikes).enumerate() {
        *x = top - zipf * ((r + 1) as f64).ln() + 0.3 * normal(rng);
    }
    for x in row.iter_mut().skip(spikes) {
        if rng.random_bool(0.01) {
            let chi2 = normal(rng).powi(2) + normal(rng).powi(2);
            *x += (normal(rng) / (chi2 / 2.0).sqrt()).clamp(-8.0, 8.0);
        }
    }
    row.shuffle(rng);
    row.into_iter().map(|x| (x + offset) as f32).collect()
}

/// Seeded synthetic logits. A fraction `near_ties` of the rows get a near-tie: their runner-up
/// token is moved to within a relative `10^-6 .. 10^-3` (log-uniform) of the top logit.
pub fn synthetic_batch(rows: usize, vocab: usize, near_ties: f64, seed: u64) -> Batch {
    let logits: Vec<f32> = (0..rows)
        .into_par_iter()
        .flat_map_iter(|r| {
            let mut rng = StdRng::seed_from_u64(crate::io::row_seed(seed, r));
            let mut row = lm_like_row(&mut rng, vocab);
            if vocab >= 2 && rng.random_bool(near_ties.clamp(0.0, 1.0)) {
                let mut idx: Vec<usize> = (0..vocab).collect();
                idx.sort_unstable_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                let (top, second) = (idx[0], idx[1]);
                let rel = 10f64.powf(rng.random_range(-6.0..-3.0));
                let x = row[top] as f64;
                row[second] = (x - rel * x.abs().max(1.0)) as f32;
            }
            row
        })
        .collect();
    Batch {
        rows,
        vocab,
        logits,
        source: format!("synthetic LM-like logits, seed {seed}, near-tie fraction {near_ties}"),
    }
}

/// `[batch, vocab]` logits from a `.npy` or safetensors file, at most `rows` of them.
pub fn load_batch(path: &Path, rows: Option<usize>) -> Result<Batch> {
    let l = crate::io::read_logits(path, None)?;
    let take = rows.unwrap_or(l.batch).min(l.batch);
    let mut logits = l.data.to_f32_vec();
    logits.truncate(take * l.vocab);
    for (r, row) in logits.chunks(l.vocab.max(1)).enumerate() {
        if row.iter().any(|x| x.is_nan() || *x == f32::INFINITY) {
            return Err(SampleError::file(
                path,
                format!("row {r} holds NaN or +inf"),
            ));
        }
        if row.iter().all(|x| *x == f32::NEG_INFINITY) {
            return Err(SampleError::file(
                path,
                format!("row {r} has no finite logit"),
            ));
        }
    }
    Ok(Batch {
        rows: take,
        vocab: l.vocab,
        logits,
        source: path.display().to_string(),
    })
}

/// The row's maximum finite logit.
fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `w_i = exp((x_i - max) / T)` in f32 (`-inf` logits weigh 0).
pub fn weights(row: &[f32], temperature: f32) -> Vec<f32> {
    let max = row_max(row);
    row.iter()
        .map(|&x| ((x - max) / temperature).exp())
        .collect()
}

/// The Gumbel-max scores `(x - max) / T + g(u_i)` in f64, exactly as [`batchsample::cpu::sample_row`]
/// computes them (`-inf` for masked tokens).
pub fn gumbel_scores(row: &[f32], temperature: f32, seed: u64, step: u64) -> Vec<f64> {
    let max = row_max(row) as f64;
    let mut out = Vec::with_capacity(row.len());
    for (b, xs) in row.chunks(4).enumerate() {
        let u = philox::token_uniforms(seed, step, b as u32);
        for (k, &x) in xs.iter().enumerate() {
            out.push(if x == f32::NEG_INFINITY {
                f64::NEG_INFINITY
            } else {
                (x as f64 - max) / temperature as f64 + philox::gumbel(u[k])
            });
        }
    }
    out
}

/// Exact (compensated f64, Neumaier) running sums of `w`; the last is the exact total.
pub fn exact_prefix(w: &[f32]) -> Vec<f64> {
    let (mut s, mut c) = (0f64, 0f64);
    w.iter()
        .map(|&x| {
            let x = x as f64;
            let t = s + x;
            c += if s.abs() >= x.abs() {
                (s - t) + x
            } else {
                (x - t) + s
            };
            s = t;
            s + c
        })
        .collect()
}

/// The exact inverse-CDF token: the first index whose exact running sum exceeds `target`
/// (zero-weight tokens never), else the last token with weight.
pub fn exact_walk(exact: &[f64], w: &[f32], target: f64) -> usize {
    let j = exact.partition_point(|&c| c <= target);
    if j < w.len() {
        j
    } else {
        last_positive(w)
    }
}

/// The running maximum of an order's prefix over the tokens with weight (zero-weight tokens
/// repeat the previous value), so a binary search finds the first weighted token whose prefix
/// exceeds a target.
pub fn walk_index(prefix: &[f32], w: &[f32]) -> Vec<f32> {
    let mut m = f32::NEG_INFINITY;
    prefix
        .iter()
        .zip(w)
        .map(|(&p, &x)| {
            if x > 0.0 {
                m = m.max(p);
            }
            m
        })
        .collect()
}

/// The inverse-CDF token under an order: the first weighted token whose prefix (from
/// [`walk_index`]) exceeds the f32 `target = u * Z`, else the last token with weight.
pub fn order_walk(index: &[f32], w: &[f32], target: f32) -> usize {
    let j = index.partition_point(|&m| m <= target);
    if j < w.len() {
        j
    } else {
        last_positive(w)
    }
}

fn last_positive(w: &[f32]) -> usize {
    w.iter().rposition(|&x| x > 0.0).unwrap_or(0)
}

/// Distance in units in the last place between two non-negative finite f32.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

/// The histogram bins of [`ulp_distance`].
pub const ULP_BINS: [&str; 7] = ["0", "1", "2", "3-4", "5-8", "9-16", ">16"];

/// The bin of an ULP distance.
pub fn ulp_bin(d: u64) -> usize {
    match d {
        0 => 0,
        1 => 1,
        2 => 2,
        3..=4 => 3,
        5..=8 => 4,
        9..=16 => 5,
        _ => 6,
    }
}
