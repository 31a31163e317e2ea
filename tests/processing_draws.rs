//! Draws from processed rows (`batchsample::processing`), on the CPU paths: chi-square against the
//! processed distribution for both numerics and both draw methods, masked and banned tokens never
//! drawn in 10^6 draws, lists of length 0, 1 and 10^5, raw logprobs, processing as an exact f32
//! step before the unprocessed sampler, and the lesson's two bugs on processed rows.

mod common;

use batchsample::cpu::{
    final_distribution, processing_stages, sample_batch, sample_batch_processed,
};
use batchsample::processing::{
    bitmask_words, process_row, LogprobsMode, Penalties, ProcessingBuf, RowProcessing,
};
use batchsample::{DrawMethod, Numerics, RowOutput, SampleOptions, SamplingParams};
use common::*;

/// One row's processing that uses every step: a mask, a ban, biases, and all three penalties
/// over a history with repeats.
fn every_step(vocab: usize) -> (RowProcessing, Vec<i32>) {
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
    // Every third token masked, except token 3 (biased up) stays allowed.
    let mut mask = vec![-1i32; bitmask_words(vocab)];
    for t in (2..vocab).step_by(3).filter(|&t| t != 3) {
        mask[t / 32] &= !(1i32 << (t % 32));
    }
    (row, mask)
}

/// `draws` copies of `raw` as one batch, row `d` at step `d` of `params`, sampled with `buf`'s
/// processing for every row (its lists given for one row, repeated).
fn processed_draws(
    raw: &[f32],
    row: &RowProcessing,
    mask: Option<&[i32]>,
    params: &SamplingParams,
    draws: usize,
    opts: &SampleOptions,
    logprobs: LogprobsMode,
) -> Vec<RowOutput> {
    let vocab = raw.len();
    let logits: Vec<f32> = (0..draws).flat_map(|_| raw.iter().copied()).collect();
    let params: Vec<SamplingParams> = (0..draws)
        .map(|d| params.at_step(params.step + d as u64))
        .collect();
    let masks: Option<Vec<i32>> =
        mask.map(|m| (0..draws).flat_map(|_| m.iter().copied()).collect());
    let buf = ProcessingBuf::from_rows(&vec![row.clone(); draws], masks);
    sample_batch_processed(&logits, vocab, &params, &buf.view(), logprobs, opts).unwrap()
}

fn counts(outputs: &[RowOutput], vocab: usize) -> Vec<u64> {
    let mut counts = vec![0u64; vocab];
    for o in outputs {
        counts[o.token.expect("a processed row with finite tokens draws") as usize] += 1;
    }
    counts
}

#[test]
fn processed_draws_fit_the_processed_distribution() {
    let vocab = 48;
    let mut rng = rng(1717);
    let raw = lm_like_row(&mut rng, vocab);
    let (row, mask) = every_step(vocab);
    let lists = ProcessingBuf::from_rows(std::slice::from_ref(&row), Some(mask.clone()));
    let processed = processing_stages(&raw, &lists.view().row(0, vocab)).after_penalties;
    let params = SamplingParams {
        temperature: 0.9,
        top_k: 20,
        top_p: 0.95,
        min_p: 0.01,
        seed: 99,
        ..Default::default()
    };
    let probs = final_distribution(&processed, &params).unwrap();
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = SampleOptions {
                numerics,
                method,
                ..Default::default()
            };
            let out = processed_draws(
                &raw,
                &row,
                Some(&mask),
                &params,
                40_000,
                &opts,
                LogprobsMode::Processed,
            );
            let fit = chi_square(&counts(&out, vocab), &probs);
            assert!(fit.fits(1e-3), "{numerics:?} {method:?}: {fit:?}");
        }
    }
}

#[test]
fn masked_and_banned_tokens_are_never_drawn_in_a_million_draws() {
    let vocab = 32;
    // The forbidden tokens hold the largest logits: any leak would be drawn often.
    let raw: Vec<f32> = (0..vocab)
        .map(|t| {
            if t % 4 == 0 {
                6.0
            } else {
                (t % 5) as f32 * 0.1
            }
        })
        .collect();
    let row = RowProcessing {
        banned_tokens: vec![1, 2],
        logit_bias: vec![(3, f32::NEG_INFINITY)],
        ..Default::default()
    };
    // Tokens 0 mod 4 masked.
    let mask = vec![!0x1111_1111u32 as i32];
    let params = SamplingParams {
        temperature: 2.0,
        ..Default::default()
    };
    let opts = SampleOptions::default();
    let mut total = vec![0u64; vocab];
    for round in 0..20u64 {
        let at = params.at_step(round * 50_000);
        let out = processed_draws(
            &raw,
            &row,
            Some(&mask),
            &at,
            50_000,
            &opts,
            LogprobsMode::Processed,
        );
        total
            .iter_mut()
            .zip(counts(&out, vocab))
            .for_each(|(a, b)| *a += b);
    }
    assert_eq!(total.iter().sum::<u64>(), 1_000_000);
    for t in (0..vocab).filter(|t| t % 4 == 0 || [1, 2, 3].contains(t)) {
        assert_eq!(total[t], 0, "token {t} drawn");
    }
}

#[test]
fn lists_of_length_zero_one_and_a_hundred_thousand() {
    let vocab = 1000;
    let mut rng = rng(5);
    let raw = lm_like_row(&mut rng, vocab);
    let long: Vec<u32> = (0..100_000u32).map(|i| (i * 7919 + i / 3) % 997).collect();
    let penalties = Penalties {
        repetition: 1.2,
        frequency: 0.01,
        presence: 0.5,
    };
    let rows = [
        RowProcessing {
            penalties,
            ..Default::default()
        },
        RowProcessing {
            banned_tokens: vec![5],
            logit_bias: vec![(6, 1.0)],
            prompt_tokens: vec![7],
            output_tokens: vec![8],
            penalties,
        },
        RowProcessing {
            banned_tokens: long
                .iter()
                .map(|t| t + 3)
                .filter(|t| t % 101 == 0)
                .collect(),
            logit_bias: (0..500).map(|t| (t * 2, 0.25)).collect(),
            prompt_tokens: long.clone(),
            output_tokens: long.iter().rev().copied().collect(),
            penalties,
        },
    ];
    let buf = ProcessingBuf::from_rows(&rows, None);
    let logits: Vec<f32> = (0..rows.len()).flat_map(|_| raw.iter().copied()).collect();
    let params = SamplingParams {
        temperature: 0.8,
        top_p: 0.9,
        seed: 3,
        ..Default::default()
    };
    let view = buf.view();
    for (r, spec) in rows.iter().enumerate() {
        let lists = view.row(r, vocab);
        assert_eq!(lists.output.len(), spec.output_tokens.len());
        // The sparse path and the dense per-stage path give the same bits.
        let mut sparse = Vec::new();
        process_row(&raw, &lists, &mut sparse);
        let dense = processing_stages(&raw, &lists).after_penalties;
        assert!(sparse
            .iter()
            .zip(&dense)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        if r == 0 {
            // No history: the penalties act on nothing.
            assert!(sparse
                .iter()
                .zip(&raw)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // Sampling the batch equals sampling each processed row unprocessed, bit for bit.
        for numerics in [Numerics::Fast, Numerics::Invariant] {
            let opts = SampleOptions {
                numerics,
                top_n: 3,
                ..Default::default()
            };
            let batch = sample_batch_processed(
                &logits,
                vocab,
                &[params],
                &view,
                LogprobsMode::Processed,
                &opts,
            )
            .unwrap();
            let alone = sample_batch(&sparse, vocab, &[params], &opts).unwrap();
            assert!(same_bits(&batch[r], &alone[0]), "row {r} {numerics:?}");
        }
    }
}

/// `log_softmax` of the raw row at temperature 1, in f64.
fn raw_log_softmax(raw: &[f32]) -> Vec<f64> {
    let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let norm: f64 = raw.iter().map(|&x| (x as f64 - max).exp()).sum();
    raw.iter().map(|&x| x as f64 - max - norm.ln()).collect()
}

#[test]
fn raw_logprobs_are_the_raw_log_softmax() {
    let vocab = 200;
    let mut rng = rng(23);
    let raw = lm_like_row(&mut rng, vocab);
    let (row, mask) = every_step(vocab);
    let params = SamplingParams {
        temperature: 0.7,
        top_k: 30,
        seed: 8,
        ..Default::default()
    };
    let expected = raw_log_softmax(&raw);
    let mut ranked: Vec<usize> = (0..vocab).collect();
    ranked.sort_by(|&a, &b| raw[b].total_cmp(&raw[a]).then(a.cmp(&b)));
    for (numerics, tolerance) in [(Numerics::Fast, 1e-12), (Numerics::Invariant, 1e-5)] {
        let opts = SampleOptions {
            numerics,
            top_n: 5,
            ..Default::default()
        };
        let raw_out = processed_draws(
            &raw,
            &row,
            Some(&mask),
            &params,
            50,
            &opts,
            LogprobsMode::Raw,
        );
        let processed_out = processed_draws(
            &raw,
            &row,
            Some(&mask),
            &params,
            50,
            &opts,
            LogprobsMode::Processed,
        );
        for (r, p) in raw_out.iter().zip(&processed_out) {
            // The same draw; only the reported distribution differs.
            assert_eq!(r.token, p.token);
            let t = r.token.unwrap() as usize;
            assert!((r.logprob - expected[t]).abs() < tolerance, "{numerics:?}");
            let tokens: Vec<usize> = r.top_logprobs.iter().map(|c| c.token as usize).collect();
            assert_eq!(
                tokens,
                ranked[..5],
                "{numerics:?}: raw top-n is the raw ranking"
            );
            for c in &r.top_logprobs {
                assert!((c.logprob - expected[c.token as usize]).abs() < tolerance);
            }
        }
    }
}

#[test]
fn the_lessons_bugs_stay_fixed_on_processed_rows() {
    // Temperature 0 is the argmax of the processed logits, at every step, not a draw at
    // temperature 1: the bias moves the argmax from token 0 to token 2.
    let raw = [3.0f32, 1.0, 2.0, 0.0];
    let row = RowProcessing {
        logit_bias: vec![(2, 1.5)],
        ..Default::default()
    };
    let greedy = SamplingParams {
        temperature: 0.0,
        ..Default::default()
    };
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        let opts = SampleOptions {
            numerics,
            ..Default::default()
        };
        let out = processed_draws(
            &raw,
            &row,
            None,
            &greedy,
            500,
            &opts,
            LogprobsMode::Processed,
        );
        assert!(out.iter().all(|o| o.token == Some(2) && o.logprob == 0.0));
    }
    // top-p keeps the token that crosses p: after the ban of token 0 the processed
    // probabilities are about (0.665, 0.245, 0.09) for tokens 2, 1, 3; p = 0.7 crosses at
    // token 1, which must be drawn, and token 3 never.
    let row = RowProcessing {
        banned_tokens: vec![0],
        ..Default::default()
    };
    let top_p = SamplingParams {
        temperature: 1.0,
        top_p: 0.7,
        seed: 4,
        ..Default::default()
    };
    let opts = SampleOptions::default();
    let out = processed_draws(
        &raw,
        &row,
        None,
        &top_p,
        4000,
        &opts,
        LogprobsMode::Processed,
    );
    let counts = counts(&out, raw.len());
    assert_eq!((counts[0], counts[3]), (0, 0));
    assert!(counts[1] > 0, "the crossing token is kept: {counts:?}");
    let probs = final_distribution(&[f32::NEG_INFINITY, 1.0, 2.0, 0.0], &top_p).unwrap();
    assert!(chi_square(&counts, &probs).fits(1e-3));
}
