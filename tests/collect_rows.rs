//! The one-read top-k collection (`collect_top_k` in kernels/collect.cuh), run through the host
//! SIMT shim: rows walked in many windows whose floor is set late, raised every window, trimmed,
//! or overwhelmed by ties (the two-read fallback), with top-p, min-p, top-n and both draws on top,
//! in both numerics and in split rows (a top k per slice, merged), against the exact reference,
//! the invariant CPU twin, the one-block kernel and the exact distribution.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::cpu::invariant;
use batchsample::host_simt::geometry::SamplerKernel;
use batchsample::host_simt::sampler::{collect_fallbacks, sample_rows, sample_rows_collected};
use batchsample::host_simt::split::sample_rows_split;
use batchsample::host_simt::Schedule;
use batchsample::{
    BatchFilters, DrawMethod, Logit, Numerics, RowOutput, RowStatus, SampleOptions, SamplingParams,
};
use common::{assert_shim_draws_fit, assert_shim_kernel_draws_fit, lm_like_row, rng, same_bits};
use parity::batches::{to_bf16, to_f16};
use parity::{check_parity, ParityReport};

/// A collection window is 32 values a thread: ten windows at 64 threads (2048 tokens each), five
/// at 128.
const VOCAB: usize = 20_000;

/// Rows that stress the floor, each with what must hold of it.
fn base_rows() -> Vec<(Vec<f32>, &'static str)> {
    let mut g = rng(0x0c01_1ec7);
    let mut rows = Vec::new();
    let ramp_up: Vec<f32> = (0..VOCAB).map(|i| i as f32 * 1e-3).collect();
    // Every window's tokens all pass the last floor: the first read overflows, the floor is
    // raised and the list trimmed every few windows.
    rows.push((ramp_up.clone(), "rising: floor raised every window"));
    rows.push((
        ramp_up.iter().rev().copied().collect(),
        "falling: top k in the first window",
    ));
    let mut late = lm_like_row(&mut g, VOCAB);
    let top = late.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for (i, at) in [19_990usize, 15_000, 9000, 2100].into_iter().enumerate() {
        late[at] = top + 4.0 - i as f32;
    }
    rows.push((late, "spikes in later windows"));
    // The row's top 24 one per thread in the window that sets the first floor (the second at 64
    // threads, whose first window fits whole; the first at 128), every dtype: the floor is then
    // exactly the row's k-th largest logit for k <= 24, and must collect it.
    let mut tight = lm_like_row(&mut g, VOCAB);
    let top = tight.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for t in 0..24 {
        tight[2048 + 8 * t] = top + 1.0 + 0.5 * t as f32;
    }
    rows.push((tight, "floor exactly the k-th"));
    let mut masked_start = lm_like_row(&mut g, VOCAB);
    masked_start[..9000].fill(f32::NEG_INFINITY);
    rows.push((masked_start, "first windows masked"));
    // A grammar mask: 30 allowed tokens, fewer than k. The floor never rises; every finite token
    // is a candidate and top-k keeps them all.
    let mut few = vec![f32::NEG_INFINITY; VOCAB];
    for i in 0..30 {
        few[i * 661 + 7] = (i % 7) as f32 * 0.5;
    }
    rows.push((few, "few finite: fewer than k"));
    // 1500 tokens tied just below 40 spikes: the k-th logit is the tie, which fits in shared
    // memory; rank order breaks it by index.
    let mut ties = lm_like_row(&mut g, VOCAB);
    let top = ties.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    ties[4000..5500].fill(top + 1.0);
    for i in 0..40 {
        ties[i * 487 + 11] = top + 2.0 + i as f32 * 0.01;
    }
    rows.push((ties, "ties at the floor"));
    // Every token tied: the floor is the tie and 20000 tokens reach it — too many for shared
    // memory, so the kernel falls back to the two-read path.
    rows.push((vec![0.25; VOCAB], "all tied: fallback"));
    let mut late_nan = lm_like_row(&mut g, VOCAB);
    late_nan[VOCAB - 2] = f32::NAN;
    rows.push((late_nan, "NaN in the last window"));
    let mut middle_inf = lm_like_row(&mut g, VOCAB);
    middle_inf[11_000] = f32::INFINITY;
    rows.push((middle_inf, "+inf in a middle window"));
    rows.push((vec![f32::NEG_INFINITY; VOCAB], "every token masked"));
    for _ in 0..3 {
        rows.push((lm_like_row(&mut g, VOCAB), "LM-like"));
    }
    rows
}

/// Parameter sets laid over every base row: top-k alone, with top-p, with top-p and min-p, the
/// smallest and the largest k the one-read path takes at 64 threads, and a k that the "floor
/// exactly the k-th" row makes tight.
fn param_sets() -> Vec<SamplingParams> {
    let base = SamplingParams {
        temperature: 0.8,
        top_k: 50,
        ..Default::default()
    };
    vec![
        base,
        SamplingParams { top_p: 0.9, ..base },
        SamplingParams {
            top_p: 0.9,
            min_p: 0.05,
            temperature: 1.3,
            ..base
        },
        SamplingParams { top_k: 1, ..base },
        SamplingParams { top_k: 20, ..base },
        SamplingParams {
            top_k: 64,
            top_p: 0.95,
            ..base
        },
    ]
}

fn batch() -> (Vec<f32>, Vec<SamplingParams>, Vec<&'static str>) {
    let mut logits = Vec::new();
    let mut params = Vec::new();
    let mut labels = Vec::new();
    for (row, label) in base_rows() {
        for (i, p) in param_sets().into_iter().enumerate() {
            logits.extend_from_slice(&row);
            params.push(SamplingParams {
                seed: 0xc0 + params.len() as u64,
                step: 7 * i as u64,
                ..p
            });
            labels.push(label);
        }
    }
    (logits, params, labels)
}

/// What must hold whatever the numerics: bad rows fail with their status, and every drawn token
/// is one of the top k in rank order (larger logit, then lower index) — on the tied rows, the
/// lowest indices of the tie.
fn check_row_facts<T: Logit>(
    logits: &[T],
    out: &[RowOutput],
    params: &[SamplingParams],
    labels: &[&str],
    what: &str,
) {
    for (r, ((o, p), label)) in out.iter().zip(params).zip(labels).enumerate() {
        let context = format!("{what}: row {r} ({label}, k {}): {o:?}", p.top_k);
        match *label {
            "NaN in the last window" | "+inf in a middle window" => {
                assert_eq!(o.status, RowStatus::NonFiniteLogit, "{context}")
            }
            "every token masked" => assert_eq!(o.status, RowStatus::NoFiniteLogit, "{context}"),
            _ => {
                let row: Vec<f32> = logits[r * VOCAB..(r + 1) * VOCAB]
                    .iter()
                    .map(|x| x.to_f32())
                    .collect();
                let mut order: Vec<usize> = (0..VOCAB).filter(|&i| row[i].is_finite()).collect();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                order.truncate(p.top_k as usize);
                let token = o.token.expect("an ok row") as usize;
                assert!(order.contains(&token), "{context}: not in the top k");
            }
        }
    }
}

fn options(method: DrawMethod, top_n: usize, numerics: Numerics) -> SampleOptions {
    SampleOptions {
        method,
        top_n,
        numerics,
    }
}

/// Runs the one-block kernel and checks that only the rows built to overflow shared memory left
/// the one-read path. (The other test here samples rows that never overflow: a count it added
/// would be a failure too.)
fn launch<T: Logit>(
    logits: &[T],
    params: &[SamplingParams],
    labels: &[&str],
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> Vec<RowOutput> {
    let before = collect_fallbacks();
    let out = sample_rows(logits, VOCAB, params, opts, threads, schedule).expect("launch");
    let expected = labels
        .iter()
        .filter(|l| **l == "all tied: fallback")
        .count() as u64;
    assert_eq!(
        collect_fallbacks() - before,
        expected,
        "{threads} threads, {opts:?}: rows that took the two-read path"
    );
    out
}

fn check_dtype<T: Logit>(logits: &[T], params: &[SamplingParams], labels: &[&str]) -> ParityReport {
    let mut total = ParityReport::default();
    for threads in [64u32, 128] {
        for (method, top_n) in [(DrawMethod::Gumbel, 0), (DrawMethod::InverseCdf, 5)] {
            let fast = options(method, top_n, Numerics::Fast);
            let schedules = if top_n == 0 {
                Schedule::all(threads as u64).to_vec()
            } else {
                vec![Schedule::Reverse]
            };
            let runs: Vec<Vec<RowOutput>> = schedules
                .iter()
                .map(|&s| launch(logits, params, labels, &fast, threads, s))
                .collect();
            let what = format!("{threads} threads, {fast:?}");
            assert!(
                runs.iter()
                    .all(|r| r.iter().zip(&runs[0]).all(|(a, b)| same_bits(a, b))),
                "{what}: the schedule changed a result"
            );
            check_row_facts(logits, &runs[0], params, labels, &what);
            total.merge(check_parity(logits, VOCAB, params, &fast, &runs[0], 2e-3));

            // Split rows: each slice collects its own top k, the last block merges them (or
            // samples the row whole when a slice overflowed): the one-block kernel's bits.
            for splits in [3u32, 7] {
                let before = collect_fallbacks();
                let (split, arrivals) = sample_rows_split(
                    logits,
                    VOCAB,
                    params,
                    &fast,
                    threads,
                    splits,
                    Schedule::Random(splits as u64),
                )
                .expect("split launch");
                assert!(arrivals.iter().all(|&a| a == 0), "{arrivals:?}");
                // Only the all-tied rows overflow: in every slice and then whole in the last
                // block (Gumbel, split per slice), or whole in the first block (inverse CDF).
                let tied = labels
                    .iter()
                    .filter(|l| **l == "all tied: fallback")
                    .count() as u64;
                let per_row = if method == DrawMethod::Gumbel {
                    splits as u64 + 1
                } else {
                    1
                };
                assert_eq!(
                    collect_fallbacks() - before,
                    tied * per_row,
                    "{what}, {splits} slices: rows that took the two-read path"
                );
                for (r, (a, b)) in split.iter().zip(&runs[0]).enumerate() {
                    assert!(
                        same_bits(a, b),
                        "{what}, {splits} slices: row {r} ({}): {a:?} vs one block {b:?}",
                        labels[r]
                    );
                }
            }

            // The invariant kernels take the same path and must stay their twin's bits.
            let exact = options(method, top_n, Numerics::Invariant);
            let shim = launch(logits, params, labels, &exact, threads, Schedule::Forward);
            let what = format!("{threads} threads, {exact:?}");
            check_row_facts(logits, &shim, params, labels, &what);
            for (r, (row, out)) in logits.chunks(VOCAB).zip(&shim).enumerate() {
                let twin = invariant::sample_row(row, &params[r], &exact);
                assert!(
                    same_bits(out, &twin),
                    "{what}: row {r} ({}): {out:?} vs twin {twin:?}",
                    labels[r]
                );
            }
        }
    }
    total
}

#[test]
fn collected_rows_match_the_reference_and_the_twin() {
    let (logits, params, labels) = batch();
    let mut total = ParityReport::default();
    total.merge(check_dtype(&logits, &params, &labels));
    total.merge(check_dtype(&to_f16(&logits), &params, &labels));
    total.merge(check_dtype(&to_bf16(&logits), &params, &labels));
    println!("collected rows: {}", total.summary());
    total.assert_clean();
}

#[test]
fn collected_draws_follow_the_exact_distribution() {
    // The top 50 spread over the whole row (three windows at 64 threads; one a slice in three
    // slices) and rising towards its end: top-k 40 and top-p cut inside the collected list.
    let vocab = 6000;
    let mut g = rng(0xd1ce);
    let mut row = lm_like_row(&mut g, vocab);
    let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for i in 0..50 {
        row[i * 119 + 5] = top - 3.0 + i as f32 * 0.08;
    }
    let p = SamplingParams {
        temperature: 1.1,
        top_k: 40,
        top_p: 0.97,
        seed: 0x5eed,
        step: 0,
        ..Default::default()
    };
    assert_shim_draws_fit(&row, &p, &[1, 3]);
    assert_shim_kernel_draws_fit(&row, &p, &[1], SamplerKernel::Collected, DrawMethod::Gumbel);
}

/// The collected kernels (kernels/collected.cuh: small top-k and greedy rows, two row blocks an
/// SM) on every row and parameter set above, with greedy rows among them: the general one-block
/// kernel's bits, every schedule, with and without top-n; only the all-tied rows leave the
/// one-read path. Rows they cannot serve — top-p alone, a top-k of 65, temperature-only, invalid
/// parameters, or any row under the inverse CDF — get InvalidParams, and the others keep their
/// bits.
fn check_collected<T: Logit>(logits: &[T], params: &[SamplingParams], labels: &[&str]) {
    // Sampled all-tied rows (greedy rows collect nothing).
    let tied = labels
        .iter()
        .zip(params)
        .filter(|(l, p)| **l == "all tied: fallback" && p.temperature > 0.0)
        .count() as u64;
    for threads in [64u32, 128] {
        for top_n in [0usize, 5] {
            let opts = options(DrawMethod::Gumbel, top_n, Numerics::Fast);
            let general = sample_rows(logits, VOCAB, params, &opts, threads, Schedule::Forward)
                .expect("launch");
            let schedules = if top_n == 0 {
                Schedule::all(threads as u64).to_vec()
            } else {
                vec![Schedule::Reverse]
            };
            for schedule in schedules {
                let before = collect_fallbacks();
                let collected =
                    sample_rows_collected(logits, VOCAB, params, &opts, threads, schedule)
                        .expect("launch");
                assert_eq!(
                    collect_fallbacks() - before,
                    tied,
                    "{threads} threads, {schedule:?}: rows that left the one-read path"
                );
                for (r, (a, b)) in collected.iter().zip(&general).enumerate() {
                    assert!(
                        same_bits(a, b),
                        "{threads} threads, top-n {top_n}, {schedule:?}: row {r} ({}, {:?}): \
                         collected {a:?} vs general {b:?}",
                        labels[r],
                        params[r]
                    );
                }
            }
        }
    }

    // Rows the collected kernels refuse, among rows they serve.
    let mut mixed = params.to_vec();
    let refused = [1usize, 4, 9, 16, 25];
    mixed[1] = SamplingParams {
        top_k: 0,
        top_p: 0.9,
        ..mixed[1]
    };
    mixed[4].top_k = 65;
    mixed[9] = SamplingParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..mixed[9]
    };
    mixed[16].temperature = -1.0;
    mixed[25].top_k = 0;
    mixed[25].min_p = 0.1;
    assert_eq!(BatchFilters::of(&mixed, VOCAB), BatchFilters::Any);
    let opts = options(DrawMethod::Gumbel, 5, Numerics::Fast);
    let general = sample_rows(logits, VOCAB, &mixed, &opts, 64, Schedule::Forward).expect("launch");
    let collected = sample_rows_collected(logits, VOCAB, &mixed, &opts, 64, Schedule::Random(5))
        .expect("launch");
    for (r, (a, b)) in collected.iter().zip(&general).enumerate() {
        if refused.contains(&r) {
            assert_eq!(a.status, RowStatus::InvalidParams, "row {r}: {a:?}");
            assert!(
                a.token.is_none() && a.top_logprobs.is_empty(),
                "row {r}: {a:?}"
            );
        } else {
            assert!(same_bits(a, b), "row {r}: collected {a:?} vs general {b:?}");
        }
    }
    // The inverse CDF: every row refused.
    let inverse = options(DrawMethod::InverseCdf, 0, Numerics::Fast);
    let sampled = sample_rows_collected(logits, VOCAB, params, &inverse, 64, Schedule::Forward)
        .expect("launch");
    for (r, o) in sampled.iter().enumerate() {
        let want = if params[r].temperature == 0.0 {
            general[r].status
        } else {
            RowStatus::InvalidParams
        };
        assert_eq!(o.status, want, "row {r}: {o:?}");
    }
}

#[test]
fn collected_kernels_give_the_general_kernels_bits() {
    let (logits, mut params, labels) = batch();
    // Greedy rows among the sampled ones (their top-k is ignored).
    for p in params.iter_mut().skip(3).step_by(7) {
        p.temperature = 0.0;
    }
    assert_eq!(BatchFilters::of(&params, VOCAB), BatchFilters::SmallTopK);
    check_collected(&logits, &params, &labels);
    check_collected(&to_f16(&logits), &params, &labels);
    check_collected(&to_bf16(&logits), &params, &labels);
}
