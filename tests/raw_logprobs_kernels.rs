//! Raw logprobs in the kernels' own source, run on the CPU through the host SIMT shim: the
//! processed launch's draw, then a scored launch of the general kernels over the raw rows
//! (`SampleArgs::scored_tokens`), as `GpuSampler::sample_processed_on` runs them with
//! `LogprobsMode::Raw`. The invariant kernels equal the invariant twin bit for bit; the fast
//! kernels' logprobs and top-n match the exact reference's raw logprobs of the kernels' own
//! token; the draw is the processed launch's; refused rows keep the first launch's status with an
//! empty top-n; a token past the vocabulary is refused and the split kernels refuse scored
//! launches row by row.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::cpu::{raw_logprobs, sample_batch_processed, scan_row};
use batchsample::dtype::Dtype;
use batchsample::host_simt::geometry::{KernelKey, SamplerKernel};
use batchsample::host_simt::sampler::{
    run, sample_rows_processed, sample_rows_raw_logprobs, ShimLaunch, ShimParams,
};
use batchsample::host_simt::Schedule;
use batchsample::processing::{LogprobsMode, Processing};
use batchsample::{
    DrawMethod, Logit, Numerics, RowOutput, RowStatus, SampleOptions, SamplingParams,
};
use common::*;
use parity::batches::to_bf16;
use parity::processed::processed_batch;

const TOP_N: usize = 4;

fn opts(method: DrawMethod, numerics: Numerics) -> SampleOptions {
    SampleOptions {
        method,
        numerics,
        top_n: TOP_N,
    }
}

fn raw_shim<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    threads: u32,
) -> Vec<RowOutput> {
    sample_rows_raw_logprobs(
        logits,
        vocab,
        params,
        processing,
        opts,
        threads,
        Schedule::Forward,
    )
    .unwrap_or_else(|e| panic!("shim launch failed: {e}"))
}

/// The invariant kernels' raw logprobs are the twin's bits, and their draw is the processed
/// launch's; the fast kernels draw the processed launch's token and report the exact raw
/// logprobs of it within float tolerance, with the raw top-n's tokens exactly.
fn raw_parity<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    threads: u32,
) {
    let batch = params.len();
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let invariant = opts(method, Numerics::Invariant);
        let got = raw_shim(logits, vocab, params, processing, &invariant, threads);
        let twin = sample_batch_processed(
            logits,
            vocab,
            params,
            processing,
            LogprobsMode::Raw,
            &invariant,
        )
        .unwrap();
        for r in 0..batch {
            assert!(
                same_bits(&got[r], &twin[r]),
                "{:?} vocab {vocab} {method:?} row {r}: invariant kernels {:?} vs twin {:?}",
                T::DTYPE,
                got[r],
                twin[r]
            );
        }

        let fast = opts(method, Numerics::Fast);
        let got = raw_shim(logits, vocab, params, processing, &fast, threads);
        let drawn = sample_rows_processed(
            SamplerKernel::General,
            logits,
            vocab,
            params,
            processing,
            &fast,
            threads,
            1,
            Schedule::Forward,
        )
        .unwrap();
        let mut scored = 0;
        for (r, row) in logits.chunks(vocab).enumerate() {
            assert_eq!(
                (got[r].status, got[r].token),
                (drawn[r].status, drawn[r].token),
                "row {r}: the raw launch pair draws the processed launch's token"
            );
            let Some(token) = got[r].token else {
                assert!(
                    got[r].top_logprobs.is_empty(),
                    "row {r}: a refused row's top-n"
                );
                continue;
            };
            scored += 1;
            let scan = scan_row(row).expect("a row the processed launch drew from is finite");
            let (logprob, top) = raw_logprobs(row, &scan, token, TOP_N);
            let close = |a: f64, b: f64| (a - b).abs() <= 2e-3 * (1.0 + b.abs());
            assert!(
                close(got[r].logprob, logprob),
                "row {r}: raw logprob {} vs exact {logprob}",
                got[r].logprob
            );
            assert_eq!(
                got[r].top_logprobs.len(),
                top.len(),
                "row {r}: top-n length"
            );
            for (k, (a, b)) in got[r].top_logprobs.iter().zip(&top).enumerate() {
                assert!(
                    a.token == b.token && close(a.logprob, b.logprob),
                    "row {r}, rank {k}: {a:?} vs exact {b:?}"
                );
            }
        }
        assert!(scored > batch / 2, "most rows of the batch are scored");
    }
}

/// Processed batches (every kind of parameters, ties, failing rows, random lists; with and without
/// a bitmask) through the raw-logprobs launch pair.
fn raw_parity_at(vocab: usize, batch: usize, threads: u32, seed: u64, bf16_too: bool) {
    for masked in [false, true] {
        let mut g = rng(seed ^ masked as u64);
        let (logits, params, buf) = processed_batch(&mut g, batch, vocab, masked);
        let processing = buf.view();
        raw_parity(&logits, vocab, &params, &processing, threads);
        if bf16_too {
            raw_parity(&to_bf16(&logits), vocab, &params, &processing, threads);
        }
    }
}

#[test]
fn shim_raw_logprobs_match_the_twin_and_the_reference_at_vocab_300() {
    raw_parity_at(300, 24, 64, 0x7a10_0010, true);
}

#[test]
fn shim_raw_logprobs_match_the_twin_and_the_reference_at_vocab_4097() {
    raw_parity_at(4097, 12, 256, 0x7a10_0020, false);
}

/// A scored launch given tokens directly: a token past the vocabulary is refused, a negative one
/// leaves its row (checked by the shim), any other is scored, drawn or not; the split kernels
/// refuse every row of a scored launch.
#[test]
fn shim_scored_launches_refuse_what_they_cannot_score() {
    let mut g = rng(0x7a10_0003);
    let vocab = 500;
    let row = normal_row(&mut g, vocab, 2.0);
    let logits: Vec<f32> = row.iter().copied().cycle().take(4 * vocab).collect();
    let tokens = [0, vocab as i32 + 3, -1, 17];
    let fast = opts(DrawMethod::Gumbel, Numerics::Fast);
    let launch = |split: bool| {
        run(
            &ShimLaunch {
                key: KernelKey {
                    kernel: SamplerKernel::General,
                    numerics: Numerics::Fast,
                    draw: DrawMethod::Gumbel,
                    dtype: Dtype::F32,
                    split,
                },
                logits: &logits,
                batch: 4,
                vocab,
                row_stride: vocab,
                params: ShimParams::Packed(&[SamplingParams::default()]),
                top_stride: TOP_N,
                threads: 128,
                splits: if split { 3 } else { 1 },
                schedule: Schedule::Forward,
                processing: Processing::NONE,
                verify: None,
                scored: Some(&tokens),
            },
            &fast,
        )
        .unwrap()
        .rows
    };
    let got = launch(false);
    let scan = scan_row(&row).unwrap();
    for r in [0, 3] {
        let token = tokens[r] as u32;
        let (logprob, _) = raw_logprobs(&row, &scan, token, TOP_N);
        assert_eq!(got[r].status, RowStatus::Ok, "row {r}");
        assert_eq!(got[r].token, Some(token), "row {r}: the scored token");
        assert!((got[r].logprob - logprob).abs() < 2e-3, "row {r}");
    }
    assert_eq!(
        got[1].status,
        RowStatus::InvalidParams,
        "a token past the vocabulary"
    );
    for (r, row) in launch(true).iter().enumerate() {
        assert_eq!(
            row.status,
            RowStatus::InvalidParams,
            "split kernels, row {r}"
        );
    }
}
