//! Logits processing in the kernels' own source, run on the CPU through the host SIMT shim
//! (kernels/processing.cuh): parity of processed rows with the exact reference, the invariant
//! kernels bit for bit with the invariant twin, processing off = the unprocessed bits, the split
//! kernels' processed rows = the one-block kernels', bad rows refused alone, the light families
//! refusing processed rows row by row, lists of length 0, 1 and 10^5, and chi-square of the
//! kernels' draws against the processed distribution (masked and banned tokens never drawn).
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::cpu::{final_distribution, sample_batch_processed};
use batchsample::host_simt::geometry::SamplerKernel;
use batchsample::host_simt::sampler::sample_rows_processed;
use batchsample::host_simt::Schedule;
use batchsample::processing::{
    bitmask_words, process_row, LogprobsMode, Penalties, Processing, ProcessingBuf, RowProcessing,
};
use batchsample::{
    DrawMethod, Logit, Numerics, RowOutput, RowStatus, SampleOptions, SamplingParams,
};
use common::*;
use parity::batches::{mixed_batch, to_bf16};
use parity::check_parity;
use parity::processed::{processed_batch, random_processing, reference_logits};
use rand::Rng;

fn opts(method: DrawMethod, numerics: Numerics) -> SampleOptions {
    SampleOptions {
        method,
        numerics,
        top_n: 4,
    }
}

#[allow(clippy::too_many_arguments)]
fn shim<T: Logit>(
    kernel: SamplerKernel,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    threads: u32,
    splits: u32,
) -> Vec<RowOutput> {
    sample_rows_processed(
        kernel,
        logits,
        vocab,
        params,
        processing,
        opts,
        threads,
        splits,
        Schedule::Forward,
    )
    .unwrap_or_else(|e| panic!("shim launch failed: {e}"))
}

fn assert_same_rows(
    a: &[RowOutput],
    b: &[RowOutput],
    rows: impl Iterator<Item = usize>,
    what: &str,
) {
    for r in rows {
        assert!(
            same_bits(&a[r], &b[r]),
            "{what}: row {r}: {:?} vs {:?}",
            a[r],
            b[r]
        );
    }
}

/// One launch of the general kernels on processed rows, checked against the exact reference;
/// returns the rows.
fn general_parity<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    threads: u32,
    label: &str,
) -> Vec<RowOutput> {
    let got = shim(
        SamplerKernel::General,
        logits,
        vocab,
        params,
        processing,
        opts,
        threads,
        1,
    );
    let reference = reference_logits(logits, vocab, processing);
    let report = check_parity(&reference, vocab, params, opts, &got, 2e-3);
    println!("{label}, {:?}: {}", T::DTYPE, report.summary());
    report.assert_clean();
    got
}

/// Processed rows through the general kernels (fast numerics) against the exact reference, f32
/// and bf16, both draw methods; the invariant kernels against the invariant twin bit for bit;
/// the split kernels' processed rows against the one-block kernels' bits.
fn processed_parity(vocab: usize, batch: usize, threads: u32, seed: u64) {
    let mut g = rng(seed);
    for masked in [false, true] {
        let (logits, params, buf) = processed_batch(&mut g, batch, vocab, masked);
        let processing = buf.view();
        let bf16_logits = to_bf16(&logits);
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let fast = opts(method, Numerics::Fast);
            let label = format!("vocab {vocab}, masked {masked}, {method:?}");
            let got = general_parity(&logits, vocab, &params, &processing, &fast, threads, &label);
            general_parity(
                &bf16_logits,
                vocab,
                &params,
                &processing,
                &fast,
                threads,
                &label,
            );

            let split = shim(
                SamplerKernel::General,
                &logits,
                vocab,
                &params,
                &processing,
                &fast,
                threads,
                3,
            );
            assert_same_rows(&got, &split, 0..batch, "split vs one-block");

            let invariant = opts(method, Numerics::Invariant);
            let got_inv = shim(
                SamplerKernel::General,
                &logits,
                vocab,
                &params,
                &processing,
                &invariant,
                threads,
                1,
            );
            let twin = sample_batch_processed(
                &logits,
                vocab,
                &params,
                &processing,
                LogprobsMode::Processed,
                &invariant,
            )
            .unwrap();
            assert_same_rows(&got_inv, &twin, 0..batch, "invariant kernel vs twin");
        }
    }
}

#[test]
fn shim_processed_rows_match_the_reference_at_vocab_300() {
    processed_parity(300, 24, 64, 0x9a0c_0001);
}

#[test]
fn shim_processed_rows_match_the_reference_at_vocab_4097() {
    processed_parity(4097, 12, 256, 0x9a0c_0002);
}

/// Processing whose every step is off (lists present but empty, penalties off, and penalties
/// without history) gives the unprocessed bits in every family; and in a batch where half the
/// rows are processed, the other half keep their unprocessed bits.
#[test]
fn shim_processing_off_changes_no_bit() {
    let mut g = rng(0x9a0c_0003);
    let (vocab, batch) = (700, 16);
    let (logits, params) = mixed_batch(&mut g, batch, vocab);
    let mut rows = vec![RowProcessing::default(); batch];
    rows[1].penalties = Penalties {
        repetition: 1.5,
        ..Penalties::OFF
    }; // no history: nothing to penalise
    rows[2].prompt_tokens = vec![3, 4]; // history with the penalties off
    let mut off = ProcessingBuf::from_rows(&rows, None);
    // Offsets present for every list, each row's lists empty.
    off.banned_offsets = vec![0; batch + 1];
    off.bias_offsets = vec![0; batch + 1];
    off.output_offsets = vec![0; batch + 1];
    let fast = opts(DrawMethod::Gumbel, Numerics::Fast);
    let none = Processing::NONE;
    for (numerics, splits) in [
        (Numerics::Fast, 1),
        (Numerics::Invariant, 1),
        (Numerics::Fast, 3),
    ] {
        let o = SampleOptions { numerics, ..fast };
        let plain = shim(
            SamplerKernel::General,
            &logits,
            vocab,
            &params,
            &none,
            &o,
            64,
            splits,
        );
        let with_off = shim(
            SamplerKernel::General,
            &logits,
            vocab,
            &params,
            &off.view(),
            &o,
            64,
            splits,
        );
        assert_same_rows(&plain, &with_off, 0..batch, "processing off");

        let half: Vec<RowProcessing> = (0..batch)
            .map(|r| {
                if r % 2 == 0 {
                    RowProcessing::default()
                } else {
                    random_processing(&mut g, vocab)
                }
            })
            .collect();
        let half = ProcessingBuf::from_rows(&half, None);
        let got = shim(
            SamplerKernel::General,
            &logits,
            vocab,
            &params,
            &half.view(),
            &o,
            64,
            splits,
        );
        assert_same_rows(
            &plain,
            &got,
            (0..batch).step_by(2),
            "unprocessed rows of a processed batch",
        );
    }
}

/// Rows whose processing the kernels cannot apply are refused alone (InvalidParams): a token
/// past the vocabulary, a NaN or +inf bias, a token biased twice, r <= 0, a non-finite f,
/// decreasing offsets; a raw NaN under the mask still fails its row (NonFiniteLogit), as does a
/// bias that overflows to +inf; a mask that allows no finite token gives NoFiniteLogit. Every
/// other row is sampled as it is alone.
#[test]
fn shim_bad_processed_rows_are_refused_alone() {
    let mut g = rng(0x9a0c_0004);
    let (vocab, batch) = (256, 12);
    let (mut logits, mut params) = mixed_batch(&mut g, batch, vocab);
    for p in params.iter_mut() {
        p.temperature = p.temperature.max(0.5);
    }
    for x in logits.iter_mut() {
        if !x.is_finite() {
            *x = 0.0;
        }
    }
    let mut rows: Vec<RowProcessing> = (0..batch)
        .map(|_| random_processing(&mut g, vocab))
        .collect();
    rows[1].banned_tokens = vec![vocab as u32];
    rows[2].logit_bias = vec![(5, f32::NAN)];
    rows[3].logit_bias = vec![(5, 1.0), (5, 2.0)];
    rows[4].penalties.repetition = 0.0;
    rows[4].output_tokens.push(1);
    rows[5].penalties.frequency = f32::INFINITY;
    rows[5].output_tokens.push(1);
    rows[6].logit_bias = vec![(9, f32::INFINITY)];
    // Row 7: a raw NaN at a masked token; row 8: a bias to +inf; row 9: nothing allowed.
    logits[7 * vocab + 10] = f32::NAN;
    rows[8].logit_bias = vec![(11, 3.0e38)];
    rows[8].banned_tokens.clear();
    logits[8 * vocab + 11] = 3.0e38;
    let mut mask = vec![-1i32; batch * bitmask_words(vocab)];
    let words = bitmask_words(vocab);
    mask[7 * words] &= !(1 << 10);
    mask[9 * words..10 * words].fill(0);
    // Row 11, the last: its prompt's offsets decrease (what a device-side writer could leave).
    rows[0].prompt_tokens.push(1);
    let mut buf = ProcessingBuf::from_rows(&rows, Some(mask));
    buf.prompt_offsets[batch] = buf.prompt_offsets[batch - 1] - 1;
    let processing = buf.view();
    use RowStatus::*;
    let want = [
        Ok,
        InvalidParams,
        InvalidParams,
        InvalidParams,
        InvalidParams,
        InvalidParams,
        InvalidParams,
        NonFiniteLogit,
        NonFiniteLogit,
        NoFiniteLogit,
        Ok,
        InvalidParams,
    ];
    for (numerics, splits) in [
        (Numerics::Fast, 1),
        (Numerics::Invariant, 1),
        (Numerics::Fast, 3),
    ] {
        let o = opts(DrawMethod::Gumbel, numerics);
        let got = shim(
            SamplerKernel::General,
            &logits,
            vocab,
            &params,
            &processing,
            &o,
            64,
            splits,
        );
        for (r, out) in got.iter().enumerate() {
            assert_eq!(
                out.status, want[r],
                "{numerics:?}, {splits} slice(s): row {r}"
            );
        }
        for r in [0usize, 10] {
            let alone = ProcessingBuf::from_rows(
                &rows[r..r + 1],
                Some(processing.bitmask.unwrap()[r * words..(r + 1) * words].to_vec()),
            );
            let one = shim(
                SamplerKernel::General,
                &logits[r * vocab..(r + 1) * vocab],
                vocab,
                &params[r..r + 1],
                &alone.view(),
                &o,
                64,
                splits,
            );
            assert!(
                same_bits(&one[0], &got[r]),
                "row {r} alone: {:?} vs {:?}",
                one[0],
                got[r]
            );
        }
    }
}

/// The unfiltered and collected kernels cannot apply processing: they refuse the processed rows
/// (InvalidParams) and give every other row its unprocessed bits.
#[test]
fn shim_light_families_refuse_processed_rows_row_by_row() {
    let mut g = rng(0x9a0c_0005);
    let (vocab, batch) = (900, 8);
    let logits: Vec<f32> = (0..batch)
        .flat_map(|_| lm_like_row(&mut g, vocab))
        .collect();
    let mut rows = vec![RowProcessing::default(); batch];
    rows[1].banned_tokens = vec![4];
    rows[3].output_tokens = vec![4, 4];
    rows[3].penalties.frequency = 0.5;
    rows[5].logit_bias = vec![(2, 1.0)];
    let buf = ProcessingBuf::from_rows(&rows, None);
    let unfiltered = vec![
        SamplingParams {
            temperature: 0.9,
            ..Default::default()
        };
        batch
    ];
    let small_k = vec![
        SamplingParams {
            temperature: 0.9,
            top_k: 20,
            ..Default::default()
        };
        batch
    ];
    let cases = [
        (
            SamplerKernel::Unfiltered,
            &unfiltered,
            DrawMethod::Gumbel,
            1,
        ),
        (
            SamplerKernel::Unfiltered,
            &unfiltered,
            DrawMethod::InverseCdf,
            1,
        ),
        (
            SamplerKernel::Unfiltered,
            &unfiltered,
            DrawMethod::Gumbel,
            3,
        ),
        (SamplerKernel::Collected, &small_k, DrawMethod::Gumbel, 1),
    ];
    for (kernel, params, method, splits) in cases {
        let o = SampleOptions {
            top_n: 0,
            ..opts(method, Numerics::Fast)
        };
        let plain = shim(
            kernel,
            &logits,
            vocab,
            params,
            &Processing::NONE,
            &o,
            64,
            splits,
        );
        let got = shim(kernel, &logits, vocab, params, &buf.view(), &o, 64, splits);
        for r in 0..batch {
            if r % 2 == 1 && r != 7 {
                assert_eq!(
                    got[r].status,
                    RowStatus::InvalidParams,
                    "{kernel:?} {splits}: row {r}"
                );
            } else {
                assert!(
                    same_bits(&plain[r], &got[r]),
                    "{kernel:?} {splits}: row {r}"
                );
            }
        }
    }
}

/// Lists of length 0, 1 and 10^5 on one row (an output of 10^5 tokens over a vocabulary of
/// 5000, so every token repeats): the reference's token and logprobs.
#[test]
fn shim_lists_of_length_0_1_and_100000() {
    let mut g = rng(0x9a0c_0006);
    let vocab = 5000;
    let logits: Vec<f32> = (0..3).flat_map(|_| lm_like_row(&mut g, vocab)).collect();
    let long: Vec<u32> = (0..100_000)
        .map(|_| g.random_range(0..vocab as u32))
        .collect();
    let rows = [
        RowProcessing {
            banned_tokens: vec![7],
            output_tokens: long.clone(),
            penalties: Penalties {
                repetition: 1.1,
                frequency: 0.01,
                presence: 0.5,
            },
            ..Default::default()
        },
        RowProcessing {
            prompt_tokens: long,
            logit_bias: vec![(3, 4.0)],
            penalties: Penalties {
                repetition: 1.3,
                ..Penalties::OFF
            },
            ..Default::default()
        },
        RowProcessing::default(),
    ];
    let buf = ProcessingBuf::from_rows(&rows, None);
    let params: Vec<SamplingParams> = (0..3)
        .map(|i| SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            seed: 40 + i,
            ..Default::default()
        })
        .collect();
    let o = opts(DrawMethod::Gumbel, Numerics::Fast);
    let got = shim(
        SamplerKernel::General,
        &logits,
        vocab,
        &params,
        &buf.view(),
        &o,
        256,
        1,
    );
    let reference = reference_logits(&logits, vocab, &buf.view());
    let report = check_parity(&reference, vocab, &params, &o, &got, 2e-3);
    println!("lists 0/1/1e5: {}", report.summary());
    report.assert_clean();
    assert_eq!(report.same, 3, "{}", report.summary());
}

/// The kernels' draws from a processed row follow the processed distribution (chi-square at a
/// fixed seed), for the fast and invariant numerics and both draw methods; no masked or banned
/// token is drawn.
#[test]
fn shim_processed_draws_fit_the_processed_distribution() {
    let mut g = rng(0x9a0c_0007);
    let vocab = 96;
    let raw = normal_row(&mut g, vocab, 1.0);
    let row = RowProcessing {
        banned_tokens: vec![0, 7],
        logit_bias: vec![(3, 2.5), (11, -1.0), (12, f32::NEG_INFINITY)],
        prompt_tokens: vec![1, 2, 3, 4, 5],
        output_tokens: vec![4, 4, 4, 6, 9, 9],
        penalties: Penalties {
            repetition: 1.3,
            frequency: 0.4,
            presence: 0.3,
        },
    };
    let mut mask = vec![-1i32; bitmask_words(vocab)];
    for t in (2..vocab).step_by(3).filter(|&t| t != 3) {
        mask[t / 32] &= !(1i32 << (t % 32));
    }
    let one = ProcessingBuf::from_rows(std::slice::from_ref(&row), Some(mask.clone()));
    let mut processed = Vec::new();
    process_row(&raw, &one.view().row(0, vocab), &mut processed);
    let params = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        seed: 77,
        ..Default::default()
    };
    let probs = final_distribution(&processed, &params).expect("a sampleable row");
    let draws = draws_needed(&probs).clamp(20_000, 40_000) as usize;
    for (method, numerics) in [
        (DrawMethod::Gumbel, Numerics::Fast),
        (DrawMethod::InverseCdf, Numerics::Fast),
        (DrawMethod::Gumbel, Numerics::Invariant),
    ] {
        let o = SampleOptions {
            top_n: 0,
            ..opts(method, numerics)
        };
        let counts = batched_draw_counts(&raw, &params, draws, |logits, steps| {
            let batch = steps.len();
            let masks = (0..batch).flat_map(|_| mask.iter().copied()).collect();
            let buf = ProcessingBuf::from_rows(&vec![row.clone(); batch], Some(masks));
            shim(
                SamplerKernel::General,
                logits,
                vocab,
                steps,
                &buf.view(),
                &o,
                64,
                1,
            )
        });
        for (t, &c) in counts.iter().enumerate() {
            if processed[t] == f32::NEG_INFINITY {
                assert_eq!(
                    c, 0,
                    "{method:?} {numerics:?}: token {t} is masked or banned"
                );
            }
        }
        let test = chi_square(&counts, &probs);
        assert!(test.fits(ALPHA), "{method:?} {numerics:?}: {test:?}");
    }
}
