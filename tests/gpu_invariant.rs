//! The batch-invariant numerics on a real GPU: 10^6 draws over randomised rows in randomised batch
//! compositions, with 0 mismatches GPU vs GPU (the same request in batches of 1 to 1024, at any
//! position) and GPU vs the CPU twin; and the device's exp/log bits against the twin's. Without a
//! GPU every test prints a `SKIP:` line and passes; `scripts/gpu-check` runs them on one.

mod common;
mod parity;

use batchsample::cpu::invariant;
use batchsample::cpu::invariant::math::{exact_exp, exact_log};
use batchsample::gpu::GpuSampler;
use batchsample::{DrawMethod, Numerics, RowOutput, SampleOptions, SamplingParams};
use common::rng;
use parity::batches::mixed_batch;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rayon::prelude::*;
use std::collections::HashMap;

fn sampler(max_batch: usize, max_top_n: usize) -> Option<GpuSampler> {
    common::gpu_sampler(max_batch, max_top_n)
}

/// The bits that must match: status, token, logprob, top-n pairs.
fn bits(o: &RowOutput) -> (u32, Option<u32>, u64, Vec<(u32, u64)>) {
    (
        o.status as u32,
        o.token,
        o.logprob.to_bits(),
        o.top_logprobs
            .iter()
            .map(|t| (t.token, t.logprob.to_bits()))
            .collect(),
    )
}

/// A request: one row of logits and its parameters (a fixed step, so every batch it lands in must
/// give the same answer).
struct Request {
    logits: Vec<f32>,
    params: SamplingParams,
}

/// `count` requests of `vocab` logits: the parity tests' mixed rows plus the invariant-specific
/// ones (top-k beyond the block size, extreme temperatures, top-p just under 1).
fn requests(g: &mut impl Rng, count: usize, vocab: usize) -> Vec<Request> {
    let mut out = Vec::with_capacity(count);
    let mut rng_std = common::rng(g.random());
    while out.len() < count {
        let (logits, params) = mixed_batch(&mut rng_std, 64, vocab);
        for (row, mut p) in logits.chunks(vocab).zip(params) {
            match g.random_range(0..40) {
                0 if vocab > 1100 => p.top_k = g.random_range(600..1100),
                1 => p.temperature = 1e-40,
                2 => p.temperature = 3e38,
                3 => p.top_p = g.random_range(0.999f32..1.0),
                _ => {}
            }
            out.push(Request {
                logits: row.to_vec(),
                params: p,
            });
        }
    }
    out.truncate(count);
    out
}

#[test]
fn invariant_million_draws_match_across_batches_and_the_cpu_twin() {
    let Some(gpu) = sampler(1024, 4) else {
        return;
    };
    let mut g = rng(0x1e6d_7a45);
    // Small vocabularies carry most of the draws (the twin's CPU time); real sizes exercise the
    // radix paths and long rows.
    let plan: [(usize, usize, u64); 6] = [
        (7, 256, 150_000),
        (100, 512, 300_000),
        (1000, 512, 400_000),
        (4097, 256, 120_000),
        (32000, 128, 25_000),
        (128256, 64, 5_000),
    ];
    let batch_sizes = [1usize, 2, 3, 5, 17, 64, 100, 333, 1024];
    let (mut draws, mut gpu_vs_gpu, mut gpu_vs_twin) = (0u64, 0u64, 0u64);
    let mut compared_across_batches = 0u64;
    for (vocab, pool_size, target) in plan {
        let pool = requests(&mut g, pool_size, vocab);
        let mut first_seen: HashMap<(usize, bool), RowOutput> = HashMap::new();
        let mut done = 0u64;
        while done < target {
            let method = if g.random_bool(0.5) {
                DrawMethod::Gumbel
            } else {
                DrawMethod::InverseCdf
            };
            let opts = SampleOptions {
                method,
                top_n: 4.min(vocab),
                numerics: Numerics::Invariant,
            };
            let batch = *batch_sizes.choose(&mut g).unwrap();
            let picks: Vec<usize> = (0..batch).map(|_| g.random_range(0..pool.len())).collect();
            let mut logits = Vec::with_capacity(batch * vocab);
            let mut params = Vec::with_capacity(batch);
            for &i in &picks {
                logits.extend_from_slice(&pool[i].logits);
                params.push(pool[i].params);
            }
            let out = gpu
                .sample_host(&logits, vocab, &params, &opts)
                .expect("gpu sample");
            let twin: Vec<RowOutput> = picks
                .par_iter()
                .map(|&i| invariant::sample_row(&pool[i].logits[..], &pool[i].params, &opts))
                .collect();
            for ((&i, o), t) in picks.iter().zip(&out).zip(&twin) {
                if bits(o) != bits(t) {
                    gpu_vs_twin += 1;
                    if gpu_vs_twin <= 5 {
                        eprintln!(
                            "GPU vs twin: vocab {vocab} {:?} {method:?}\n  gpu  {o:?}\n  twin {t:?}",
                            pool[i].params
                        );
                    }
                }
                match first_seen.get(&(i, method == DrawMethod::Gumbel)) {
                    Some(seen) => {
                        compared_across_batches += 1;
                        if bits(seen) != bits(o) {
                            gpu_vs_gpu += 1;
                        }
                    }
                    None => {
                        first_seen.insert((i, method == DrawMethod::Gumbel), o.clone());
                    }
                }
            }
            done += batch as u64;
        }
        draws += done;
    }
    println!(
        "INVARIANT: {draws} draws; GPU vs CPU twin mismatches {gpu_vs_twin}; GPU vs GPU across \
         batch compositions {gpu_vs_gpu} of {compared_across_batches} repeats"
    );
    assert!(draws >= 1_000_000);
    assert_eq!(gpu_vs_twin, 0);
    assert_eq!(gpu_vs_gpu, 0);
}

#[test]
fn invariant_exp_and_log_bits_on_the_device_equal_the_twin() {
    let Some(gpu) = sampler(1, 1) else {
        return;
    };
    let mut x: Vec<f32> = (0..=u32::MAX).step_by(61).map(f32::from_bits).collect();
    let mut g = rng(0xe4e4);
    x.shuffle(&mut g);
    let (exp, log) = gpu.exact_math_probe(&x).expect("probe");
    let bad: Vec<(f32, f32, f32)> = x
        .par_iter()
        .zip(exp.par_iter().zip(&log))
        .filter(|(&x, (&e, &l))| {
            e.to_bits() != exact_exp(x).to_bits() || l.to_bits() != exact_log(x).to_bits()
        })
        .map(|(&x, (&e, &l))| (x, e, l))
        .collect();
    println!(
        "EXACT MATH: {} inputs, {} differ from the twin",
        x.len(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "first differences: {:?}",
        &bad[..bad.len().min(5)]
    );
}
