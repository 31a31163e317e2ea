//! The CPU side of logits processing (`batchsample::processing`): each step against a
//! hand-computed case, the documented order, processing-off = unprocessed bits, validation, and
//! masked tokens never drawn. Kernels, CLI and bench modes are not built yet (issue 17).

mod common;

use batchsample::cpu::{processing_stages, sample_batch, sample_batch_processed};
use batchsample::processing::{
    bitmask_words, process_row, LogprobsMode, Penalties, Processing, ProcessingBuf, RowProcessing,
};
use batchsample::{Numerics, SampleError, SampleOptions, SamplingParams};
use common::*;

fn row_case() -> (Vec<f32>, ProcessingBuf) {
    let row = RowProcessing {
        banned_tokens: vec![1],
        logit_bias: vec![(2, 1.5), (5, f32::NEG_INFINITY)],
        prompt_tokens: vec![3],
        output_tokens: vec![4, 4, 2],
        penalties: Penalties {
            repetition: 2.0,
            frequency: 0.5,
            presence: 0.25,
        },
    };
    // Token 7 masked by the bitmask.
    let mask = vec![0b0111_1111];
    let buf = ProcessingBuf::from_rows(&[row], Some(mask));
    (vec![1.0, 2.0, -1.0, 3.0, -2.0, 0.5, 0.0, 4.0], buf)
}

#[test]
fn each_step_matches_a_hand_computed_row() {
    let (raw, buf) = row_case();
    let lists = buf.view().row(0, raw.len());
    let mut out = Vec::new();
    process_row(&raw, &lists, &mut out);
    let ninf = f32::NEG_INFINITY;
    // 2: (-1 + 1.5) = 0.5, in history: 0.5 / 2 = 0.25, output once: 0.25 - 0.5 - 0.25 = -0.5.
    // 3: prompt only: 3 / 2 = 1.5. 4: -2 * 2 = -4, output twice: -4 - 1 - 0.25 = -5.25.
    assert_eq!(out, vec![1.0, ninf, -0.5, 1.5, -5.25, ninf, 0.0, ninf]);
    let stages = processing_stages(&raw, &lists);
    assert_eq!(stages.after_bitmask[7], ninf);
    assert_eq!(stages.after_banned[1], ninf);
    assert_eq!(stages.after_bias[2], 0.5);
    assert_eq!(stages.after_penalties, out);
}

#[test]
fn bias_comes_before_the_penalties() {
    // x = -1, bias +2, r = 2: bias first gives 1 / 2 = 0.5; penalty first would give 0.
    let buf = ProcessingBuf::from_rows(
        &[RowProcessing {
            logit_bias: vec![(0, 2.0)],
            output_tokens: vec![0],
            penalties: Penalties {
                repetition: 2.0,
                ..Penalties::OFF
            },
            ..Default::default()
        }],
        None,
    );
    let mut out = Vec::new();
    process_row(&[-1.0f32, 0.0], &buf.view().row(0, 2), &mut out);
    assert_eq!(out[0], 0.5);
}

#[test]
fn repeats_count_for_frequency_not_for_repetition() {
    let buf = ProcessingBuf::from_rows(
        &[RowProcessing {
            output_tokens: vec![0, 0, 0],
            penalties: Penalties {
                repetition: 2.0,
                frequency: 1.0,
                presence: 0.0,
            },
            ..Default::default()
        }],
        None,
    );
    let mut out = Vec::new();
    process_row(&[8.0f32, 0.0], &buf.view().row(0, 2), &mut out);
    assert_eq!(out[0], 8.0 / 2.0 - 3.0);
}

#[test]
fn processing_off_is_the_unprocessed_bits() {
    let mut rng = rng(17);
    let vocab = 300;
    let logits: Vec<f32> = (0..6).flat_map(|_| lm_like_row(&mut rng, vocab)).collect();
    let params: Vec<SamplingParams> = (0..6)
        .map(|r| SamplingParams {
            temperature: [0.0, 0.7, 1.0][r % 3],
            top_k: [0, 20][r % 2],
            top_p: 0.9,
            seed: r as u64,
            ..Default::default()
        })
        .collect();
    // Every step present but doing nothing: an all-ones mask, empty lists, penalties off.
    let rows = vec![RowProcessing::default(); 6];
    let mut buf = ProcessingBuf::from_rows(&rows, Some(vec![-1; 6 * bitmask_words(vocab)]));
    buf.banned_offsets = vec![0; 7];
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        let opts = SampleOptions {
            numerics,
            top_n: 4,
            ..Default::default()
        };
        let plain = sample_batch(&logits, vocab, &params, &opts).unwrap();
        for processing in [Processing::NONE, buf.view()] {
            let processed = sample_batch_processed(
                &logits,
                vocab,
                &params,
                &processing,
                LogprobsMode::Processed,
                &opts,
            )
            .unwrap();
            assert!(plain.iter().zip(&processed).all(|(a, b)| same_bits(a, b)));
        }
    }
}

#[test]
fn masked_and_banned_tokens_are_never_drawn() {
    let vocab = 64;
    let mut rng = rng(3);
    let row = normal_row(&mut rng, vocab, 1.0);
    let batch = 2000;
    let logits: Vec<f32> = (0..batch).flat_map(|_| row.iter().copied()).collect();
    let params: Vec<SamplingParams> = (0..batch)
        .map(|d| SamplingParams {
            temperature: 1.5,
            step: d as u64,
            ..Default::default()
        })
        .collect();
    // Even tokens masked, token 1 banned, token 3 banned by a -inf bias.
    let rows = vec![
        RowProcessing {
            banned_tokens: vec![1],
            logit_bias: vec![(3, f32::NEG_INFINITY)],
            ..Default::default()
        };
        batch
    ];
    let mask = vec![0xAAAA_AAAAu32 as i32; batch * bitmask_words(vocab)];
    let buf = ProcessingBuf::from_rows(&rows, Some(mask));
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        let opts = SampleOptions {
            numerics,
            ..Default::default()
        };
        let out = sample_batch_processed(
            &logits,
            vocab,
            &params,
            &buf.view(),
            LogprobsMode::Raw,
            &opts,
        )
        .unwrap();
        for o in &out {
            let t = o.token.unwrap();
            assert!(t % 2 == 1 && t != 1 && t != 3, "drew {t}");
        }
    }
}

#[test]
fn bad_processing_names_the_row_and_field() {
    let vocab = 10;
    let logits = vec![0.0f32; 2 * vocab];
    let params = [SamplingParams::default()];
    let opts = SampleOptions::default();
    let run = |rows: Vec<RowProcessing>, mask: Option<Vec<i32>>| {
        let buf = ProcessingBuf::from_rows(&rows, mask);
        sample_batch_processed(
            &logits,
            vocab,
            &params,
            &buf.view(),
            LogprobsMode::Processed,
            &opts,
        )
    };
    let bad_row = |row: RowProcessing| vec![RowProcessing::default(), row];
    let field_of = |r: Result<_, SampleError>| match r {
        Err(SampleError::InvalidParam { row: 1, field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let cases: Vec<(RowProcessing, &str)> = vec![
        (
            RowProcessing {
                banned_tokens: vec![10],
                ..Default::default()
            },
            "banned_tokens",
        ),
        (
            RowProcessing {
                logit_bias: vec![(2, f32::NAN)],
                ..Default::default()
            },
            "logit_bias",
        ),
        (
            RowProcessing {
                logit_bias: vec![(2, 1.0), (2, 1.0)],
                ..Default::default()
            },
            "logit_bias",
        ),
        (
            RowProcessing {
                penalties: Penalties {
                    repetition: 0.0,
                    ..Penalties::OFF
                },
                ..Default::default()
            },
            "repetition_penalty",
        ),
        (
            RowProcessing {
                penalties: Penalties {
                    frequency: f32::INFINITY,
                    ..Penalties::OFF
                },
                ..Default::default()
            },
            "frequency_penalty",
        ),
    ];
    for (row, field) in cases {
        assert_eq!(field_of(run(bad_row(row), None)), field);
    }
    assert!(matches!(
        run(vec![RowProcessing::default(); 2], Some(vec![-1; 3])),
        Err(SampleError::Shape(_))
    ));
}
