//! Experiment 1 (CPU emulation): the same rows, temperature and uniforms under each reduction
//! order, against exact arithmetic on the same f32 weights.
//!
//! Per order and row: the normaliser `Z`, the probabilities `w / Z` (f32) and their ULP distance
//! from the exactly normalised ones; per draw, the inverse-CDF token (target `u * Z` in f32, the
//! walk over the order's prefix sums) and the Gumbel-max token (the order's argmax of
//! `d + g`), each against the exact token. Every inverse-CDF flip is explained: the exact gap
//! between the target `u * Z` and the cumulative boundary that decided it is compared with the
//! order's error at that boundary (prefix error plus target error).

use super::{
    exact_prefix, exact_walk, gumbel_scores, order_walk, ulp_bin, ulp_distance, walk_index,
    weights, Batch, Order, Setup, BANNER, ULP_BINS,
};
use batchsample::cpu::sample_row;
use batchsample::error::Result;
use batchsample::params::{DrawMethod, SamplingParams};
use batchsample::{philox, SampleOptions};
use rayon::prelude::*;
use serde::Serialize;

/// One inverse-CDF token that an order draws differently from exact arithmetic.
#[derive(Clone, Debug, Serialize)]
pub struct Flip {
    pub row: usize,
    pub step: u64,
    pub exact_token: usize,
    pub order_token: usize,
    /// The cumulative boundary that decided the flip: the lower of the two tokens.
    pub boundary: usize,
    /// `|C_boundary - u * Z|` in exact arithmetic, relative to `Z`.
    pub gap: f64,
    /// The order's error there, relative to `Z`: `|P_boundary - C_boundary| + |fl(u * Z_order)
    /// - u * Z|`.
    pub error: f64,
    /// `gap <= error`: the flip is within the order's rounding (must always hold).
    pub explained: bool,
}

/// The results of one order.
#[derive(Clone, Debug, Serialize)]
pub struct OrderResult {
    pub order: Order,
    pub name: String,
    /// Probabilities per ULP-distance bin ([`ULP_BINS`]); they sum to `probabilities`.
    pub ulp_histogram: [u64; 7],
    pub probabilities: u64,
    pub max_ulp: u64,
    /// The largest `|Z_order - Z| / Z` over the rows.
    pub max_rel_sum_error: f64,
    /// The mean `|Z_order - Z| / Z` over the rows.
    pub mean_rel_sum_error: f64,
    pub draws: u64,
    pub inverse_cdf_flips: u64,
    pub gumbel_changes: u64,
    pub flips: Vec<Flip>,
}

/// Experiment 1's report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub note: &'static str,
    pub source: String,
    pub rows: usize,
    pub vocab: usize,
    pub setup: Setup,
    pub ulp_bins: [&'static str; 7],
    /// Draws where the exact Gumbel token differs from [`batchsample::cpu::sample_row`]'s (must be 0:
    /// the same scores, the same argmax).
    pub gumbel_reference_mismatches: u64,
    pub orders: Vec<OrderResult>,
}

/// The orders of experiment 1: sequential; blocks of 128, 256, 512 and 1024 threads; the row
/// split in 2, 4, 8 and 32; a split-K merge of 256-item chunks; float atomics over 256-item
/// chunks (arrival order from `seed`).
pub fn default_orders(seed: u64) -> Vec<Order> {
    let mut v = vec![Order::Sequential];
    v.extend([128, 256, 512, 1024].map(|threads| Order::Block { threads }));
    v.extend([2, 4, 8, 32].map(|splits| Order::SplitRow { splits }));
    v.push(Order::SplitK {
        chunk: 256,
        seed: 0x5eed,
    });
    v.push(Order::Atomics {
        chunk: 256,
        seed: crate::io::splitmix64(seed),
    });
    v
}

/// Per-row partial results, one entry per order.
struct RowResult {
    per_order: Vec<OrderResult>,
    rel_errors: Vec<f64>,
    gumbel_reference_mismatches: u64,
}

fn empty(order: Order) -> OrderResult {
    OrderResult {
        order,
        name: order.name(),
        ulp_histogram: [0; 7],
        probabilities: 0,
        max_ulp: 0,
        max_rel_sum_error: 0.0,
        mean_rel_sum_error: 0.0,
        draws: 0,
        inverse_cdf_flips: 0,
        gumbel_changes: 0,
        flips: Vec::new(),
    }
}

fn one_row(batch: &Batch, r: usize, setup: &Setup, orders: &[Order]) -> RowResult {
    let row = batch.row(r);
    let seed = crate::io::row_seed(setup.seed, r);
    let w = weights(row, setup.temperature);
    let exact = exact_prefix(&w);
    let z = *exact.last().unwrap_or(&0.0);
    let steps: Vec<u64> = (setup.step..setup.step + setup.draws).collect();
    let uniforms: Vec<f32> = steps
        .iter()
        .map(|&s| philox::row_uniform(seed, s))
        .collect();
    let exact_tokens: Vec<usize> = uniforms
        .iter()
        .map(|&u| exact_walk(&exact, &w, u as f64 * z))
        .collect();
    let scores: Vec<Vec<f64>> = steps
        .iter()
        .map(|&s| gumbel_scores(row, setup.temperature, seed, s))
        .collect();
    let params = SamplingParams {
        temperature: setup.temperature,
        seed,
        ..Default::default()
    };
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 0,
        ..Default::default()
    };
    let mut gumbel_reference_mismatches = 0;
    let exact_gumbel: Vec<usize> = steps
        .iter()
        .zip(&scores)
        .map(|(&s, sc)| {
            let mine = Order::Sequential.argmax(sc).unwrap_or(0);
            let reference = sample_row(row, &params.at_step(s), &opts).token;
            if reference != Some(mine as u32) {
                gumbel_reference_mismatches += 1;
            }
            mine
        })
        .collect();
    let exact_probs: Vec<f32> = w.iter().map(|&x| (x as f64 / z) as f32).collect();

    let mut per_order = Vec::with_capacity(orders.len());
    let mut rel_errors = Vec::with_capacity(orders.len());
    for &order in orders {
        let mut res = empty(order);
        let z_o = order.sum(&w);
        rel_errors.push((z_o as f64 - z).abs() / z);
        for (&x, &pe) in w.iter().zip(&exact_probs) {
            let d = ulp_distance(x / z_o, pe);
            res.ulp_histogram[ulp_bin(d)] += 1;
            res.max_ulp = res.max_ulp.max(d);
        }
        res.probabilities = w.len() as u64;
        let prefix = order.prefix(&w);
        let index = walk_index(&prefix, &w);
        for (k, &u) in uniforms.iter().enumerate() {
            res.draws += 1;
            let target = u * z_o;
            let tok = order_walk(&index, &w, target);
            let ex = exact_tokens[k];
            if tok != ex {
                let b = tok.min(ex);
                let exact_target = u as f64 * z;
                let gap = (exact[b] - exact_target).abs() / z;
                let error = ((prefix[b] as f64 - exact[b]).abs()
                    + (target as f64 - exact_target).abs())
                    / z;
                res.inverse_cdf_flips += 1;
                res.flips.push(Flip {
                    row: r,
                    step: steps[k],
                    exact_token: ex,
                    order_token: tok,
                    boundary: b,
                    gap,
                    error,
                    // Slack for the f64 rounding of the exact quantities themselves.
                    explained: gap <= error * (1.0 + 1e-9) + 1e-15,
                });
            }
            if order.argmax(&scores[k]).unwrap_or(0) != exact_gumbel[k] {
                res.gumbel_changes += 1;
            }
        }
        per_order.push(res);
    }
    RowResult {
        per_order,
        rel_errors,
        gumbel_reference_mismatches,
    }
}

/// Runs experiment 1 over every row of `batch`.
pub fn run(batch: &Batch, setup: &Setup, orders: &[Order]) -> Result<Report> {
    setup.validate()?;
    let rows: Vec<RowResult> = (0..batch.rows)
        .into_par_iter()
        .map(|r| one_row(batch, r, setup, orders))
        .collect();
    let mut out: Vec<OrderResult> = orders.iter().map(|&o| empty(o)).collect();
    let mut mismatches = 0;
    for rr in rows {
        mismatches += rr.gumbel_reference_mismatches;
        for ((acc, part), rel) in out.iter_mut().zip(rr.per_order).zip(rr.rel_errors) {
            for (a, b) in acc.ulp_histogram.iter_mut().zip(part.ulp_histogram) {
                *a += b;
            }
            acc.probabilities += part.probabilities;
            acc.max_ulp = acc.max_ulp.max(part.max_ulp);
            acc.max_rel_sum_error = acc.max_rel_sum_error.max(rel);
            acc.mean_rel_sum_error += rel / batch.rows.max(1) as f64;
            acc.draws += part.draws;
            acc.inverse_cdf_flips += part.inverse_cdf_flips;
            acc.gumbel_changes += part.gumbel_changes;
            acc.flips.extend(part.flips);
        }
    }
    Ok(Report {
        note: BANNER,
        source: batch.source.clone(),
        rows: batch.rows,
        vocab: batch.vocab,
        setup: *setup,
        ulp_bins: ULP_BINS,
        gumbel_reference_mismatches: mismatches,
        orders: out,
    })
}

/// The summary printed to stdout.
pub fn summary(rep: &Report) -> String {
    let mut s = format!("{BANNER}\n");
    s += &format!(
        "experiment 1, reduction order: {} rows x {} vocab ({}), T = {}, {} draw(s) per row\n",
        rep.rows, rep.vocab, rep.source, rep.setup.temperature, rep.setup.draws
    );
    s += &format!(
        "{:<14} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>7}\n",
        "order",
        "max|dZ|/Z",
        "0ulp%",
        "1ulp%",
        "2ulp%",
        "3-4%",
        "5-8%",
        "9-16%",
        ">16%",
        "invcdf",
        "gumbel",
        "explnd"
    );
    for o in &rep.orders {
        let pct = |k: usize| 100.0 * o.ulp_histogram[k] as f64 / o.probabilities.max(1) as f64;
        let explained = o.flips.iter().filter(|f| f.explained).count();
        s += &format!(
            "{:<14} {:>10.2e} {:>9.3} {:>9.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7.3} {:>9} {:>9} {:>7}\n",
            o.name,
            o.max_rel_sum_error,
            pct(0),
            pct(1),
            pct(2),
            pct(3),
            pct(4),
            pct(5),
            pct(6),
            format!("{}/{}", o.inverse_cdf_flips, o.draws),
            format!("{}/{}", o.gumbel_changes, o.draws),
            format!("{explained}/{}", o.flips.len()),
        );
    }
    s += &format!(
        "invcdf: inverse-CDF tokens that differ from exact arithmetic; gumbel: Gumbel-max tokens \
         that do; explnd: flips whose exact boundary gap is within the order's error. The exact \
         Gumbel token differs from the f64 sampler's in {} draws.\n",
        rep.gumbel_reference_mismatches
    );
    s
}
