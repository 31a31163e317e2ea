//! What the benchmark samples: synthetic LM-like logits and the parameters of each mode.

use batchsample::params::SamplingParams;
use rayon::prelude::*;
use serde::Serialize;

/// Which filters a case exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    Greedy,
    /// Temperature 0.8, no filter.
    Temperature,
    /// top-k 50.
    TopK,
    /// top-p 0.9.
    TopP,
    /// top-k 50, top-p 0.9, min-p 0.05.
    Combined,
    /// Each row its own parameters (greedy, plain, top-k, top-p, combined in turn).
    Mixed,
    /// Speculative verification: `batch` requests of `--drafts` point-mass drafts each, their
    /// `n + 1` target rows at temperature 0.8 (the drafts: each row's top token for every other
    /// request, a random token for the rest).
    Verify,
}

impl BenchMode {
    pub const ALL: [BenchMode; 7] = [
        BenchMode::Greedy,
        BenchMode::Temperature,
        BenchMode::TopK,
        BenchMode::TopP,
        BenchMode::Combined,
        BenchMode::Mixed,
        BenchMode::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Greedy => "greedy",
            BenchMode::Temperature => "temperature",
            BenchMode::TopK => "top-k",
            BenchMode::TopP => "top-p",
            BenchMode::Combined => "combined",
            BenchMode::Mixed => "mixed",
            BenchMode::Verify => "verify",
        }
    }
}

impl std::str::FromStr for BenchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BenchMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown mode '{s}' (expected greedy, temperature, top-k, top-p, combined, mixed or verify)")
            })
    }
}

fn of_kind(kind: BenchMode, seed: u64, step: u64) -> SamplingParams {
    let base = SamplingParams {
        temperature: 0.8,
        seed,
        step,
        ..Default::default()
    };
    match kind {
        BenchMode::Greedy => SamplingParams {
            temperature: 0.0,
            ..base
        },
        BenchMode::Temperature | BenchMode::Mixed | BenchMode::Verify => base,
        BenchMode::TopK => SamplingParams { top_k: 50, ..base },
        BenchMode::TopP => SamplingParams { top_p: 0.9, ..base },
        BenchMode::Combined => SamplingParams {
            top_k: 50,
            top_p: 0.9,
            min_p: 0.05,
            ..base
        },
    }
}

/// One parameter set per row for `mode`; every row has its own seed.
pub fn mode_params(mode: BenchMode, batch: usize, step: u64) -> Vec<SamplingParams> {
    (0..batch as u64)
        .map(|r| {
            let kind = match mode {
                BenchMode::Mixed => BenchMode::ALL[(r % 5) as usize],
                m => m,
            };
            of_kind(kind, 0x9e37_79b9_7f4a_7c15 ^ r, step)
        })
        .collect()
}

/// SplitMix64: a fast, seedable hash for reproducible synthetic data.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The shape of the benchmark's synthetic rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowShape {
    /// A normal bulk (sd 2) over the whole vocabulary and 32 tokens 6 to 14 above it: about a
    /// third of the mass (at T = 1, vocab 128256) is spread over the bulk, so top-p 0.9 reaches
    /// deep (11,223 tokens for seed 7). The default, and the shape every recorded number used.
    #[default]
    Spiky,
    /// Closer to a trained LM's rows: a bulk (sd 2.5) about 22 below the top and 256 candidate
    /// tokens decaying like a Zipf law (exponent 1.5): top-p 0.9 keeps a few dozen tokens (29 for
    /// seed 7 at vocab 128256); the bulk holds well under 1 % of the mass.
    Peaked,
}

impl RowShape {
    pub fn name(self) -> &'static str {
        match self {
            RowShape::Spiky => "spiky",
            RowShape::Peaked => "peaked",
        }
    }
}

impl std::str::FromStr for RowShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [RowShape::Spiky, RowShape::Peaked]
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown row shape '{s}' (expected spiky or peaked)"))
    }
}

/// `[batch, vocab]` logits of the default shape ([`RowShape::Spiky`]).
pub fn synthetic_logits(batch: usize, vocab: usize, seed: u64) -> Vec<f32> {
    shaped_logits(batch, vocab, seed, RowShape::Spiky)
}

/// `[batch, vocab]` synthetic logits of `shape`, reproducible from `seed`.
pub fn shaped_logits(batch: usize, vocab: usize, seed: u64, shape: RowShape) -> Vec<f32> {
    let (bulk_sd, spikes, top, zipf) = match shape {
        RowShape::Spiky => (2.0f32, 32usize, 14.0f32, 2.2f32),
        RowShape::Peaked => (2.5, 256, 22.0, 1.5),
    };
    let mut out = vec![0f32; batch * vocab];
    out.par_chunks_mut(vocab.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let row_seed = splitmix64(seed ^ (r as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
            for (i, x) in row.iter_mut().enumerate() {
                let h = splitmix64(row_seed ^ i as u64);
                // Sum of four uniforms: close to normal, mean 2, sd ~0.58; scaled to bulk_sd.
                let u = |k: u32| ((h >> (16 * k)) & 0xffff) as f32 / 65536.0;
                *x = (u(0) + u(1) + u(2) + u(3) - 2.0) * (bulk_sd * 1.73);
            }
            for s in 0..spikes.min(row.len()) {
                let at =
                    (splitmix64(row_seed ^ (0xabcd_0000 + s as u64)) % row.len() as u64) as usize;
                row[at] = top - zipf * ((s + 1) as f32).ln();
            }
        });
    out
}

/// A verification case's drafts: `requests` requests of `n` point-mass drafts over `target`
/// (`[requests * (n + 1), vocab]`): each position's top token for even requests (long chains),
/// a random token for odd ones (early rejections).
pub fn verify_drafts(target: &[f32], vocab: usize, requests: usize, n: usize) -> Vec<u32> {
    let mut drafts = Vec::with_capacity(requests * n);
    for r in 0..requests {
        for j in 0..n {
            let row = &target[(r * (n + 1) + j) * vocab..(r * (n + 1) + j + 1) * vocab];
            drafts.push(if r % 2 == 0 {
                (0..vocab)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                    .unwrap_or(0) as u32
            } else {
                (splitmix64((r * 131 + j) as u64) % vocab as u64) as u32
            });
        }
    }
    drafts
}

/// Dense draft distributions for a verification case: draft `j` of request `r` is the softmax
/// of its target row at temperature 1.25 (close to the target, so chains run), `[requests * n,
/// vocab]`.
pub fn draft_distributions(target: &[f32], vocab: usize, requests: usize, n: usize) -> Vec<f32> {
    let mut q = vec![0f32; requests * n * vocab];
    q.par_chunks_mut(vocab.max(1))
        .enumerate()
        .for_each(|(d, out)| {
            let (r, j) = (d / n.max(1), d % n.max(1));
            let row = &target[(r * (n + 1) + j) * vocab..(r * (n + 1) + j + 1) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let w: Vec<f64> = row
                .iter()
                .map(|&x| ((x as f64 - max) / 1.25).exp())
                .collect();
            let total: f64 = w.iter().sum();
            out.iter_mut()
                .zip(&w)
                .for_each(|(o, &x)| *o = (x / total) as f32);
        });
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchsample::cpu::{kept_set, scan_row, KeptSet};

    /// The documented difference between the shapes: how deep top-p 0.9 reaches at T = 1.
    #[test]
    fn top_p_sets_are_deep_for_spiky_rows_and_shallow_for_peaked_ones() {
        let vocab = 128256;
        let p = SamplingParams {
            top_p: 0.9,
            ..Default::default()
        };
        let kept = |shape| {
            let row = shaped_logits(1, vocab, 7, shape);
            match kept_set(&row, &scan_row(&row).unwrap(), &p) {
                KeptSet::Ranked { candidates, .. } => candidates.len(),
                KeptSet::AllFinite => vocab,
            }
        };
        let (spiky, peaked) = (kept(RowShape::Spiky), kept(RowShape::Peaked));
        eprintln!("top-p 0.9 keeps {spiky} spiky tokens, {peaked} peaked tokens");
        assert!(spiky > 2000, "spiky: {spiky}");
        assert!((20..=400).contains(&peaked), "peaked: {peaked}");
    }
}
