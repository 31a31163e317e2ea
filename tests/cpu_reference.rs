//! Statistical and edge-case tests of the exact CPU reference (`batchsample::cpu`), against the
//! written semantics in `src/lib.rs` and the independent dense implementation
//! (`cpu::final_distribution`).
//!
//! Every test is deterministic (seeded rows, Philox draws keyed by seed and step). The
//! goodness-of-fit tests use Pearson's chi-square at significance `ALPHA = 1e-3` with as many
//! draws as `common::draws_needed` computes for 99 % power against a 5 % token drawn 1
//! percentage point too often; `chi_square_detects_*` show that the test does reject wrong
//! distributions, down to a 1 % relative error in a 5 % token.

mod common;

use batchsample::cpu::{final_distribution, kept_set, sample_batch, sample_row, scan_row, KeptSet};
use batchsample::{DrawMethod, RowOutput, RowStatus, SampleError, SampleOptions, SamplingParams};
use common::*;
use half::{bf16, f16};
use rand::Rng;

const METHODS: [DrawMethod; 2] = [DrawMethod::Gumbel, DrawMethod::InverseCdf];

fn opts(method: DrawMethod, top_n: usize) -> SampleOptions {
    SampleOptions {
        method,
        top_n,
        ..Default::default()
    }
}

fn dense(row: &[f32], p: &SamplingParams) -> Vec<f64> {
    final_distribution(row, p).expect("a valid row has a final distribution")
}

fn finite_tokens(row: &[f32]) -> Vec<u32> {
    (0..row.len() as u32)
        .filter(|&i| row[i as usize] != f32::NEG_INFINITY)
        .collect()
}

/// The greedy token of a row: the lowest index of the maximum.
fn argmax(row: &[f32]) -> u32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    row.iter().position(|&x| x == max).unwrap() as u32
}

/// Logits whose softmax at temperature 1 is `probs` (up to f32 rounding).
fn logits_of(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

/// Draws enough tokens for `draws_needed` and asserts the chi-square fit to the dense final
/// distribution, for both draw methods. Returns the number of cells' degrees of freedom.
fn assert_fits(label: &str, row: &[f32], p: &SamplingParams) -> usize {
    let probs = dense(row, p);
    let n = draws_needed(&probs);
    let mut df = 0;
    for method in METHODS {
        let counts = draw_counts(row, p, method, n);
        let cs = chi_square(&counts, &probs);
        assert!(
            cs.fits(ALPHA),
            "{label}, {method:?}, {p:?}: {cs:?} (vocab {}, {} kept)",
            row.len(),
            support(&probs).len()
        );
        df = cs.df;
    }
    df
}

/// Random parameters with the given filters that leave at least 3 tokens and, when a filter is
/// on, actually remove some (so the filter is exercised).
fn active_params(rng: &mut rand::rngs::StdRng, row: &[f32], filters: Filters) -> SamplingParams {
    let finite = finite_tokens(row).len();
    for _ in 0..10_000 {
        let p = random_params(rng, filters);
        let kept = kept_tokens(row, &p).unwrap().len();
        if kept >= 3 && (filters == Filters::TemperatureOnly || kept < finite) {
            return p;
        }
    }
    panic!("no parameters with an active {filters:?} filter for this row");
}

/// The chi-square battery for one filter mode: a small flat row, an LM-like row with masked
/// tokens and, where the kept set is small enough to draw fast, a large bf16-rounded LM-like row.
fn goodness_of_fit(filters: Filters, seed: u64) {
    let mut r = rng(seed);
    let mut rows = vec![normal_row(&mut r, 50, 1.5)];
    let mut lm = lm_like_row(&mut r, 400);
    let masked = mask_some(&mut r, &mut lm, 0.1, 50);
    assert!(!masked.is_empty());
    rows.push(lm);
    if matches!(filters, Filters::TopK | Filters::Combined) {
        rows.push(bf16_rounded(&lm_like_row(&mut r, 4096)));
    }
    for (i, row) in rows.iter().enumerate() {
        let p = active_params(&mut r, row, filters);
        let df = assert_fits(&format!("{filters:?} row {i}"), row, &p);
        assert!(
            df >= 2,
            "{filters:?} row {i}: a degenerate distribution tests nothing"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The chi-square machinery itself
// ---------------------------------------------------------------------------------------------

#[test]
fn chi_square_p_values_match_known_values() {
    // Tabulated quantiles: chi2(1) 0.95 -> 3.841459, chi2(20) 0.999 -> 45.31475,
    // chi2(100) 0.95 -> 124.3421; closed form: df 2 -> exp(-x/2). (statrs computes the
    // survival function; these pin that we call it with the right parameters.)
    assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-12);
    assert!((chi2_sf(45.314_746_618_125_86, 20.0) - 1e-3).abs() < 1e-12);
    assert!((chi2_sf(124.342_113_404_7, 100.0) - 0.05).abs() < 1e-9);
    for x in [0.1, 1.0, 2.0, 7.5, 40.0] {
        assert!((chi2_sf(x, 2.0) - (-x / 2.0f64).exp()).abs() < 1e-14, "{x}");
    }
    assert!((chi2_critical(1e-3, 1.0) - 10.827_566_170_662_733).abs() < 1e-9);
    assert_eq!(chi2_sf(0.0, 5.0), 1.0);
}

/// The draw counts the battery uses, from the power calculation in `common::draws_needed`.
/// df 1: λ ≈ 29.4 → 15k draws; df 20: λ ≈ 58.7 → 30k; df 100: λ ≈ 102 → 52k; df 200 (the most
/// the pooling allows is ~2/MIN_CELL_MASS = 400 cells): λ ≈ 135 → 68k.
#[test]
fn draw_count_examples() {
    let two_cells = [0.95, 0.05];
    assert_eq!(draws_needed(&two_cells), 15_000);
    let flat: Vec<f64> = vec![1.0 / 21.0; 21]; // 21 cells, df 20
    assert_eq!(draws_needed(&flat), 30_000);
    // The approximation reproduces a direct check: at that many draws the power is >= 99 %.
    assert!(chi2_power(20.0, 30_000.0 * 0.002, ALPHA) >= POWER);
    assert!(chi2_power(20.0, 25_000.0 * 0.002, ALPHA) < POWER);
}

/// The test can fail: the counts of a correct sampler are rejected when compared with a
/// distribution that draws a 5 % token 1 percentage point more often, and with the
/// distribution before a top-k filter.
#[test]
fn chi_square_detects_a_one_point_error_in_a_five_percent_token() {
    let truth = [0.40, 0.25, 0.15, 0.10, 0.05, 0.05];
    let row = logits_of(&truth);
    let p = SamplingParams {
        seed: 11,
        ..SamplingParams::default()
    };
    let probs = dense(&row, &p);
    let mut wrong = probs.clone();
    wrong[4] += ERROR_SHIFT;
    wrong[0] -= ERROR_SHIFT;
    let n = draws_needed(&probs);
    let top3 = SamplingParams { top_k: 3, ..p };
    for method in METHODS {
        let counts = draw_counts(&row, &p, method, n);
        let good = chi_square(&counts, &probs);
        let bad = chi_square(&counts, &wrong);
        assert!(good.fits(ALPHA), "{method:?}: {good:?}");
        assert!(
            !bad.fits(ALPHA),
            "{method:?}: a 1-point error passed: {bad:?}"
        );
        // Filtered draws tested against the unfiltered distribution.
        let counts = draw_counts(&row, &top3, method, n);
        assert!(chi_square(&counts, &dense(&row, &top3)).fits(ALPHA));
        assert!(!chi_square(&counts, &probs).fits(ALPHA));
    }
    // A token with probability 0 that is drawn fails the test by itself.
    let mut counts = vec![0u64; 3];
    counts[0] = 1000;
    counts[2] = 1;
    assert!(!chi_square(&counts, &[1.0, 0.0, 0.0]).fits(ALPHA));
}

/// The stronger claim, on a small row where draws are cheap: a 1 % *relative* error in a 5 %
/// token (5.05 % instead of 5 %) is caught. Non-centrality per draw `δ²/p_5% + δ²/p_50%` with
/// `δ = 0.0005` is 5.5e-6; df 3 needs λ ≈ 36 for 99 % power at 1e-3 (6.6M draws) and λ ≈ 52
/// for 99.99 % (9.5M draws, ~1.5 s). We use the latter: at 6.6M draws the fixed seed below
/// happened to land in the 1 % miss (InverseCdf: a +2.9σ fluctuation on the 5 % token, p = 0.015
/// against the truth, i.e. not a bias: ten neighbouring seeds fit with p from 0.06 to 0.95).
#[test]
fn chi_square_detects_a_one_percent_relative_error_in_a_five_percent_token() {
    let truth = [0.50, 0.30, 0.15, 0.05];
    let row = logits_of(&truth);
    let p = SamplingParams {
        seed: 2024,
        ..SamplingParams::default()
    };
    let probs = dense(&row, &p);
    let delta = 0.01 * probs[3];
    let mut wrong = probs.clone();
    wrong[3] += delta;
    wrong[0] -= delta;
    let per_draw = delta * delta / probs[3] + delta * delta / probs[0];
    let lambda = lambda_for_power(3.0, ALPHA, 0.9999);
    let n = (lambda / per_draw).ceil() as u64;
    assert!(
        (9_000_000..10_000_000).contains(&n),
        "λ {lambda}: {n} draws"
    );
    for method in METHODS {
        let counts = draw_counts(&row, &p, method, n);
        let good = chi_square(&counts, &probs);
        let bad = chi_square(&counts, &wrong);
        assert!(good.fits(ALPHA), "{method:?}: {good:?}");
        assert!(
            !bad.fits(ALPHA),
            "{method:?}: a 1 % relative error passed: {bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Goodness of fit of both draw methods for every filter
// ---------------------------------------------------------------------------------------------

#[test]
fn draws_fit_the_distribution_temperature_only() {
    goodness_of_fit(Filters::TemperatureOnly, 101);
}

#[test]
fn draws_fit_the_distribution_top_k() {
    goodness_of_fit(Filters::TopK, 202);
}

#[test]
fn draws_fit_the_distribution_top_p() {
    goodness_of_fit(Filters::TopP, 303);
}

#[test]
fn draws_fit_the_distribution_min_p() {
    goodness_of_fit(Filters::MinP, 404);
}

#[test]
fn draws_fit_the_distribution_combined_filters() {
    goodness_of_fit(Filters::Combined, 505);
}

// ---------------------------------------------------------------------------------------------
// Masked and bad rows
// ---------------------------------------------------------------------------------------------

#[test]
fn masked_tokens_are_never_drawn() {
    let mut r = rng(7);
    for case in 0..12 {
        let vocab = [5, 64, 700][case % 3];
        let mut row = lm_like_row(&mut r, vocab);
        // Mask the would-be maximum, token 0 and the last token, plus a random share.
        let top = argmax(&row) as usize;
        row[top] = f32::NEG_INFINITY;
        row[0] = f32::NEG_INFINITY;
        row[vocab - 1] = f32::NEG_INFINITY;
        mask_some(&mut r, &mut row, 0.3, 2);
        let finite = finite_tokens(&row);
        let mut p = random_params(&mut r, Filters::Any);
        // A high temperature flattens the distribution: masked tokens would show up quickly.
        if case % 2 == 0 {
            p.temperature = 50.0;
        }
        for method in METHODS {
            for step in 0..300 {
                let out = sample_row(&row, &p.at_step(step), &opts(method, vocab));
                let t = out.token.unwrap();
                assert!(row[t as usize].is_finite(), "case {case}: drew masked {t}");
                assert!(out.logprob.is_finite());
                assert!(out
                    .top_logprobs
                    .iter()
                    .all(|tl| row[tl.token as usize].is_finite()));
            }
        }
        let probs = dense(&row, &p);
        assert!(support(&probs).iter().all(|t| finite.contains(t)));
    }
    // One finite token among masked ones: it is always drawn, with probability 1.
    let mut row = vec![f32::NEG_INFINITY; 10];
    row[6] = -3.0;
    for method in METHODS {
        for step in 0..50 {
            let p = SamplingParams {
                step,
                top_p: 0.5,
                ..SamplingParams::default()
            };
            let out = sample_row(&row, &p, &opts(method, 3));
            assert_eq!((out.token, out.logprob), (Some(6), 0.0));
            assert_eq!(out.top_logprobs.len(), 1);
        }
    }
}

#[test]
fn bad_rows_are_reported_and_the_other_rows_sampled_as_if_alone() {
    let vocab = 300;
    let mut r = rng(8);
    let good: Vec<Vec<f32>> = (0..4).map(|_| lm_like_row(&mut r, vocab)).collect();
    let mut nan = good[0].clone();
    nan[17] = f32::NAN;
    let mut pos_inf = good[1].clone();
    pos_inf[299] = f32::INFINITY;
    let mut both = good[2].clone();
    both[0] = f32::NEG_INFINITY;
    both[1] = f32::NAN;
    let all_masked = vec![f32::NEG_INFINITY; vocab];
    let rows: Vec<(&[f32], Option<RowStatus>)> = vec![
        (&good[0], None),
        (&nan, Some(RowStatus::NonFiniteLogit)),
        (&good[1], None),
        (&pos_inf, Some(RowStatus::NonFiniteLogit)),
        (&all_masked, Some(RowStatus::NoFiniteLogit)),
        (&both, Some(RowStatus::NonFiniteLogit)),
        (&good[2], None),
        (&good[3], None),
    ];
    let logits: Vec<f32> = rows
        .iter()
        .flat_map(|(row, _)| row.iter().copied())
        .collect();
    for method in METHODS {
        for shared in [true, false] {
            let params: Vec<SamplingParams> = if shared {
                vec![random_params(&mut r, Filters::Combined)]
            } else {
                (0..rows.len())
                    .map(|_| random_params(&mut r, Filters::Any))
                    .collect()
            };
            let out = sample_batch(&logits, vocab, &params, &opts(method, 5)).unwrap();
            assert_eq!(out.len(), rows.len());
            for (i, ((row, bad), got)) in rows.iter().zip(&out).enumerate() {
                let p = params[if shared { 0 } else { i }];
                match bad {
                    Some(status) => {
                        assert_eq!(got.status, *status, "row {i}");
                        assert_eq!(got.token, None);
                        assert!(got.logprob.is_nan());
                        assert!(got.top_logprobs.is_empty());
                    }
                    None => {
                        assert_eq!(got.status, RowStatus::Ok, "row {i}");
                        assert_eq!(*got, sample_row(row, &p, &opts(method, 5)), "row {i}");
                    }
                }
            }
        }
    }
    // The dense implementation refuses the same rows.
    assert!(final_distribution(&nan, &SamplingParams::default()).is_none());
    assert!(final_distribution(&pos_inf, &SamplingParams::default()).is_none());
    assert!(final_distribution(&all_masked, &SamplingParams::default()).is_none());
    // A greedy row with NaN is still refused (the scan comes before the greedy shortcut).
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let out = sample_row(&nan, &greedy, &opts(DrawMethod::Gumbel, 1));
    assert_eq!(out.status, RowStatus::NonFiniteLogit);
    let out = sample_row(&all_masked, &greedy, &opts(DrawMethod::Gumbel, 1));
    assert_eq!(out.status, RowStatus::NoFiniteLogit);
}

// ---------------------------------------------------------------------------------------------
// Greedy
// ---------------------------------------------------------------------------------------------

#[test]
fn greedy_ties_take_the_lowest_index_without_randomness() {
    let mut r = rng(9);
    let mut row = normal_row(&mut r, 1000, 1.0);
    for i in [417, 90, 901] {
        row[i] = 20.0; // ties at the maximum; the lowest index, 90, wins
    }
    row[3] = f32::NEG_INFINITY;
    for method in METHODS {
        for seed in [0, 1, 42, u64::MAX] {
            for step in 0..40 {
                let mut p = random_params(&mut r, Filters::Any);
                p.temperature = 0.0;
                p.seed = seed;
                p.step = step * 1_000_003;
                let out = sample_row(&row, &p, &opts(method, 4));
                assert_eq!(out.token, Some(90));
                assert_eq!(out.logprob, 0.0);
                assert_eq!(out.top_logprobs.len(), 1, "a point mass has one survivor");
                assert_eq!(out.top_logprobs[0].token, 90);
                assert_eq!(out.top_logprobs[0].logprob, 0.0);
            }
        }
    }
    // -0.0 equals 0.0: the lower index wins either way round.
    for row in [[-0.0f32, 0.0, -1.0], [0.0, -0.0, -1.0]] {
        let p = SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        };
        assert_eq!(
            sample_row(&row, &p, &opts(DrawMethod::Gumbel, 0)).token,
            Some(0)
        );
        let probs = dense(&row, &p);
        assert_eq!(probs, vec![1.0, 0.0, 0.0]);
    }
}

/// Regression: temperature 0 once went through the sampler (dividing by 0 / drawing noise), so
/// greedy rows depended on the seed and step. Greedy must use no random number at all.
#[test]
fn regression_temperature_zero_must_not_sample() {
    let mut r = rng(10);
    for case in 0..20 {
        // Near-ties just under the maximum: any noise would pick them often.
        let mut row = normal_row(&mut r, 257, 0.01);
        let top = argmax(&row);
        let max = row[top as usize];
        for j in 0..8 {
            let i = r.random_range(0..row.len());
            if i as u32 != top {
                row[i] = max - f32::EPSILON * (j + 1) as f32;
            }
        }
        let top = argmax(&row);
        let base = SamplingParams {
            temperature: 0.0,
            ..random_params(&mut r, Filters::Any)
        };
        let first = sample_row(&row, &base, &opts(DrawMethod::Gumbel, 3));
        assert_eq!(first.token, Some(top), "case {case}");
        for method in METHODS {
            for d in 0..200u64 {
                let p = SamplingParams {
                    seed: base.seed.wrapping_add(d * 7919),
                    step: d * d,
                    ..base
                };
                let out = sample_row(&row, &p, &opts(method, 3));
                assert_eq!(out, first, "case {case}, {method:?}, {p:?}");
            }
        }
        // The dense distribution is the same point mass.
        let probs = dense(&row, &base);
        assert_eq!(probs[top as usize], 1.0);
        assert_eq!(support(&probs), vec![top]);
    }
}

// ---------------------------------------------------------------------------------------------
// top-k boundaries
// ---------------------------------------------------------------------------------------------

#[test]
fn top_k_ties_at_k_keep_the_lowest_indices() {
    let t = |temperature| SamplingParams {
        temperature,
        ..SamplingParams::default()
    };
    // Small row: `top_sorted` sorts everything.
    let row = [1.0f32, 3.0, 3.0, 2.0, 3.0, 3.0];
    for (k, want) in [
        (1, vec![1]),
        (2, vec![1, 2]),
        (3, vec![1, 2, 4]),
        (5, vec![1, 2, 3, 4, 5]),
    ] {
        let p = SamplingParams { top_k: k, ..t(1.0) };
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "k {k}");
        assert_eq!(support(&dense(&row, &p)), want, "dense, k {k}");
    }
    // Large row: `top_sorted` keeps a heap of the best k (16 k < vocab).
    let mut row = vec![0.0f32; 5000];
    for i in [100, 200, 4000, 4999] {
        row[i] = 1.0;
    }
    row[0] = -0.0; // ties with the zeros
    for (k, want) in [
        (2, vec![100, 200]),
        (4, vec![100, 200, 4000, 4999]),
        (6, vec![0, 1, 100, 200, 4000, 4999]),
    ] {
        let p = SamplingParams { top_k: k, ..t(0.7) };
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "k {k}");
        assert_eq!(support(&dense(&row, &p)), want, "dense, k {k}");
        for method in METHODS {
            for step in 0..200 {
                let out = sample_row(&row, &p.at_step(step), &opts(method, 0));
                assert!(want.contains(&out.token.unwrap()), "k {k}");
            }
        }
    }
    // Ties drawn uniformly: 4 equal tokens kept by top-k 4.
    let p = SamplingParams {
        top_k: 4,
        seed: 5,
        ..t(1.0)
    };
    assert_fits("four tied tokens", &row, &p);
}

#[test]
fn top_k_at_or_above_the_finite_count_keeps_everything() {
    let mut r = rng(12);
    let mut row = lm_like_row(&mut r, 120);
    mask_some(&mut r, &mut row, 0.25, 10);
    let finite = finite_tokens(&row);
    let base = SamplingParams {
        temperature: 1.3,
        seed: 99,
        ..SamplingParams::default()
    };
    for k in [finite.len() as u32, 119, 120, 121, 1_000_000, u32::MAX] {
        let p = SamplingParams { top_k: k, ..base };
        assert_eq!(kept_tokens(&row, &p).unwrap(), finite, "k {k}");
        assert_eq!(support(&dense(&row, &p)), finite, "dense, k {k}");
        for method in METHODS {
            for step in 0..100 {
                assert_eq!(
                    sample_row(&row, &p.at_step(step), &opts(method, 5)),
                    sample_row(&row, &base.at_step(step), &opts(method, 5)),
                    "k {k} must be the same as k = 0"
                );
            }
        }
    }
    // One below the finite count removes exactly the last-ranked finite token.
    let p = SamplingParams {
        top_k: finite.len() as u32 - 1,
        ..base
    };
    assert_eq!(kept_tokens(&row, &p).unwrap().len(), finite.len() - 1);
}

#[test]
fn top_k_one_equals_the_greedy_token() {
    let mut r = rng(13);
    for case in 0..30 {
        let row = if case % 2 == 0 {
            lm_like_row(&mut r, 500)
        } else {
            bf16_rounded(&normal_row(&mut r, 100, 0.5)) // many ties at the maximum
        };
        let mut p = random_params(&mut r, Filters::Any);
        p.top_k = 1;
        let greedy = SamplingParams {
            temperature: 0.0,
            ..p
        };
        let want = sample_row(&row, &greedy, &opts(DrawMethod::Gumbel, 0)).token;
        assert_eq!(want, Some(argmax(&row)));
        assert_eq!(kept_tokens(&row, &p).unwrap(), vec![argmax(&row)]);
        assert_eq!(support(&dense(&row, &p)), vec![argmax(&row)]);
        for method in METHODS {
            for step in 0..50 {
                let out = sample_row(&row, &p.at_step(step), &opts(method, 3));
                assert_eq!(out.token, want, "case {case}");
                assert_eq!(out.logprob, 0.0);
                assert_eq!(out.top_logprobs.len(), 1);
            }
        }
    }
}

#[test]
fn a_vocabulary_of_one_always_gives_its_token() {
    let mut r = rng(14);
    for x in [
        0.0f32,
        -0.0,
        1e30,
        -1e30,
        3.5,
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
    ] {
        for method in METHODS {
            for _ in 0..20 {
                let mut p = random_params(&mut r, Filters::Any);
                if r.random_bool(0.3) {
                    p.temperature = 0.0;
                }
                let out = sample_row(&[x], &p, &opts(method, 4));
                assert_eq!((out.token, out.logprob), (Some(0), 0.0), "{x} {p:?}");
                assert_eq!(out.top_logprobs.len(), 1);
                assert_eq!(dense(&[x], &p), vec![1.0]);
            }
        }
    }
    let p = SamplingParams::default();
    let o = opts(DrawMethod::Gumbel, 0);
    assert_eq!(
        sample_row(&[f32::NEG_INFINITY], &p, &o).status,
        RowStatus::NoFiniteLogit
    );
    assert_eq!(
        sample_row(&[f32::NAN], &p, &o).status,
        RowStatus::NonFiniteLogit
    );
    assert_eq!(
        sample_row(&[f32::INFINITY], &p, &o).status,
        RowStatus::NonFiniteLogit
    );
}

// ---------------------------------------------------------------------------------------------
// top-p and min-p boundaries
// ---------------------------------------------------------------------------------------------

/// Logits `[m, x, x]` and a temperature whose weights `exp((x - max) / T)` are exactly
/// `[1, 0.5, 0.5]` in f64, so the probabilities are exactly `[0.5, 0.25, 0.25]`. No f32 logit
/// difference is exactly `ln 2`, but `(x - m) / T` can round to the f64 nearest `-ln 2`, whose
/// `exp` is `0.5`; about one temperature in five near 1 gives it. Found by search rather than
/// hard-coded so that it holds with this platform's `exp`.
fn half_quarter_quarter() -> (Vec<f32>, f32) {
    for i in 0..100_000u32 {
        let t = f32::from_bits(1.0f32.to_bits() + i);
        let d = std::f64::consts::LN_2 * t as f64;
        let m = d as f32;
        let x = (m as f64 - d) as f32;
        if ((x as f64 - m as f64) / t as f64).exp() == 0.5 {
            return (vec![m, x, x], t);
        }
    }
    panic!("no temperature gives an exact weight of 0.5");
}

#[test]
fn top_p_mass_exactly_p_keeps_exactly_that_prefix() {
    let (row, temperature) = half_quarter_quarter();
    let base = SamplingParams {
        temperature,
        ..SamplingParams::default()
    };
    assert_eq!(dense(&row, &base), vec![0.5, 0.25, 0.25]);
    let scan = scan_row(&row).unwrap();
    let above = |p: f32| f32::from_bits(p.to_bits() + 1);
    let below = |p: f32| f32::from_bits(p.to_bits() - 1);
    for (top_p, want) in [
        (0.75, vec![0, 1]), // the mass of 2 tokens is exactly p: exactly 2 kept
        (below(0.75), vec![0, 1]),
        (above(0.75), vec![0, 1, 2]),
        (0.5, vec![0]), // the top token alone reaches p exactly
        (above(0.5), vec![0, 1]),
        (0.25, vec![0]),
        (1.0, vec![0, 1, 2]),
    ] {
        let p = SamplingParams { top_p, ..base };
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "top_p {top_p}");
        assert_eq!(support(&dense(&row, &p)), want, "dense, top_p {top_p}");
        if let KeptSet::Ranked { weights, .. } = kept_set(&row, &scan, &p) {
            assert_eq!(weights, [1.0, 0.5, 0.5][..want.len()]);
        }
        for method in METHODS {
            for step in 0..100 {
                let out = sample_row(&row, &p.at_step(step), &opts(method, 3));
                assert!(want.contains(&out.token.unwrap()));
                assert_eq!(out.top_logprobs.len(), want.len());
            }
        }
    }
    // The same with equal logits: 4 tokens of probability exactly 1/4, 8 of 1/8.
    for (vocab, top_p, keep) in [(4, 0.5, 2), (4, 0.75, 3), (4, 0.25, 1), (8, 0.625, 5)] {
        let row = vec![-2.5f32; vocab];
        let p = SamplingParams {
            top_p,
            ..SamplingParams::default()
        };
        let want: Vec<u32> = (0..keep).collect();
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "{vocab} x {top_p}");
        assert_eq!(support(&dense(&row, &p)), want, "dense {vocab} x {top_p}");
    }
}

/// Regression: top-p once kept only the tokens *before* the one whose cumulative mass crosses p
/// (and nothing at all when the top token alone exceeds p). The crossing token is kept.
#[test]
fn regression_top_p_must_keep_the_crossing_token() {
    let row = logits_of(&[0.6, 0.3, 0.1]);
    for (top_p, want) in [
        (0.1, vec![0]), // the top token alone crosses p: it is kept, the set is never empty
        (0.59, vec![0]),
        (0.7, vec![0, 1]), // 0.6 < 0.7 <= 0.9: token 1 crosses p and is kept
        (0.89, vec![0, 1]),
        (0.95, vec![0, 1, 2]),
    ] {
        let p = SamplingParams {
            top_p,
            seed: 3,
            ..SamplingParams::default()
        };
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "top_p {top_p}");
        assert_eq!(support(&dense(&row, &p)), want, "dense, top_p {top_p}");
        for method in METHODS {
            let counts = draw_counts(&row, &p, method, 4000);
            let drawn: Vec<u32> = (0..3).filter(|&t| counts[t as usize] > 0).collect();
            assert_eq!(drawn, want, "top_p {top_p}, {method:?}: {counts:?}");
        }
    }
    // With top-k first: top-p acts on the top-k survivors renormalised.
    let row = logits_of(&[0.4, 0.3, 0.2, 0.1]);
    let p = SamplingParams {
        top_k: 2,
        top_p: 0.5, // of [4/7, 3/7]: the top token alone crosses 0.5
        ..SamplingParams::default()
    };
    assert_eq!(kept_tokens(&row, &p).unwrap(), vec![0]);
    let p = SamplingParams { top_p: 0.6, ..p }; // 4/7 < 0.6: both
    assert_eq!(kept_tokens(&row, &p).unwrap(), vec![0, 1]);
    assert_eq!(support(&dense(&row, &p)), vec![0, 1]);
}

#[test]
fn top_p_of_one_keeps_every_finite_token() {
    let mut r = rng(15);
    for _ in 0..10 {
        let mut row = lm_like_row(&mut r, 300);
        mask_some(&mut r, &mut row, 0.2, 5);
        let p = SamplingParams {
            top_p: 1.0,
            ..random_params(&mut r, Filters::TemperatureOnly)
        };
        assert!(matches!(
            kept_set(&row, &scan_row(&row).unwrap(), &p),
            KeptSet::AllFinite
        ));
        assert_eq!(kept_tokens(&row, &p).unwrap(), finite_tokens(&row));
        assert_eq!(support(&dense(&row, &p)), finite_tokens(&row));
    }
}

#[test]
fn min_p_weight_exactly_min_p_is_kept() {
    // Weights exactly [1, 0.5, 0.5] (see `half_quarter_quarter`), plus a token just below 0.5.
    let (mut row, temperature) = half_quarter_quarter();
    let x = row[1];
    row.push(x - 1e-3); // weight 0.5 exp(-1e-3 / T): just below 0.5
    row.push(-30.0); // far below: lets top-k 4 be active (4 < 5 finite tokens)
    let base = SamplingParams {
        temperature,
        ..SamplingParams::default()
    };
    let above = |p: f32| f32::from_bits(p.to_bits() + 1);
    for (min_p, want) in [
        (0.5, vec![0, 1, 2]), // weight == min_p: kept
        (above(0.5), vec![0]),
        (0.49, vec![0, 1, 2, 3]),
    ] {
        let p = SamplingParams { min_p, ..base };
        assert_eq!(kept_tokens(&row, &p).unwrap(), want, "min_p {min_p}");
        assert_eq!(support(&dense(&row, &p)), want, "dense, min_p {min_p}");
        // Through every path of `kept_set`: min-p alone, after top-k, after top-p.
        for (k, tp) in [(4, 1.0), (0, 0.99), (4, 0.999)] {
            let q = SamplingParams {
                top_k: k,
                top_p: tp,
                ..p
            };
            assert_eq!(kept_tokens(&row, &q).unwrap(), want, "min_p {min_p} {q:?}");
        }
    }
    // A weight of exactly 1 - 2^-24 (the largest f32 min_p): `exp(-(2^-24 + 2^-49))` rounds to
    // it in f64, and `2^-49 - (-2^-24)` is exact.
    let row = [2f32.powi(-49), -(2f32.powi(-24)), -1.0];
    let min_p = 1.0 - f32::EPSILON / 2.0;
    let w = (row[1] as f64 - row[0] as f64).exp();
    assert_eq!(w, min_p as f64, "precondition: the weight is exactly min_p");
    let p = SamplingParams {
        min_p,
        ..SamplingParams::default()
    };
    assert_eq!(kept_tokens(&row, &p).unwrap(), vec![0, 1]);
    assert_eq!(support(&dense(&row, &p)), vec![0, 1]);
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[test]
fn every_invalid_parameter_is_rejected_naming_its_field() {
    let ok = SamplingParams::default();
    let cases = [
        (
            SamplingParams {
                temperature: -1.0,
                ..ok
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: -0.0001,
                ..ok
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: f32::NAN,
                ..ok
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: f32::INFINITY,
                ..ok
            },
            "temperature",
        ),
        (
            SamplingParams {
                temperature: f32::NEG_INFINITY,
                ..ok
            },
            "temperature",
        ),
        (SamplingParams { top_p: 0.0, ..ok }, "top_p"),
        (SamplingParams { top_p: -0.5, ..ok }, "top_p"),
        (
            SamplingParams {
                top_p: 1.0000001,
                ..ok
            },
            "top_p",
        ),
        (
            SamplingParams {
                top_p: f32::NAN,
                ..ok
            },
            "top_p",
        ),
        (
            SamplingParams {
                top_p: f32::INFINITY,
                ..ok
            },
            "top_p",
        ),
        (SamplingParams { min_p: 1.0, ..ok }, "min_p"),
        (SamplingParams { min_p: -0.1, ..ok }, "min_p"),
        (
            SamplingParams {
                min_p: -0.0001,
                ..ok
            },
            "min_p",
        ),
        (
            SamplingParams {
                min_p: f32::NAN,
                ..ok
            },
            "min_p",
        ),
        (
            SamplingParams {
                min_p: f32::INFINITY,
                ..ok
            },
            "min_p",
        ),
    ];
    let vocab = 8;
    let logits = vec![0.5f32; vocab * 4];
    for (bad, field) in cases {
        for method in METHODS {
            // Per-row parameters: row 2 is bad.
            let params = [ok, ok, bad, ok];
            match sample_batch(&logits, vocab, &params, &opts(method, 0)) {
                Err(
                    e @ SampleError::InvalidParam {
                        row: 2, field: f, ..
                    },
                ) => {
                    assert_eq!(f, field);
                    let msg = e.to_string();
                    assert!(msg.contains(field) && msg.contains("row 2"), "{msg}");
                }
                other => panic!("{bad:?} not rejected as {field}: {other:?}"),
            }
            // One shared entry: reported as row 0.
            let err = sample_batch(&logits, vocab, &[bad], &opts(method, 0)).unwrap_err();
            assert!(
                matches!(err, SampleError::InvalidParam { row: 0, field: f, .. } if f == field),
                "{err}"
            );
        }
    }
    // The boundaries that are valid.
    for p in [
        SamplingParams {
            temperature: 0.0,
            ..ok
        },
        SamplingParams {
            temperature: -0.0, // equals 0: greedy
            ..ok
        },
        SamplingParams {
            temperature: f32::MAX,
            ..ok
        },
        SamplingParams {
            temperature: f32::from_bits(1),
            ..ok
        },
        SamplingParams { top_p: 1.0, ..ok },
        SamplingParams {
            top_p: f32::from_bits(1),
            ..ok
        },
        SamplingParams { min_p: 0.0, ..ok },
        SamplingParams {
            min_p: 1.0 - f32::EPSILON / 2.0,
            ..ok
        },
        SamplingParams {
            top_k: u32::MAX,
            ..ok
        },
    ] {
        let out = sample_batch(&logits, vocab, &[p], &opts(DrawMethod::Gumbel, 0)).unwrap();
        assert!(out.iter().all(|o| o.status == RowStatus::Ok), "{p:?}");
    }
}

#[test]
fn shape_errors_are_reported() {
    let p = [SamplingParams::default()];
    let o = opts(DrawMethod::Gumbel, 0);
    let logits = vec![0.0f32; 12];
    assert!(matches!(
        sample_batch(&logits, 0, &p, &o),
        Err(SampleError::Shape(_))
    ));
    assert!(matches!(
        sample_batch(&logits, 5, &p, &o),
        Err(SampleError::Shape(_))
    ));
    let two = [SamplingParams::default(); 2];
    assert!(matches!(
        sample_batch(&logits, 4, &two, &o),
        Err(SampleError::Shape(_))
    ));
    assert_eq!(sample_batch(&logits, 4, &[p[0]; 3], &o).unwrap().len(), 3);
    assert!(sample_batch(&[] as &[f32], 4, &p, &o).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Determinism and independence from the batch
// ---------------------------------------------------------------------------------------------

#[test]
fn same_seed_and_step_give_the_same_token() {
    let mut r = rng(16);
    for _ in 0..20 {
        let row = lm_like_row(&mut r, 1000);
        let p = random_params(&mut r, Filters::Any);
        for method in METHODS {
            let a = sample_row(&row, &p, &opts(method, 5));
            assert_eq!(a, sample_row(&row, &p, &opts(method, 5)));
            assert_eq!(
                a,
                sample_batch(&row, 1000, &[p], &opts(method, 5)).unwrap()[0]
            );
        }
    }
    // ... and the seed and step do matter: a flat row gives many different tokens.
    let row = vec![0.0f32; 64];
    for method in METHODS {
        let p = SamplingParams::default();
        let by_step: std::collections::HashSet<u32> = (0..100)
            .map(|s| {
                sample_row(&row, &p.at_step(s), &opts(method, 0))
                    .token
                    .unwrap()
            })
            .collect();
        let by_seed: std::collections::HashSet<u32> = (0..100)
            .map(|s| {
                let q = SamplingParams { seed: s, ..p };
                sample_row(&row, &q, &opts(method, 0)).token.unwrap()
            })
            .collect();
        assert!(by_step.len() > 40 && by_seed.len() > 40, "{method:?}");
        // The high halves of seed and step are used too.
        let hi: std::collections::HashSet<u32> = (0..100u64)
            .map(|s| {
                let q = SamplingParams {
                    seed: s << 32,
                    step: s << 32,
                    ..p
                };
                sample_row(&row, &q, &opts(method, 0)).token.unwrap()
            })
            .collect();
        assert!(hi.len() > 40, "{method:?}");
    }
}

#[test]
fn a_rows_token_does_not_depend_on_its_batch_position_or_neighbours() {
    let vocab = 777;
    let mut r = rng(17);
    let rows: Vec<Vec<f32>> = (0..12)
        .map(|i| {
            let mut row = lm_like_row(&mut r, vocab);
            if i % 3 == 0 {
                mask_some(&mut r, &mut row, 0.2, 10);
            }
            row
        })
        .collect();
    let params: Vec<SamplingParams> = (0..12)
        .map(|i| {
            let mut p = random_params(&mut r, Filters::Any);
            if i == 5 {
                p.temperature = 0.0;
            }
            p
        })
        .collect();
    for method in METHODS {
        let o = opts(method, 4);
        let alone: Vec<RowOutput> = rows
            .iter()
            .zip(&params)
            .map(|(row, p)| sample_row(row, p, &o))
            .collect();
        // Several orders and sub-batches, each with per-row parameters.
        let mut orders: Vec<Vec<usize>> = vec![
            (0..12).collect(),
            (0..12).rev().collect(),
            vec![3, 7, 3, 11, 0], // a row twice, different neighbours
            vec![5],
        ];
        let mut shuffled: Vec<usize> = (0..12).collect();
        rand::seq::SliceRandom::shuffle(&mut shuffled[..], &mut r);
        orders.push(shuffled);
        for order in orders {
            let logits: Vec<f32> = order.iter().flat_map(|&i| rows[i].clone()).collect();
            let ps: Vec<SamplingParams> = order.iter().map(|&i| params[i]).collect();
            let out = sample_batch(&logits, vocab, &ps, &o).unwrap();
            for (pos, &i) in order.iter().enumerate() {
                assert_eq!(out[pos], alone[i], "{method:?}: row {i} at position {pos}");
            }
        }
        // Shared parameters give each row what it gets alone with those parameters.
        let logits: Vec<f32> = rows.concat();
        let out = sample_batch(&logits, vocab, &[params[0]], &o).unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                out[i],
                sample_row(row, &params[0], &o),
                "{method:?}: row {i}"
            );
        }
    }
}

#[test]
fn f16_and_bf16_give_the_same_result_as_their_values_in_f32() {
    let vocab = 1500;
    let mut r = rng(18);
    let mut src: Vec<Vec<f32>> = (0..8).map(|_| lm_like_row(&mut r, vocab)).collect();
    mask_some(&mut r, &mut src[2], 0.3, 10);
    src[6][10] = f32::NAN;
    src[7] = vec![f32::NEG_INFINITY; vocab];
    let params: Vec<SamplingParams> = (0..8)
        .map(|i| {
            let mut p = random_params(&mut r, Filters::Any);
            if i == 4 {
                p.temperature = 0.0;
            }
            p
        })
        .collect();
    let as_f16: Vec<f16> = src.concat().iter().map(|&x| f16::from_f32(x)).collect();
    let as_bf16: Vec<bf16> = src.concat().iter().map(|&x| bf16::from_f32(x)).collect();
    let f16_wide: Vec<f32> = as_f16.iter().map(|x| x.to_f32()).collect();
    let bf16_wide: Vec<f32> = as_bf16.iter().map(|x| x.to_f32()).collect();
    // Sanity: the narrow values differ from the source, and have ties the source lacks.
    assert_ne!(f16_wide, src.concat());
    for method in METHODS {
        let o = opts(method, 6);
        let same = |a: &[RowOutput], b: &[RowOutput]| {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x.status == RowStatus::Ok {
                    assert_eq!(x, y, "{method:?} row {i}");
                } else {
                    assert_eq!((x.status, x.token), (y.status, y.token), "row {i}");
                }
            }
        };
        let h = sample_batch(&as_f16, vocab, &params, &o).unwrap();
        let hw = sample_batch(&f16_wide, vocab, &params, &o).unwrap();
        same(&h, &hw);
        let b = sample_batch(&as_bf16, vocab, &params, &o).unwrap();
        let bw = sample_batch(&bf16_wide, vocab, &params, &o).unwrap();
        same(&b, &bw);
        assert_eq!(h[6].status, RowStatus::NonFiniteLogit);
        assert_eq!(b[7].status, RowStatus::NoFiniteLogit);
        // Rows through `sample_row` with the narrow type agree too.
        for i in 0..6 {
            let row = &as_bf16[i * vocab..(i + 1) * vocab];
            assert_eq!(sample_row(row, &params[i], &o), bw[i]);
        }
    }
    // Overflowing f16 values become +inf and are reported, not sampled.
    let big = [f16::from_f32(1e6), f16::from_f32(0.0)];
    let out = sample_row(
        &big,
        &SamplingParams::default(),
        &opts(DrawMethod::Gumbel, 0),
    );
    assert_eq!(out.status, RowStatus::NonFiniteLogit);
}

// ---------------------------------------------------------------------------------------------
// The fast path against the dense one
// ---------------------------------------------------------------------------------------------

/// Random rows (plain, LM-like, masked, bf16-rounded with many ties, large vocabularies) and
/// random filters: the tokens `cpu::kept_set` keeps are exactly the support of the dense
/// `final_distribution`, in rank order, with weights `exp((x - max) / T)`.
#[test]
fn fast_kept_set_equals_the_dense_support() {
    let mut r = rng(19);
    let mut checked = 0;
    let mut nontrivial = 0;
    for case in 0..600 {
        let vocab = match case % 6 {
            0 => r.random_range(1..8),
            1 | 2 => r.random_range(8..200),
            3 | 4 => r.random_range(200..3000),
            _ => 32_000,
        };
        if vocab == 32_000 && case % 30 != 5 {
            continue; // a few large rows keep the test fast
        }
        let mut row = match case % 4 {
            0 => {
                let spread = r.random_range(0.1..4.0);
                normal_row(&mut r, vocab, spread)
            }
            1 => bf16_rounded(&lm_like_row(&mut r, vocab)),
            _ => lm_like_row(&mut r, vocab),
        };
        if case % 5 == 0 {
            let fraction = r.random_range(0.0..0.9);
            mask_some(&mut r, &mut row, fraction, 1);
        }
        let p = random_params(&mut r, Filters::Any);
        let scan = scan_row(&row).unwrap();
        let probs = dense(&row, &p);
        let want = support(&probs);
        match kept_set(&row, &scan, &p) {
            KeptSet::AllFinite => {
                assert_eq!(want, finite_tokens(&row), "case {case} {p:?}");
            }
            KeptSet::Ranked {
                candidates,
                weights,
            } => {
                let mut got: Vec<u32> = candidates.iter().map(|c| c.token).collect();
                // Rank order: non-increasing logits, ties by increasing index.
                for w in candidates.windows(2) {
                    assert!(
                        w[0].logit > w[1].logit
                            || (w[0].logit == w[1].logit && w[0].token < w[1].token),
                        "case {case}: not in rank order"
                    );
                }
                let norm: f64 = weights.iter().sum();
                for (c, &w) in candidates.iter().zip(&weights) {
                    let d = (c.logit as f64 - scan.max as f64) / p.temperature as f64;
                    assert_eq!(w, d.exp());
                    let q = probs[c.token as usize];
                    assert!((w / norm - q).abs() <= 1e-12 * q, "case {case}");
                }
                got.sort_unstable();
                assert_eq!(got, want, "case {case}: vocab {vocab}, {p:?}");
                if got.len() < finite_tokens(&row).len() {
                    nontrivial += 1;
                }
            }
        }
        checked += 1;
    }
    assert!(checked > 400 && nontrivial > 200, "{checked} {nontrivial}");
}

/// The chosen token's logprob is `ln(final_distribution[token])`, and `top_logprobs` are the
/// most probable tokens of the final distribution in rank order with their logprobs.
#[test]
fn logprobs_and_top_logprobs_match_the_dense_distribution() {
    let mut r = rng(20);
    for case in 0..150 {
        let vocab = [3, 40, 500, 5000][case % 4];
        let mut row = if case % 3 == 0 {
            bf16_rounded(&lm_like_row(&mut r, vocab))
        } else {
            lm_like_row(&mut r, vocab)
        };
        if case % 5 == 1 {
            mask_some(&mut r, &mut row, 0.5, 2);
        }
        let mut p = random_params(&mut r, Filters::Any);
        if case % 10 == 7 {
            p.temperature = 0.0;
        }
        let probs = dense(&row, &p);
        // The survivors in rank order: by logit, ties by index.
        let mut ranked = support(&probs);
        ranked.sort_by(|&a, &b| {
            row[b as usize]
                .partial_cmp(&row[a as usize])
                .unwrap()
                .then(a.cmp(&b))
        });
        let top_n = [0, 1, 5, 50, vocab + 1][case % 5];
        for method in METHODS {
            for step in 0..5 {
                let out = sample_row(&row, &p.at_step(step), &opts(method, top_n));
                let t = out.token.unwrap() as usize;
                assert!(probs[t] > 0.0, "case {case}: drew a token of probability 0");
                assert!(
                    (out.logprob - probs[t].ln()).abs() <= 1e-9,
                    "case {case}: logprob {} vs ln {}",
                    out.logprob,
                    probs[t].ln()
                );
                let want_n = top_n.min(ranked.len());
                assert_eq!(out.top_logprobs.len(), want_n, "case {case}");
                for (i, tl) in out.top_logprobs.iter().enumerate() {
                    assert_eq!(tl.token, ranked[i], "case {case}: rank {i}");
                    let q = probs[tl.token as usize];
                    assert!((tl.logprob - q.ln()).abs() <= 1e-9, "case {case}: rank {i}");
                }
                // Most probable first.
                for w in out.top_logprobs.windows(2) {
                    assert!(w[0].logprob >= w[1].logprob);
                }
            }
        }
    }
}
