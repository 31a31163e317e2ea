//! The one-read temperature-only draws (`stream_range` in kernels/stream.cuh for the Gumbel
//! draw, `stream_range_cdf` and kernels/stream_cdf.cuh for the inverse CDF), run through the
//! host SIMT shim: rows walked in several windows whose running maximum rises, falls behind,
//! starts masked or turns bad late, in the one-block and the split kernels, against the exact
//! reference and the exact distribution; and the unfiltered kernels (kernels/unfiltered.cuh),
//! which must give the general kernels' bits and refuse, row by row, what they cannot sample.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::host_simt::geometry::SamplerKernel;
use batchsample::host_simt::sampler::{sample_rows, sample_rows_unfiltered};
use batchsample::host_simt::split::{sample_rows_split, sample_rows_unfiltered_split};
use batchsample::host_simt::Schedule;
use batchsample::{
    BatchFilters, DrawMethod, Logit, RowOutput, RowStatus, SampleOptions, SamplingParams,
};
use common::{assert_shim_kernel_draws_fit, lm_like_row, rng, same_bits};
use parity::batches::{to_bf16, to_f16};
use parity::{check_parity, ParityReport};
use rand::Rng;

/// A stream window is 32 values a thread: 2048 tokens at 64 threads, so this row spans three
/// windows (2048, 2048, 904) at 64 threads and two at 128.
const VOCAB: usize = 5000;

/// Rows that stress the running maximum, each with its parameters, and what must hold of it.
fn window_rows() -> (Vec<f32>, Vec<SamplingParams>, Vec<&'static str>) {
    let mut g = rng(0x57_7ea);
    let mut rows: Vec<(Vec<f32>, f32, u32, &'static str)> = Vec::new();
    let ramp_up: Vec<f32> = (0..VOCAB).map(|i| i as f32 * 2e-3).collect();
    rows.push((ramp_up.clone(), 1.0, 0, "maximum rises in every window"));
    rows.push((
        ramp_up.iter().rev().copied().collect(),
        0.7,
        0,
        "maximum in the first window",
    ));
    let mut late_spike = lm_like_row(&mut g, VOCAB);
    let top = late_spike.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    late_spike[VOCAB - 3] = top + 4.0;
    late_spike[2100] = top + 2.0;
    rows.push((late_spike.clone(), 1.3, 0, "spikes in later windows"));
    let mut masked_start = lm_like_row(&mut g, VOCAB);
    masked_start[..4200].fill(f32::NEG_INFINITY);
    rows.push((masked_start, 1.0, 0, "first windows masked"));
    let mut lone = vec![f32::NEG_INFINITY; VOCAB];
    lone[2500] = 3.0;
    rows.push((lone, 0.9, 0, "one finite token, middle window"));
    let mut late_nan = lm_like_row(&mut g, VOCAB);
    late_nan[VOCAB - 1] = f32::NAN;
    rows.push((late_nan, 1.0, 0, "NaN in the last window"));
    let mut middle_inf = lm_like_row(&mut g, VOCAB);
    middle_inf[3000] = f32::INFINITY;
    rows.push((middle_inf, 1.0, 0, "+inf in a middle window"));
    rows.push((vec![f32::NEG_INFINITY; VOCAB], 1.0, 0, "every token masked"));
    let mut tied = lm_like_row(&mut g, VOCAB);
    let top = tied.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    tied[4500] = top + 1.0;
    tied[100] = top + 1.0;
    tied[2300] = top + 1.0;
    rows.push((tied.clone(), 0.0, 0, "greedy: maximum tied across windows"));
    rows.push((
        tied.clone(),
        1e-40,
        0,
        "subnormal temperature: tied maximum",
    ));
    // 1/T is finite here but log2(e)/T is not (the kernel's base-2 weights divide instead).
    rows.push((
        tied.clone(),
        3.5e-39,
        0,
        "subnormal temperature, finite 1/T: tied maximum",
    ));
    rows.push((tied, 1e-30, 0, "tiny temperature: tied maximum"));
    rows.push((lm_like_row(&mut g, VOCAB), 1e30, 0, "huge temperature"));
    rows.push((late_spike.clone(), 1.0, VOCAB as u32, "top-k = vocab"));
    rows.push((late_spike, 0.8, VOCAB as u32 + 7, "top-k above vocab"));
    for _ in 0..6 {
        let t = g.random_range(0.3..2.0);
        rows.push((lm_like_row(&mut g, VOCAB), t, 0, "LM-like"));
    }
    let mut logits = Vec::with_capacity(rows.len() * VOCAB);
    let mut params = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for (i, (row, temperature, top_k, label)) in rows.into_iter().enumerate() {
        logits.extend(row);
        params.push(SamplingParams {
            temperature,
            top_k,
            seed: 0xfeed + i as u64,
            step: 3 * i as u64,
            ..Default::default()
        });
        labels.push(label);
    }
    (logits, params, labels)
}

/// The tied-maximum rows must draw one of the tied tokens; bad rows fail with the right status.
fn check_window_row_facts(out: &[RowOutput], labels: &[&str]) {
    for (r, (o, label)) in out.iter().zip(labels).enumerate() {
        let context = format!("row {r} ({label}): {o:?}");
        if label.contains("tied maximum") {
            assert!(
                matches!(o.token, Some(100) | Some(2300) | Some(4500)),
                "{context}"
            );
        }
        if label.starts_with("greedy") {
            assert_eq!(o.token, Some(100), "{context}");
        }
        if label.starts_with("NaN") || label.starts_with("+inf") {
            assert_eq!(o.status, RowStatus::NonFiniteLogit, "{context}");
        }
        if *label == "every token masked" {
            assert_eq!(o.status, RowStatus::NoFiniteLogit, "{context}");
        }
        if label.starts_with("one finite token") {
            assert_eq!(o.token, Some(2500), "{context}");
            assert_eq!(o.logprob, 0.0, "{context}");
        }
    }
}

/// Both draws: no top-n, fast numerics, so every valid row streams.
fn streamed_options() -> [SampleOptions; 2] {
    [
        SampleOptions::default(),
        SampleOptions {
            method: DrawMethod::InverseCdf,
            ..SampleOptions::default()
        },
    ]
}

fn check_dtype<T: Logit>(logits: &[T], params: &[SamplingParams], labels: &[&str]) -> ParityReport {
    let mut total = ParityReport::default();
    for opts in streamed_options() {
        total.merge(check_dtype_with(logits, params, labels, &opts));
    }
    total
}

fn check_dtype_with<T: Logit>(
    logits: &[T],
    params: &[SamplingParams],
    labels: &[&str],
    opts: &SampleOptions,
) -> ParityReport {
    let opts = *opts;
    let mut total = ParityReport::default();
    for threads in [64u32, 128] {
        let runs: Vec<Vec<RowOutput>> = Schedule::all(threads as u64)
            .iter()
            .map(|&s| sample_rows(logits, VOCAB, params, &opts, threads, s).expect("launch"))
            .collect();
        assert!(
            runs.iter()
                .all(|r| r.iter().zip(&runs[0]).all(|(a, b)| same_bits(a, b))),
            "{threads} threads: the schedule changed a result"
        );
        check_window_row_facts(&runs[0], labels);
        total.merge(check_parity(logits, VOCAB, params, &opts, &runs[0], 2e-3));
        for splits in [2u32, 3] {
            let (split, arrivals) = sample_rows_split(
                logits,
                VOCAB,
                params,
                &opts,
                threads,
                splits,
                Schedule::Reverse,
            )
            .expect("split launch");
            assert!(arrivals.iter().all(|&a| a == 0), "{arrivals:?}");
            check_window_row_facts(&split, labels);
            total.merge(check_parity(logits, VOCAB, params, &opts, &split, 2e-3));
        }
    }
    total
}

#[test]
fn streamed_rows_match_the_reference_across_windows() {
    let (logits, params, labels) = window_rows();
    let mut total = ParityReport::default();
    total.merge(check_dtype(&logits, &params, &labels));
    total.merge(check_dtype(&to_f16(&logits), &params, &labels));
    total.merge(check_dtype(&to_bf16(&logits), &params, &labels));
    println!("streamed rows: {}", total.summary());
    total.assert_clean();
}

#[test]
fn streamed_draws_follow_the_exact_distribution() {
    // Spikes in each of the three windows (64 threads), rising: every window raises the running
    // maximum, so the mass and the best scores are rescaled twice per draw. Through the general
    // kernels and the unfiltered ones.
    let vocab = 4500;
    let mut g = rng(0xd157);
    let mut row = lm_like_row(&mut g, vocab);
    let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row[700] = top + 0.5;
    row[2900] = top + 1.0;
    row[4400] = top + 1.5;
    let p = SamplingParams {
        temperature: 1.7,
        seed: 0x5eed,
        step: 0,
        ..Default::default()
    };
    let (gumbel, inverse) = (DrawMethod::Gumbel, DrawMethod::InverseCdf);
    assert_shim_kernel_draws_fit(&row, &p, &[1, 2], SamplerKernel::General, gumbel);
    assert_shim_kernel_draws_fit(&row, &p, &[1, 3], SamplerKernel::Unfiltered, gumbel);
    // The general kernels run the same inverse-CDF functions (the bits test below).
    assert_shim_kernel_draws_fit(&row, &p, &[1, 3], SamplerKernel::Unfiltered, inverse);
}

/// The unfiltered kernels against the general ones on the same batch: every row the same bits,
/// one block and split, under every schedule; the split counters left at 0.
fn assert_unfiltered_bits<T: Logit>(logits: &[T], params: &[SamplingParams], opts: &SampleOptions) {
    for threads in [64u32, 128] {
        let general = sample_rows(logits, VOCAB, params, opts, threads, Schedule::Forward)
            .expect("general launch");
        for schedule in Schedule::all(threads as u64) {
            let light = sample_rows_unfiltered(logits, VOCAB, params, opts, threads, schedule)
                .expect("unfiltered launch");
            for (r, (a, b)) in light.iter().zip(&general).enumerate() {
                assert!(
                    same_bits(a, b),
                    "{threads} threads, row {r}: {a:?} vs {b:?}"
                );
            }
        }
        for splits in [2u32, 3] {
            let (general, _) = sample_rows_split(
                logits,
                VOCAB,
                params,
                opts,
                threads,
                splits,
                Schedule::Forward,
            )
            .expect("general split launch");
            let (light, arrivals) = sample_rows_unfiltered_split(
                logits,
                VOCAB,
                params,
                opts,
                threads,
                splits,
                Schedule::Random(splits as u64),
            )
            .expect("unfiltered split launch");
            assert!(arrivals.iter().all(|&a| a == 0), "{arrivals:?}");
            for (r, (a, b)) in light.iter().zip(&general).enumerate() {
                assert!(
                    same_bits(a, b),
                    "{threads} threads, {splits} slices, row {r}"
                );
            }
        }
    }
}

#[test]
fn unfiltered_kernels_give_the_general_kernels_bits() {
    let (logits, params, _) = window_rows();
    assert_eq!(BatchFilters::of(&params, VOCAB), BatchFilters::Unfiltered);
    for opts in streamed_options() {
        assert_unfiltered_bits(&logits, &params, &opts);
        assert_unfiltered_bits(&to_f16(&logits), &params, &opts);
        assert_unfiltered_bits(&to_bf16(&logits), &params, &opts);
    }
    // Greedy rows stream with either draw method.
    let greedy: Vec<SamplingParams> = params
        .iter()
        .map(|p| SamplingParams {
            temperature: 0.0,
            ..*p
        })
        .collect();
    let inverse = SampleOptions {
        method: DrawMethod::InverseCdf,
        ..SampleOptions::default()
    };
    assert_unfiltered_bits(&logits, &greedy, &inverse);
}

/// A batch the caller wrongly vouched for: the rows the unfiltered kernels cannot sample get
/// InvalidParams, each alone; every other row keeps the general kernels' bits.
#[test]
fn unfiltered_kernels_refuse_only_the_rows_they_cannot_sample() {
    let mut g = rng(0x0f17);
    let rows = 9;
    let logits: Vec<f32> = (0..rows).flat_map(|_| lm_like_row(&mut g, VOCAB)).collect();
    let plain = SamplingParams {
        temperature: 0.9,
        seed: 0xab,
        ..Default::default()
    };
    let params = vec![
        plain,
        SamplingParams { top_k: 50, ..plain },
        SamplingParams {
            temperature: 0.0,
            ..plain
        },
        SamplingParams {
            top_p: 0.9,
            ..plain
        },
        SamplingParams {
            min_p: 0.1,
            ..plain
        },
        SamplingParams {
            temperature: -1.0,
            ..plain
        },
        SamplingParams {
            top_p: f32::NAN,
            ..plain
        },
        SamplingParams {
            seed: 0xcd,
            ..plain
        },
        // Greedy: its filters never drop the argmax, so it streams.
        SamplingParams {
            temperature: 0.0,
            top_k: 50,
            top_p: 0.5,
            min_p: 0.2,
            ..plain
        },
    ];
    let refused = |p: &SamplingParams, opts: &SampleOptions| {
        let filtered = !p.is_unfiltered(VOCAB) || p.temperature < 0.0 || p.top_p.is_nan();
        filtered || opts.top_n > 0
    };
    let check = |opts: &SampleOptions, light: &[RowOutput], general: &[RowOutput], what: &str| {
        for (r, p) in params.iter().enumerate() {
            if refused(p, opts) {
                assert_eq!(light[r].status, RowStatus::InvalidParams, "{what}, row {r}");
                assert_eq!(light[r].token, None, "{what}, row {r}");
                assert!(light[r].top_logprobs.is_empty(), "{what}, row {r}");
            } else {
                assert!(same_bits(&light[r], &general[r]), "{what}, row {r}");
            }
        }
    };
    let inverse = SampleOptions {
        method: DrawMethod::InverseCdf,
        ..SampleOptions::default()
    };
    let top_n = SampleOptions {
        top_n: 3,
        ..SampleOptions::default()
    };
    for opts in [SampleOptions::default(), inverse, top_n] {
        let general =
            sample_rows(&logits, VOCAB, &params, &opts, 64, Schedule::Forward).expect("launch");
        let light = sample_rows_unfiltered(&logits, VOCAB, &params, &opts, 64, Schedule::Reverse)
            .expect("unfiltered launch");
        check(&opts, &light, &general, "one block");
        let (general, _) =
            sample_rows_split(&logits, VOCAB, &params, &opts, 64, 3, Schedule::Forward)
                .expect("split launch");
        let (light, arrivals) =
            sample_rows_unfiltered_split(&logits, VOCAB, &params, &opts, 64, 3, Schedule::Reverse)
                .expect("unfiltered split launch");
        assert!(arrivals.iter().all(|&a| a == 0), "{arrivals:?}");
        check(&opts, &light, &general, "3 slices");
    }
    // What the host vouches for: this batch has filters.
    assert_eq!(BatchFilters::of(&params, VOCAB), BatchFilters::Any);
    assert_eq!(
        BatchFilters::of(
            &[
                plain,
                SamplingParams {
                    top_k: VOCAB as u32,
                    ..plain
                }
            ],
            VOCAB
        ),
        BatchFilters::Unfiltered
    );
    assert_eq!(
        BatchFilters::of(&params[8..], VOCAB),
        BatchFilters::Unfiltered
    );
}

/// The inverse CDF streams a row while its stream windows fit the table (128 windows of 32
/// values a thread: 262144 tokens at 64 threads), and leaves longer rows to the general kernels'
/// ordered passes; the unfiltered kernels refuse those. Either way the draw matches the
/// reference.
#[test]
fn inverse_cdf_streams_rows_up_to_its_table() {
    let threads = 64u32;
    let capacity = 128 * 32 * threads as usize;
    let opts = SampleOptions {
        method: DrawMethod::InverseCdf,
        ..SampleOptions::default()
    };
    let mut g = rng(0xcdf);
    for vocab in [capacity, capacity + 8] {
        // The maximum in the last window, so every window is rescaled at the end.
        let mut row = lm_like_row(&mut g, vocab);
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row[vocab - 5] = top + 3.0;
        let params = vec![
            SamplingParams {
                temperature: 1.0,
                seed: 0x1,
                ..Default::default()
            },
            SamplingParams {
                temperature: 4.0,
                seed: 0x2,
                step: 9,
                ..Default::default()
            },
        ];
        let logits: Vec<f32> = params.iter().flat_map(|_| row.iter().copied()).collect();
        let general = sample_rows(&logits, vocab, &params, &opts, threads, Schedule::Forward)
            .expect("launch");
        let report = check_parity(&logits, vocab, &params, &opts, &general, 2e-3);
        println!("vocab {vocab}: {}", report.summary());
        report.assert_clean();
        let light =
            sample_rows_unfiltered(&logits, vocab, &params, &opts, threads, Schedule::Forward)
                .expect("unfiltered launch");
        for (r, (a, b)) in light.iter().zip(&general).enumerate() {
            if vocab <= capacity {
                assert!(same_bits(a, b), "vocab {vocab}, row {r}: {a:?} vs {b:?}");
            } else {
                assert_eq!(a.status, RowStatus::InvalidParams, "vocab {vocab}, row {r}");
            }
        }
    }
    assert_eq!(
        batchsample::host_simt::geometry::CDF_STREAM_MAX_VOCAB,
        128 * 32 * 512
    );
    let kernel = |vocab| {
        SamplerKernel::for_launch(
            BatchFilters::Unfiltered,
            batchsample::Numerics::Fast,
            DrawMethod::InverseCdf,
            0,
            vocab,
        )
    };
    assert_eq!(kernel(1 << 21), SamplerKernel::Unfiltered);
    assert_eq!(kernel((1 << 21) + 1), SamplerKernel::General);
}
