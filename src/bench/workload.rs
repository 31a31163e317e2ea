//! What the benchmark samples: synthetic LM-like logits and the parameters of each mode.

use crate::params::SamplingParams;
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
}

impl BenchMode {
    pub const ALL: [BenchMode; 6] = [
        BenchMode::Greedy,
        BenchMode::Temperature,
        BenchMode::TopK,
        BenchMode::TopP,
        BenchMode::Combined,
        BenchMode::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Greedy => "greedy",
            BenchMode::Temperature => "temperature",
            BenchMode::TopK => "top-k",
            BenchMode::TopP => "top-p",
            BenchMode::Combined => "combined",
            BenchMode::Mixed => "mixed",
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
                format!("unknown mode '{s}' (expected greedy, temperature, top-k, top-p, combined or mixed)")
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
        BenchMode::Temperature | BenchMode::Mixed => base,
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
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `[batch, vocab]` LM-like logits: a bulk of roughly normal values (sd 2) and, per row, a few
/// dozen tokens 6 to 14 above it with Zipf-like decay, so top-p sets are realistic (tens to
/// thousands of tokens) rather than all or one.
pub fn synthetic_logits(batch: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; batch * vocab];
    out.par_chunks_mut(vocab.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let row_seed = splitmix64(seed ^ (r as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
            for (i, x) in row.iter_mut().enumerate() {
                let h = splitmix64(row_seed ^ i as u64);
                // Sum of four uniforms: close to normal, mean 2, sd ~0.58; scaled to sd 2.
                let u = |k: u32| ((h >> (16 * k)) & 0xffff) as f32 / 65536.0;
                *x = (u(0) + u(1) + u(2) + u(3) - 2.0) * 3.46;
            }
            let spikes = 32.min(row.len());
            for s in 0..spikes {
                let at =
                    (splitmix64(row_seed ^ (0xabcd_0000 + s as u64)) % row.len() as u64) as usize;
                row[at] = 14.0 - 2.2 * ((s + 1) as f32).ln();
            }
        });
    out
}
