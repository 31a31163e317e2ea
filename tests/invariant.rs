//! The batch-invariant numerics (`Numerics::Invariant`): the kernels' own source, run through the
//! host SIMT shim, against the CPU twin — bit for bit, in every batch composition, block size and
//! thread schedule — and the twin's draws against the exact distribution.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::cpu::{final_distribution, invariant, sample_batch};
use batchsample::host_simt::sampler::sample_rows;
use batchsample::host_simt::Schedule;
use batchsample::{
    DrawMethod, Logit, Numerics, RowOutput, RowStatus, SampleOptions, SamplingParams,
};
use common::{chi_square, draws_needed, lm_like_row, random_params, rng, Filters};
use parity::batches::{mixed_batch, to_bf16, to_f16};
use rand::rngs::StdRng;
use rand::Rng;

fn invariant_opts(method: DrawMethod, top_n: usize) -> SampleOptions {
    SampleOptions {
        method,
        top_n,
        numerics: Numerics::Invariant,
    }
}

/// Asserts two results are the same bits: status, token, logprob and every top-n pair.
fn assert_same_bits(a: &RowOutput, b: &RowOutput, what: &str) {
    assert_eq!(a.status, b.status, "{what}: status");
    assert_eq!(a.token, b.token, "{what}: token");
    assert_eq!(
        a.logprob.to_bits(),
        b.logprob.to_bits(),
        "{what}: logprob {} vs {}",
        a.logprob,
        b.logprob
    );
    assert_eq!(
        a.top_logprobs.len(),
        b.top_logprobs.len(),
        "{what}: top-n length"
    );
    for (i, (x, y)) in a.top_logprobs.iter().zip(&b.top_logprobs).enumerate() {
        assert_eq!(x.token, y.token, "{what}: top-n {i} token");
        assert_eq!(
            x.logprob.to_bits(),
            y.logprob.to_bits(),
            "{what}: top-n {i} logprob"
        );
    }
}

/// A mixed batch plus the rows the shared generator does not make: top-k beyond the block size
/// (the radix path), subnormal and huge temperatures, and parameters only a device-side check
/// sees (an invalid top-p).
fn invariant_batch(g: &mut StdRng, batch: usize, vocab: usize) -> (Vec<f32>, Vec<SamplingParams>) {
    let (logits, mut params) = mixed_batch(g, batch, vocab);
    for p in params.iter_mut() {
        match g.random_range(0..40) {
            0 if vocab > 1100 => p.top_k = g.random_range(600..1100),
            1 => p.temperature = 1e-40,
            2 => p.temperature = 3e38,
            3 => p.top_p = 0.0,
            4 => p.top_p = g.random_range(0.999f32..1.0),
            _ => {}
        }
    }
    (logits, params)
}

/// Runs the invariant kernel in the shim and the twin on one batch and checks every row's bits;
/// returns the number of rows compared.
fn shim_matches_twin<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> usize {
    let shim = sample_rows(logits, vocab, params, opts, threads, schedule)
        .unwrap_or_else(|e| panic!("shim launch failed: {e}"));
    for (r, (row, out)) in logits.chunks(vocab).zip(&shim).enumerate() {
        let p = &params[if params.len() == 1 { 0 } else { r }];
        let twin = invariant::sample_row(row, p, opts);
        assert_same_bits(
            out,
            &twin,
            &format!("vocab {vocab} row {r} {p:?} {opts:?} {threads} threads"),
        );
    }
    shim.len()
}

#[test]
fn shim_kernel_equals_cpu_twin_bit_for_bit() {
    let mut g = rng(0x1a7a_71a7);
    let mut rows = 0;
    for &(vocab, batch) in &[
        (1usize, 8usize),
        (2, 16),
        (33, 32),
        (1000, 32),
        (4097, 24),
        (20000, 12),
        (50000, 6),
    ] {
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = invariant_opts(method, 5.min(vocab));
            let (logits, params) = invariant_batch(&mut g, batch, vocab);
            let threads =
                batchsample::host_simt::geometry::threads_for(vocab, batchsample::Dtype::F32);
            rows += shim_matches_twin(&logits, vocab, &params, &opts, threads, Schedule::Forward);
            rows += shim_matches_twin(
                &to_f16(&logits),
                vocab,
                &params,
                &opts,
                batchsample::host_simt::geometry::threads_for(vocab, batchsample::Dtype::F16),
                Schedule::Reverse,
            );
            rows += shim_matches_twin(
                &to_bf16(&logits),
                vocab,
                &params,
                &opts,
                batchsample::host_simt::geometry::threads_for(vocab, batchsample::Dtype::Bf16),
                Schedule::Random(vocab as u64),
            );
        }
    }
    eprintln!("{rows} rows: shim and twin identical");
}

/// Many small random batches: random sizes, vocabularies, draw methods, dtypes and top-n, every
/// row against the twin.
#[test]
fn random_batch_compositions_match_the_twin() {
    let mut g = rng(0xc0ff_ee42);
    let mut rows = 0;
    for round in 0..160u64 {
        let vocab = g.random_range(2..700usize);
        let batch = g.random_range(1..48usize);
        let method = if g.random_bool(0.5) {
            DrawMethod::Gumbel
        } else {
            DrawMethod::InverseCdf
        };
        let opts = invariant_opts(method, g.random_range(0..6usize).min(vocab));
        let (logits, params) = invariant_batch(&mut g, batch, vocab);
        let threads = [64u32, 128, 256, 512][g.random_range(0..4)];
        let schedule = Schedule::Random(round);
        rows += match round % 3 {
            0 => shim_matches_twin(&logits, vocab, &params, &opts, threads, schedule),
            1 => shim_matches_twin(&to_f16(&logits), vocab, &params, &opts, threads, schedule),
            _ => shim_matches_twin(&to_bf16(&logits), vocab, &params, &opts, threads, schedule),
        };
    }
    eprintln!("{rows} rows in 160 random batches: shim and twin identical");
}

/// One request's row, sampled inside batches of different sizes at different positions, with
/// different block sizes and schedules, and at several steps: every result has the same bits as
/// the row sampled alone.
#[test]
fn results_do_not_depend_on_batch_position_block_size_or_schedule() {
    let mut g = rng(0xba7c_4157);
    let vocab = 3000;
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = invariant_opts(method, 3);
        for filters in [Filters::TemperatureOnly, Filters::TopP, Filters::Combined] {
            let row = lm_like_row(&mut g, vocab);
            let p = random_params(&mut g, filters);
            let alone = invariant::sample_row(&row[..], &p, &opts);
            for (batch, position, threads, schedule) in [
                (1usize, 0usize, 64u32, Schedule::Forward),
                (5, 4, 128, Schedule::Reverse),
                (9, 3, 512, Schedule::Random(7)),
                (17, 0, 256, Schedule::Forward),
            ] {
                let (mut logits, mut params) = mixed_batch(&mut g, batch, vocab);
                logits[position * vocab..(position + 1) * vocab].copy_from_slice(&row);
                params[position] = p;
                let out = sample_rows(&logits, vocab, &params, &opts, threads, schedule).unwrap();
                assert_same_bits(
                    &out[position],
                    &alone,
                    &format!("{filters:?} {method:?}: batch {batch} position {position} {threads} threads"),
                );
            }
        }
    }
}

/// The invariant numerics sample the semantics' distribution: chi-square of the twin's draws
/// (the kernels' bits, as the tests above show) against the exact f64 distribution, for every
/// filter and both draw methods, at a fixed seed.
#[test]
fn invariant_draws_follow_the_exact_distribution() {
    let mut g = rng(0xc415_9a4e);
    let vocab = 400;
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        for filters in [
            Filters::TemperatureOnly,
            Filters::TopK,
            Filters::TopP,
            Filters::MinP,
            Filters::Combined,
        ] {
            let row = lm_like_row(&mut g, vocab);
            let p = random_params(&mut g, filters);
            let probs = final_distribution(&row, &p).expect("a sampleable row");
            let draws = draws_needed(&probs).clamp(20_000, 400_000);
            let params: Vec<SamplingParams> = (0..draws).map(|d| p.at_step(p.step + d)).collect();
            let mut counts = vec![0u64; vocab];
            let opts = invariant_opts(method, 0);
            for q in &params {
                let out = invariant::sample_row(&row[..], q, &opts);
                counts[out.token.expect("ok row") as usize] += 1;
            }
            for (t, &c) in counts.iter().enumerate() {
                assert!(
                    c == 0 || probs[t] > 0.0,
                    "{filters:?}: drew masked token {t}"
                );
            }
            let test = chi_square(&counts, &probs);
            assert!(test.fits(1e-3), "{filters:?} {method:?}: {test:?}");
        }
    }
}

/// The twin and the f64 reference implement the same semantics: on LM-like rows they pick the
/// same token almost always and their logprobs agree to f32 rounding.
#[test]
fn invariant_numerics_agree_with_the_f64_reference() {
    let mut g = rng(0x0f64_0f64);
    let vocab = 5000;
    let batch = 64;
    let mut logits = Vec::new();
    let mut params = Vec::new();
    for _ in 0..batch {
        logits.extend(lm_like_row(&mut g, vocab));
        params.push(random_params(&mut g, Filters::Any));
    }
    let mut same = 0;
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let fast = SampleOptions {
            method,
            top_n: 3,
            numerics: Numerics::Fast,
        };
        let exact = sample_batch(&logits, vocab, &params, &fast).unwrap();
        let twin = sample_batch(&logits, vocab, &params, &invariant_opts(method, 3)).unwrap();
        for (e, t) in exact.iter().zip(&twin) {
            assert_eq!(t.status, RowStatus::Ok);
            if e.token == t.token {
                same += 1;
                assert!(
                    (e.logprob - t.logprob).abs() < 1e-4 * (1.0 + e.logprob.abs()),
                    "{} vs {}",
                    e.logprob,
                    t.logprob
                );
            }
            for (x, y) in e.top_logprobs.iter().zip(&t.top_logprobs) {
                assert_eq!(x.token, y.token);
            }
        }
    }
    assert!(
        same >= 2 * batch - 2,
        "only {same} of {} tokens agree",
        2 * batch
    );
}
