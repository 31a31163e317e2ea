//! Experiment 2's inputs: a pool of hidden states `[rows, d]` and an output projection
//! `[vocab, d]`, in one element type, synthesised ([`synthetic`]) or read from `.npy` /
//! safetensors files ([`load`]).
//!
//! Both matrices are held as [`LogitsBuf`]: the crate's owned f32 / f16 / bf16 buffer, which is
//! also what the file readers return (the name says logits; here it holds any row-major matrix).

use crate::drift::normal;
use crate::io::row_seed;
use batchsample::dtype::{Dtype, Logit, LogitsBuf};
use batchsample::error::{Result, SampleError};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::Path;

/// Hidden states and an output projection in one element type.
#[derive(Clone, Debug)]
pub struct ProjectionInputs {
    pub dtype: Dtype,
    /// Hidden rows in the pool (the rows of interest).
    pub rows: usize,
    pub d: usize,
    pub vocab: usize,
    /// `[rows, d]` in `dtype`.
    pub hidden: LogitsBuf,
    /// `[vocab, d]` in `dtype`.
    pub weights: LogitsBuf,
    pub source: String,
}

impl ProjectionInputs {
    /// Hidden row `r` widened to f32 (exactly).
    pub fn hidden_row(&self, r: usize) -> Vec<f32> {
        widen_range(&self.hidden, r * self.d..(r + 1) * self.d)
    }

    /// The whole projection widened to f32 (borrowed when it is f32 already).
    pub fn weights_f32(&self) -> Cow<'_, [f32]> {
        match &self.weights {
            LogitsBuf::F32(v) => Cow::Borrowed(v),
            other => Cow::Owned(other.to_f32_vec()),
        }
    }
}

/// The elements of `buf` as `&[T]` when `T` is its element type.
pub fn typed<T: Logit>(buf: &LogitsBuf) -> Option<&[T]> {
    (buf.dtype() == T::DTYPE).then(|| match buf {
        LogitsBuf::F32(v) => bytemuck::cast_slice(v),
        LogitsBuf::F16(v) => bytemuck::cast_slice(v),
        LogitsBuf::Bf16(v) => bytemuck::cast_slice(v),
    })
}

fn widen_range(buf: &LogitsBuf, range: std::ops::Range<usize>) -> Vec<f32> {
    match buf {
        LogitsBuf::F32(v) => v[range].to_vec(),
        LogitsBuf::F16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
        LogitsBuf::Bf16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
    }
}

/// `values` rounded to nearest (even) in `dtype`.
pub fn narrow(values: Vec<f32>, dtype: Dtype) -> LogitsBuf {
    match dtype {
        Dtype::F32 => LogitsBuf::F32(values),
        Dtype::F16 => LogitsBuf::F16(values.into_par_iter().map(f16::from_f32).collect()),
        Dtype::Bf16 => LogitsBuf::Bf16(values.into_par_iter().map(bf16::from_f32).collect()),
    }
}

/// What [`synthetic`] builds.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticSpec {
    pub rows: usize,
    pub d: usize,
    pub vocab: usize,
    pub dtype: Dtype,
    /// Fraction of hidden rows whose top token gets a near-tie twin.
    pub near_ties: f64,
    pub seed: u64,
}

/// Salts that keep the weight, hidden and near-tie streams apart for one seed.
const SALT_WEIGHTS: u64 = 0x5745_4947_4854_5321;
const SALT_HIDDEN: u64 = 0x4849_4444_454e_5321;
const SALT_TIES: u64 = 0x5449_4553_5449_4553;

/// Plausible next tokens of one hidden row and their target logits (largest first).
struct Plan {
    tokens: Vec<usize>,
    strengths: Vec<f64>,
    noise_sd: f64,
}

fn plan_row(rng: &mut StdRng, vocab: usize) -> Plan {
    let s = rng.random_range(1..=vocab.clamp(1, 24));
    let mut tokens: Vec<usize> = Vec::with_capacity(s);
    while tokens.len() < s {
        let t = rng.random_range(0..vocab);
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    let top: f64 = rng.random_range(12.0..22.0);
    let zipf: f64 = rng.random_range(0.8..2.5);
    let strengths = (0..s)
        .map(|i| top - zipf * ((i + 1) as f64).ln() + 0.3 * normal(rng))
        .collect();
    Plan {
        tokens,
        strengths,
        noise_sd: rng.random_range(0.8..1.6),
    }
}

/// Seeded synthetic inputs whose logits look like a language model's:
///
/// * each weight row is `g_v * a / sqrt(d)` with `a` standard normal and a per-token norm
///   `g_v = exp(0.2 N(0, 1))`, so logits over the vocabulary are a heavy-tailed mixture;
/// * each hidden row is `sum_i z_i W[t_i] / |W[t_i]|^2` over 1..24 "plausible next tokens" `t_i`
///   with Zipf-like target logits `z_i` (the first at 12..22), plus isotropic noise that gives
///   the bulk of the vocabulary logits of standard deviation about `0.8..1.6 g_v`;
/// * a fraction `near_ties` of the hidden rows get a near-tie: another token's weight row is set
///   to `(1 - eps) W[t_0]` with `eps` log-uniform in `1e-7 .. 1e-3`, so its logit is within a
///   relative `eps` of the top one (before rounding to the element type: in bf16 most such pairs
///   round to equal rows or differ in a few elements; the f64 reference measures what remains).
pub fn synthetic(spec: &SyntheticSpec) -> Result<ProjectionInputs> {
    let SyntheticSpec {
        rows,
        d,
        vocab,
        dtype,
        near_ties,
        seed,
    } = *spec;
    if rows == 0 || d == 0 || vocab < 2 {
        return Err(SampleError::Shape(format!(
            "synthetic inputs need rows >= 1, d >= 1 and vocab >= 2 (got {rows}, {d}, {vocab})"
        )));
    }
    if !(0.0..=1.0).contains(&near_ties) {
        return Err(SampleError::InvalidParam {
            row: 0,
            field: "near_ties",
            value: near_ties.to_string(),
            reason: "must be a fraction in [0, 1]",
        });
    }
    let scale = 1.0 / (d as f64).sqrt();
    let mut weights = vec![0f32; vocab * d];
    weights.par_chunks_mut(d).enumerate().for_each(|(v, w)| {
        let mut rng = StdRng::seed_from_u64(row_seed(seed ^ SALT_WEIGHTS, v));
        let g = (0.2 * normal(&mut rng)).exp() * scale;
        w.iter_mut()
            .for_each(|x| *x = (g * normal(&mut rng)) as f32);
    });
    let plans: Vec<Plan> = (0..rows)
        .map(|r| {
            plan_row(
                &mut StdRng::seed_from_u64(row_seed(seed ^ SALT_HIDDEN, r)),
                vocab,
            )
        })
        .collect();
    let twins = add_near_ties(&mut weights, d, vocab, &plans, near_ties, seed);
    let hidden: Vec<f32> = plans
        .par_iter()
        .enumerate()
        .flat_map_iter(|(r, plan)| hidden_row(&weights, d, plan, seed, r))
        .collect();
    Ok(ProjectionInputs {
        dtype,
        rows,
        d,
        vocab,
        hidden: narrow(hidden, dtype),
        weights: narrow(weights, dtype),
        source: format!(
            "synthetic LM-like hidden states and projection, seed {seed}, near-tie fraction \
             {near_ties} ({twins} twin token(s))"
        ),
    })
}

/// Gives a fraction of the rows a twin of their top token; returns how many twins were made.
/// A token is used at most once, as a source or as a twin, so twins never chain.
fn add_near_ties(
    weights: &mut [f32],
    d: usize,
    vocab: usize,
    plans: &[Plan],
    fraction: f64,
    seed: u64,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed ^ SALT_TIES);
    let mut used = std::collections::HashSet::new();
    let mut made = 0;
    for plan in plans {
        let top = plan.tokens[0];
        if !rng.random_bool(fraction) || used.contains(&top) {
            continue;
        }
        // At most 64 tries for a free token (small vocabularies may have none left).
        let Some(twin) = (0..64)
            .map(|_| rng.random_range(0..vocab))
            .find(|t| !used.contains(t) && !plan.tokens.contains(t))
        else {
            continue;
        };
        // A decade below experiment 1's near ties, so that some margins come down to the size of
        // f32 rounding itself (unit roundoff 6e-8): only such margins can flip.
        let eps = 10f64.powf(rng.random_range(-7.0..-3.0));
        let source: Vec<f32> = weights[top * d..(top + 1) * d].to_vec();
        for (x, &s) in weights[twin * d..(twin + 1) * d].iter_mut().zip(&source) {
            *x = ((1.0 - eps) * s as f64) as f32;
        }
        used.insert(top);
        used.insert(twin);
        made += 1;
    }
    made
}

fn hidden_row(weights: &[f32], d: usize, plan: &Plan, seed: u64, r: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(row_seed(seed ^ SALT_HIDDEN ^ SALT_WEIGHTS, r));
    // Isotropic noise of sd `noise_sd` per element gives W[v] . noise ~ N(0, (g_v noise_sd)^2).
    let mut h: Vec<f64> = (0..d).map(|_| plan.noise_sd * normal(&mut rng)).collect();
    for (&t, &z) in plan.tokens.iter().zip(&plan.strengths) {
        let w = &weights[t * d..(t + 1) * d];
        let norm2: f64 = w.iter().map(|&x| x as f64 * x as f64).sum();
        if norm2 > 0.0 {
            h.iter_mut()
                .zip(w)
                .for_each(|(hk, &wk)| *hk += z * wk as f64 / norm2);
        }
    }
    h.into_iter().map(|x| x as f32).collect()
}

/// Where [`load`] reads from.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec<'a> {
    /// `[rows, d]` hidden states (a 1-D array is one row).
    pub hidden: &'a Path,
    pub hidden_tensor: Option<&'a str>,
    /// `[vocab, d]` output projection (e.g. `lm_head.weight`).
    pub weights: &'a Path,
    pub weights_tensor: Option<&'a str>,
    /// The element type both are converted to (rounded to nearest even when narrowed).
    pub dtype: Dtype,
    /// Use at most this many hidden rows.
    pub rows: Option<usize>,
}

/// Hidden states and a projection from `.npy` (f32/f16) or safetensors (f32/f16/bf16) files.
pub fn load(spec: &FileSpec<'_>) -> Result<ProjectionInputs> {
    let hidden = crate::io::read_logits(spec.hidden, spec.hidden_tensor)?;
    let weights = crate::io::read_logits(spec.weights, spec.weights_tensor)?;
    let (rows, d) = (
        spec.rows.unwrap_or(hidden.batch).min(hidden.batch),
        hidden.vocab,
    );
    if weights.vocab != d {
        return Err(SampleError::Shape(format!(
            "hidden states {} are [{}, {d}] but the projection {} is [{}, {}]: the inner \
             dimensions differ",
            spec.hidden.display(),
            hidden.batch,
            spec.weights.display(),
            weights.batch,
            weights.vocab
        )));
    }
    let mut h = hidden.data.to_f32_vec();
    h.truncate(rows * d);
    let w = weights.data.to_f32_vec();
    for (path, values) in [(spec.hidden, &h), (spec.weights, &w)] {
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(SampleError::file(
                path,
                format!("element {i} (row {}) is not finite", i / d),
            ));
        }
    }
    Ok(ProjectionInputs {
        dtype: spec.dtype,
        rows,
        d,
        vocab: weights.batch,
        hidden: narrow(h, spec.dtype),
        weights: narrow(w, spec.dtype),
        source: format!(
            "hidden states {} ({}), projection {} ({}), as {}",
            spec.hidden.display(),
            hidden.data.dtype().name(),
            spec.weights.display(),
            weights.data.dtype().name(),
            spec.dtype.name()
        ),
    })
}
