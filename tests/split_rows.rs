//! The split-row kernels (`sample_rows_split_*`: several blocks per row for small batches), run
//! through the host SIMT shim: against the exact reference, against the one-block kernels for the
//! rows they hand to the ordinary path, independent of the order blocks finish in, leaving their
//! arrival counters at 0, and drawing from the exact distribution.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::host_simt::geometry::{split_count, threads_for};
use batchsample::host_simt::sampler::sample_rows;
use batchsample::host_simt::split::sample_rows_split;
use batchsample::host_simt::Schedule;
use batchsample::{DrawMethod, Logit, Numerics, RowOutput, SampleOptions, SamplingParams};
use common::{assert_shim_draws_fit, lm_like_row, random_params, rng, same_bits, Filters};
use parity::batches::{mixed_batch, to_bf16, to_f16};
use parity::{check_parity, ParityReport};
use rand::Rng;

/// The rows whose slices are summarised and combined (greedy, or temperature-only without top-n:
/// Gumbel, or the inverse CDF on rows whose stream windows fit its table — 128 windows of 32
/// values a thread; a top-k at or above the vocabulary keeps every token): `streamable` in
/// kernels/stream.cuh. Their sums round differently from one block's. Every other row is sampled
/// whole by one block, or (Gumbel with a top-k of at most 64) from the slices' top-k candidates
/// merged — the same candidates in the same order, so the one-block kernel's bits either way.
fn streamed(p: &SamplingParams, vocab: usize, threads: u32, opts: &SampleOptions) -> bool {
    let draw_streams =
        opts.method == DrawMethod::Gumbel || vocab.div_ceil(32 * threads as usize) <= 128;
    opts.top_n == 0
        && (p.temperature == 0.0
            || (draw_streams
                && (p.top_k == 0 || p.top_k as usize >= vocab)
                && p.top_p >= 1.0
                && p.min_p <= 0.0))
}

/// One batch through the split kernel under three schedules (they must agree bit for bit and
/// leave every counter at 0), its rows against the reference, and the rows it does not split
/// against the one-block kernel.
fn check_split<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    splits: u32,
) -> ParityReport {
    let threads = threads_for(vocab, T::DTYPE);
    let runs: Vec<Vec<RowOutput>> = Schedule::all(splits as u64 ^ vocab as u64)
        .iter()
        .map(|&s| {
            let (rows, arrivals) =
                sample_rows_split(logits, vocab, params, opts, threads, splits, s)
                    .unwrap_or_else(|e| panic!("split launch failed ({s:?}): {e}"));
            assert!(
                arrivals.iter().all(|&a| a == 0),
                "arrival counters left at {arrivals:?}"
            );
            rows
        })
        .collect();
    for run in &runs[1..] {
        for (r, (a, b)) in runs[0].iter().zip(run).enumerate() {
            assert!(
                same_bits(a, b),
                "row {r}: block order changed the result: {a:?} vs {b:?}"
            );
        }
    }
    let whole = sample_rows(logits, vocab, params, opts, threads, Schedule::Forward).unwrap();
    for (r, (split, one)) in runs[0].iter().zip(&whole).enumerate() {
        let p = &params[if params.len() == 1 { 0 } else { r }];
        if !streamed(p, vocab, threads, opts) {
            assert!(
                same_bits(split, one),
                "row {r} (not streamed) differs from the one-block kernel: {split:?} vs {one:?}"
            );
        }
    }
    check_parity(logits, vocab, params, opts, &runs[0], 2e-3)
}

/// A mixed batch where about half the rows are temperature-only or greedy (the split path).
fn split_batch(
    g: &mut rand::rngs::StdRng,
    batch: usize,
    vocab: usize,
) -> (Vec<f32>, Vec<SamplingParams>) {
    let (logits, mut params) = mixed_batch(g, batch, vocab);
    for p in params.iter_mut() {
        if g.random_bool(0.5) {
            p.top_k = 0;
            p.top_p = 1.0;
            p.min_p = 0.0;
        }
    }
    (logits, params)
}

#[test]
fn split_rows_match_the_reference_and_the_one_block_kernels() {
    let mut g = rng(0x5b11_7000);
    let mut total = ParityReport::default();
    for &(vocab, batch) in &[(1usize, 6usize), (33, 8), (4097, 8), (20000, 3)] {
        for &splits in &[2u32, 3, 7, 32] {
            for (method, top_n) in [
                (DrawMethod::Gumbel, 0usize),
                (DrawMethod::Gumbel, 2),
                (DrawMethod::InverseCdf, 0),
            ] {
                let opts = SampleOptions {
                    method,
                    top_n: top_n.min(vocab),
                    numerics: Numerics::Fast,
                };
                let (logits, params) = split_batch(&mut g, batch, vocab);
                let report = match splits % 3 {
                    0 => check_split(&logits, vocab, &params, &opts, splits),
                    1 => check_split(&to_f16(&logits), vocab, &params, &opts, splits),
                    _ => check_split(&to_bf16(&logits), vocab, &params, &opts, splits),
                };
                total.merge(report);
            }
        }
    }
    println!("split rows: {}", total.summary());
    total.assert_clean();
}

/// Temperature-only draws through the split path follow the exact distribution (chi-square at
/// alpha 1e-3): each of the batch's rows is the same request at a different step.
#[test]
fn split_draws_follow_the_exact_distribution() {
    let mut g = rng(0xc41_5b17);
    let vocab = 600;
    {
        let row = lm_like_row(&mut g, vocab);
        let p = random_params(&mut g, Filters::TemperatureOnly);
        assert_shim_draws_fit(&row, &p, &[5]);
    }
}

#[test]
fn split_count_fills_the_gpu_only_where_it_helps() {
    // H100: 132 SMs.
    assert_eq!(split_count(1, 128256, 132, Numerics::Fast), 31); // slices of >= 4096
    assert_eq!(split_count(1, 1_000_000, 132, Numerics::Fast), 32);
    assert_eq!(split_count(8, 128256, 132, Numerics::Fast), 16); // one wave of 128 blocks
    assert_eq!(split_count(64, 128256, 132, Numerics::Fast), 2); // not 5: three waves
                                                                 // 100 whole rows leave 32 SMs idle; 5 slices each run 4 waves of a fifth: 10 % shorter.
    assert_eq!(split_count(100, 128256, 132, Numerics::Fast), 5);
    assert_eq!(split_count(132, 128256, 132, Numerics::Fast), 1); // one full wave
    assert_eq!(split_count(256, 128256, 132, Numerics::Fast), 1); // 2: 4 waves of half + overhead
    assert_eq!(split_count(1024, 128256, 132, Numerics::Fast), 1);
    assert_eq!(split_count(1, 4000, 132, Numerics::Fast), 1);
    assert_eq!(split_count(1, 128256, 132, Numerics::Invariant), 1);
    assert_eq!(split_count(0, 128256, 132, Numerics::Fast), 1);
    // The unfiltered kernels: two blocks an SM, 264 slots on 132 SMs.
    assert_eq!(split_count(8, 128256, 264, Numerics::Fast), 31); // 248 blocks, one wave
    assert_eq!(split_count(64, 128256, 264, Numerics::Fast), 4); // 256 blocks, one wave
    assert_eq!(split_count(132, 128256, 264, Numerics::Fast), 2);
    assert_eq!(split_count(256, 128256, 264, Numerics::Fast), 1); // 256 rows, one wave
}
