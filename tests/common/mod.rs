//! Helpers shared by the integration tests: seeded logit rows (plain and heavy-tailed LM-like),
//! random sampling parameters, many draws of one row by varying `step`, and a chi-square
//! goodness-of-fit test with its p-value and the draw count it needs.
//!
//! Everything is deterministic: rows come from `StdRng::seed_from_u64`, draws from Philox keyed
//! by `(seed, step)`, so a test that passes once passes always.

#![allow(dead_code)]

use batchsample::cpu::{kept_set, sample_row, scan_row, KeptSet};
use batchsample::{DrawMethod, Logit, SampleOptions, SamplingParams};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The GPU sampler for a GPU test, or `None` after printing why the test is skipped (no GPU).
/// A GPU that is present but fails to start is a test failure.
pub fn gpu_sampler(max_batch: usize, max_top_n: usize) -> Option<batchsample::gpu::GpuSampler> {
    use batchsample::gpu::{GpuConfig, GpuSampler};
    match GpuSampler::new(GpuConfig {
        device_ordinal: 0,
        max_batch,
        max_top_n,
    }) {
        Ok(s) => Some(s),
        Err(batchsample::SampleError::NoDevice(why)) => {
            println!("SKIP: no GPU ({why})");
            None
        }
        Err(e) => panic!("a GPU is present but the sampler failed to start: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Random rows and parameters
// ---------------------------------------------------------------------------------------------

/// A seeded generator.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A standard normal variate (Box-Muller; `rand_distr` is not a dependency).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `vocab` logits, normal around a random offset with standard deviation `spread`.
pub fn normal_row(rng: &mut StdRng, vocab: usize, spread: f64) -> Vec<f32> {
    let offset = rng.random_range(-5.0..5.0);
    (0..vocab)
        .map(|_| (offset + spread * normal(rng)) as f32)
        .collect()
}

/// A heavy-tailed, LM-like row: a normal bulk plus a few "plausible next tokens" far above it,
/// their heights decaying like a Zipf law, at shuffled positions, around a random offset.
/// Every logit stays within ~60 of the maximum, so `exp((x - max) / T)` never underflows for
/// `T >= 0.1`.
pub fn lm_like_row(rng: &mut StdRng, vocab: usize) -> Vec<f32> {
    let offset: f64 = rng.random_range(-20.0..20.0);
    let bulk_sd: f64 = rng.random_range(1.0..2.5);
    let mut row: Vec<f64> = (0..vocab).map(|_| bulk_sd * normal(rng)).collect();
    let spikes = rng.random_range(1..=vocab.clamp(1, 24));
    let top: f64 = rng.random_range(6.0..16.0);
    let zipf: f64 = rng.random_range(0.8..2.5);
    for (r, x) in row.iter_mut().take(spikes).enumerate() {
        *x = top - zipf * ((r + 1) as f64).ln() + 0.3 * normal(rng);
    }
    // A heavy tail inside the bulk: a few extra tokens with Student-t(2)-like bumps.
    for x in row.iter_mut().skip(spikes) {
        if rng.random_bool(0.01) {
            let chi2 = normal(rng).powi(2) + normal(rng).powi(2);
            *x += (normal(rng) / (chi2 / 2.0).sqrt()).clamp(-8.0, 8.0);
        }
    }
    row.shuffle(rng);
    row.into_iter().map(|x| (x + offset) as f32).collect()
}

/// Sets a fraction of the tokens to `-inf` (masked), keeping at least `keep_finite` finite.
/// Returns the masked indices.
pub fn mask_some(rng: &mut StdRng, row: &mut [f32], fraction: f64, keep_finite: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.shuffle(rng);
    let budget = row.len().saturating_sub(keep_finite.max(1));
    let n = ((row.len() as f64 * fraction) as usize).min(budget);
    let mut masked: Vec<u32> = order[..n].iter().map(|&i| i as u32).collect();
    for &i in &masked {
        row[i as usize] = f32::NEG_INFINITY;
    }
    masked.sort_unstable();
    masked
}

/// Rounds every logit through bf16 (many exact ties, as real bf16 logits have).
pub fn bf16_rounded(row: &[f32]) -> Vec<f32> {
    row.iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect()
}

/// Which filters random parameters switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filters {
    TemperatureOnly,
    TopK,
    TopP,
    MinP,
    /// top-k, top-p and min-p together.
    Combined,
    /// Each filter on or off at random (never greedy).
    Any,
}

/// Random non-greedy parameters with the given filters on (temperature in [0.3, 2]).
pub fn random_params(rng: &mut StdRng, filters: Filters) -> SamplingParams {
    let (k, p, m) = match filters {
        Filters::TemperatureOnly => (false, false, false),
        Filters::TopK => (true, false, false),
        Filters::TopP => (false, true, false),
        Filters::MinP => (false, false, true),
        Filters::Combined => (true, true, true),
        Filters::Any => (
            rng.random_bool(0.5),
            rng.random_bool(0.5),
            rng.random_bool(0.5),
        ),
    };
    SamplingParams {
        temperature: rng.random_range(0.3f32..2.0),
        top_k: if k { rng.random_range(1..=60) } else { 0 },
        top_p: if p {
            rng.random_range(0.3f32..0.99)
        } else {
            1.0
        },
        min_p: if m {
            rng.random_range(0.01f32..0.3)
        } else {
            0.0
        },
        seed: rng.random(),
        step: rng.random_range(0..1_000_000),
    }
}

// ---------------------------------------------------------------------------------------------
// Draws and kept sets
// ---------------------------------------------------------------------------------------------

/// Token counts of `draws` draws of one row: draw `d` uses `params.at_step(params.step + d)`,
/// i.e. consecutive decode steps of one request. Panics if a draw fails.
pub fn draw_counts<T: Logit>(
    row: &[T],
    params: &SamplingParams,
    method: DrawMethod,
    draws: u64,
) -> Vec<u64> {
    let opts = SampleOptions {
        method,
        top_n: 0,
        ..Default::default()
    };
    (0..draws)
        .into_par_iter()
        .fold(
            || vec![0u64; row.len()],
            |mut counts, d| {
                let out = sample_row(row, &params.at_step(params.step + d), &opts);
                counts[out.token.expect("a valid row always yields a token") as usize] += 1;
                counts
            },
        )
        .reduce(
            || vec![0u64; row.len()],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// Token counts of `draws` draws of one row through a batched sampler (a kernel run on the host
/// shim or the GPU): the row is repeated across batches of up to 2000 rows, row `d` of the draws
/// at `params.at_step(params.step + d)`. `launch` samples one batch; every row must yield a token.
pub fn batched_draw_counts(
    row: &[f32],
    params: &SamplingParams,
    draws: usize,
    mut launch: impl FnMut(&[f32], &[SamplingParams]) -> Vec<batchsample::RowOutput>,
) -> Vec<u64> {
    let mut counts = vec![0u64; row.len()];
    let mut done = 0usize;
    while done < draws {
        let batch = 2000.min(draws - done);
        let logits: Vec<f32> = (0..batch).flat_map(|_| row.iter().copied()).collect();
        let steps: Vec<SamplingParams> = (0..batch)
            .map(|d| params.at_step(params.step + (done + d) as u64))
            .collect();
        for o in launch(&logits, &steps) {
            counts[o.token.expect("ok row") as usize] += 1;
        }
        done += batch;
    }
    counts
}

/// Asserts that draws of `row` through the host shim's sampler kernels (64 threads, default
/// options) follow its exact distribution: chi-square at alpha 1e-3, once for each entry of
/// `splits` (1: the one-block kernel; more: the split kernel with that many slices).
#[cfg(feature = "host-simt")]
pub fn assert_shim_draws_fit(row: &[f32], params: &SamplingParams, splits: &[u32]) {
    assert_shim_kernel_draws_fit(
        row,
        params,
        splits,
        batchsample::host_simt::geometry::SamplerKernel::General,
        DrawMethod::Gumbel,
    );
}

/// [`assert_shim_draws_fit`] through `kernel`'s family of kernels, drawing with `method`.
#[cfg(feature = "host-simt")]
pub fn assert_shim_kernel_draws_fit(
    row: &[f32],
    params: &SamplingParams,
    splits: &[u32],
    kernel: batchsample::host_simt::geometry::SamplerKernel,
    method: DrawMethod,
) {
    use batchsample::host_simt::geometry::SamplerKernel;
    use batchsample::host_simt::sampler::{
        sample_rows, sample_rows_collected, sample_rows_unfiltered,
    };
    use batchsample::host_simt::split::{sample_rows_split, sample_rows_unfiltered_split};
    use batchsample::host_simt::Schedule;
    let vocab = row.len();
    let probs = batchsample::cpu::final_distribution(row, params).expect("a sampleable row");
    let draws = draws_needed(&probs).clamp(20_000, 40_000) as usize;
    let opts = SampleOptions {
        method,
        ..SampleOptions::default()
    };
    let (one_block, split): (OneBlockShim, SplitShim) = match kernel {
        SamplerKernel::General => (sample_rows::<f32>, sample_rows_split::<f32>),
        SamplerKernel::Unfiltered => (
            sample_rows_unfiltered::<f32>,
            sample_rows_unfiltered_split::<f32>,
        ),
        // Collected rows split the general way.
        SamplerKernel::Collected => (sample_rows_collected::<f32>, sample_rows_split::<f32>),
    };
    for &n in splits {
        let counts = batched_draw_counts(row, params, draws, |logits, steps| {
            if n == 1 {
                one_block(logits, vocab, steps, &opts, 64, Schedule::Forward).expect("launch")
            } else {
                split(logits, vocab, steps, &opts, 64, n, Schedule::Forward)
                    .expect("split launch")
                    .0
            }
        });
        let test = chi_square(&counts, &probs);
        assert!(
            test.fits(ALPHA),
            "{kernel:?}, {method:?}, {n} slice(s): {test:?}"
        );
    }
}

#[cfg(feature = "host-simt")]
type OneBlockShim =
    fn(
        &[f32],
        usize,
        &[SamplingParams],
        &SampleOptions,
        u32,
        batchsample::host_simt::Schedule,
    ) -> Result<Vec<batchsample::RowOutput>, batchsample::host_simt::HostSimtError>;

#[cfg(feature = "host-simt")]
type SplitShim =
    fn(
        &[f32],
        usize,
        &[SamplingParams],
        &SampleOptions,
        u32,
        u32,
        batchsample::host_simt::Schedule,
    )
        -> Result<(Vec<batchsample::RowOutput>, Vec<u32>), batchsample::host_simt::HostSimtError>;

/// Whether two results are the same bits: status, token, logprob and the top-n list.
pub fn same_bits(a: &batchsample::RowOutput, b: &batchsample::RowOutput) -> bool {
    a.status == b.status
        && a.token == b.token
        && a.logprob.to_bits() == b.logprob.to_bits()
        && a.top_logprobs == b.top_logprobs
}

/// The tokens the fast path keeps (`cpu::kept_set`), sorted by index; `None` for a bad row.
/// For non-greedy parameters only (greedy rows do not build a kept set).
pub fn kept_tokens(row: &[f32], params: &SamplingParams) -> Option<Vec<u32>> {
    let scan = scan_row(row).ok()?;
    let mut tokens: Vec<u32> = match kept_set(row, &scan, params) {
        KeptSet::AllFinite => (0..row.len() as u32)
            .filter(|&i| row[i as usize] != f32::NEG_INFINITY)
            .collect(),
        KeptSet::Ranked { candidates, .. } => candidates.iter().map(|c| c.token).collect(),
    };
    tokens.sort_unstable();
    Some(tokens)
}

/// The indices with non-zero probability.
pub fn support(probs: &[f64]) -> Vec<u32> {
    (0..probs.len() as u32)
        .filter(|&i| probs[i as usize] > 0.0)
        .collect()
}

/// Tokens in rank order by probability: larger first, ties by lower index; zeros left out.
pub fn ranked_support(probs: &[f64]) -> Vec<u32> {
    let mut s = support(probs);
    s.sort_by(|&a, &b| {
        probs[b as usize]
            .partial_cmp(&probs[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    s
}

// ---------------------------------------------------------------------------------------------
// Chi-square goodness of fit
// ---------------------------------------------------------------------------------------------

/// Tokens with probability below this share a pooled cell (pooled in rank order until the cell
/// holds at least this much mass). It caps the cell count at ~2/MIN_CELL_MASS, which keeps the
/// test's power for an error in one large token, while a 5 % token always has its own cell.
pub const MIN_CELL_MASS: f64 = 0.005;
/// The classic rule: no cell with fewer than 5 expected draws.
pub const MIN_EXPECTED: f64 = 5.0;

/// The cells of a goodness-of-fit test over `probs` with `draws` draws: tokens with probability
/// 0 are left out (a draw of one is a failure by itself), tokens are taken in rank order, and a
/// cell is closed once its mass reaches `MIN_CELL_MASS` and its expected count `MIN_EXPECTED`; a
/// short last cell joins the one before.
pub fn cells(probs: &[f64], draws: u64) -> Vec<Vec<u32>> {
    let min_mass = MIN_CELL_MASS.max(MIN_EXPECTED / draws as f64);
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut mass = 0.0;
    for t in ranked_support(probs) {
        cur.push(t);
        mass += probs[t as usize];
        if mass >= min_mass {
            out.push(std::mem::take(&mut cur));
            mass = 0.0;
        }
    }
    if !cur.is_empty() {
        match out.last_mut() {
            Some(last) => last.extend(cur),
            None => out.push(cur),
        }
    }
    out
}

/// The outcome of a chi-square goodness-of-fit test.
#[derive(Clone, Debug)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: usize,
    /// `P(X >= statistic)` for `X ~ chi2(df)`; 1 when there is a single cell.
    pub p_value: f64,
    pub draws: u64,
    /// Draws of tokens whose probability is 0 (each one refutes the distribution by itself).
    pub impossible: u64,
}

impl ChiSquare {
    /// Passes at significance `alpha` (and no impossible draw).
    pub fn fits(&self, alpha: f64) -> bool {
        self.impossible == 0 && self.p_value >= alpha
    }
}

/// Pearson's chi-square test of observed `counts` against the distribution `probs`.
pub fn chi_square(counts: &[u64], probs: &[f64]) -> ChiSquare {
    assert_eq!(counts.len(), probs.len());
    let draws: u64 = counts.iter().sum();
    let impossible = counts
        .iter()
        .zip(probs)
        .filter(|(_, &p)| p == 0.0)
        .map(|(&c, _)| c)
        .sum();
    let total: f64 = probs.iter().sum();
    let cells = cells(probs, draws);
    let statistic: f64 = cells
        .iter()
        .map(|cell| {
            let expected: f64 =
                draws as f64 * cell.iter().map(|&t| probs[t as usize]).sum::<f64>() / total;
            let observed: u64 = cell.iter().map(|&t| counts[t as usize]).sum();
            (observed as f64 - expected).powi(2) / expected
        })
        .sum();
    let df = cells.len().saturating_sub(1);
    let p_value = if df == 0 {
        1.0
    } else {
        chi2_sf(statistic, df as f64)
    };
    ChiSquare {
        statistic,
        df,
        p_value,
        draws,
        impossible,
    }
}

/// Survival function of the chi-square distribution with `df` degrees of freedom (real `df`:
/// Patnaik's approximation below uses fractional ones), by statrs.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(df).expect("df > 0").sf(x)
}

/// The critical value `c` with `chi2_sf(c, df) == alpha`, by bisection on the survival function:
/// far in the tail (`alpha` down to 1e-6) that is exact to the last bits, where an inverse CDF
/// of `1 - alpha` would lose them to the subtraction.
pub fn chi2_critical(alpha: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, df + 10.0);
    while chi2_sf(hi, df) > alpha {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if chi2_sf(mid, df) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Power of the chi-square test at significance `alpha` against an alternative with
/// non-centrality `lambda`, by Patnaik's approximation: `chi2'(df, λ) ≈ c·chi2(ν)` with
/// `c = (df + 2λ)/(df + λ)`, `ν = (df + λ)²/(df + 2λ)`.
pub fn chi2_power(df: f64, lambda: f64, alpha: f64) -> f64 {
    let crit = chi2_critical(alpha, df);
    let c = (df + 2.0 * lambda) / (df + lambda);
    let nu = (df + lambda).powi(2) / (df + 2.0 * lambda);
    chi2_sf(crit / c, nu)
}

/// The smallest non-centrality that the test at `alpha` with `df` degrees of freedom detects
/// with probability `power`.
pub fn lambda_for_power(df: f64, alpha: f64, power: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while chi2_power(df, hi, alpha) < power {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if chi2_power(df, mid, alpha) < power {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Significance of every goodness-of-fit test.
pub const ALPHA: f64 = 1e-3;
/// The power we want against the error below.
pub const POWER: f64 = 0.99;
/// The error every goodness-of-fit test must catch: a token of probability `ERROR_TOKEN` drawn
/// with probability `ERROR_TOKEN + ERROR_SHIFT` (a percentage point moved from other tokens).
pub const ERROR_TOKEN: f64 = 0.05;
pub const ERROR_SHIFT: f64 = 0.01;

/// Draws needed so that the chi-square test over `probs` (after pooling) rejects, at `ALPHA`
/// and with probability `POWER`, a sampler that draws a 5 % token 1 percentage point too often.
///
/// With `N` draws, Pearson's statistic under an alternative `q` is non-central chi-square with
/// `λ = N Σ (q_i - p_i)² / p_i`. Moving `δ = 0.01` onto a token of `p = 0.05` (which has a cell of
/// its own, `p >= MIN_CELL_MASS`) gives at least `λ = N δ²/p = 0.002 N` (the cell the mass came
/// from adds more; we ignore it). The cells do not depend on `N` once `N >= 1000`, so
/// `N = λ(df, ALPHA, POWER) / 0.002`, rounded up to a thousand. Computed values: df 1 (2 cells)
/// λ ≈ 29.4, N = 15k; df 20 λ ≈ 58.7, N = 30k; df 100 λ ≈ 102, N ≈ 52k; df 200 λ ≈ 135, N ≈ 68k
/// (`draw_count_examples` in tests/cpu_reference.rs pins the first two).
pub fn draws_needed(probs: &[f64]) -> u64 {
    let df = (cells(probs, 100_000).len().max(2) - 1) as f64;
    let lambda = lambda_for_power(df, ALPHA, POWER);
    let per_draw = ERROR_SHIFT * ERROR_SHIFT / ERROR_TOKEN;
    // Round up to a thousand.
    ((lambda / per_draw / 1000.0).ceil() as u64) * 1000
}
