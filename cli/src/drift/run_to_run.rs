//! Experiment 3 (CPU emulation): the same batch "run" `runs` times. A fixed order is a pure
//! function of its input, so every run matches run 0; float atomics add the chunk partials in a
//! fresh arrival order each run (seed `splitmix64(seed ^ run)`), so the sums, and with them the
//! probabilities and sometimes the inverse-CDF token, move from run to run. The Gumbel-max token
//! uses no sum and never moves.

use super::{gumbel_scores, order_walk, walk_index, weights, Batch, Order, Setup, BANNER};
use crate::io::splitmix64;
use batchsample::error::Result;
use batchsample::philox;
use rayon::prelude::*;
use serde::Serialize;

/// How one order fared over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct OrderRuns {
    pub order: Order,
    pub name: String,
    /// Whether each run draws a fresh arrival order.
    pub per_run_seed: bool,
    pub runs: usize,
    /// Runs (after run 0) with any probability bit different from run 0's.
    pub runs_differing_bits: usize,
    /// Runs with any inverse-CDF token different from run 0's.
    pub runs_differing_inverse_cdf: usize,
    /// Runs with any Gumbel-max token different from run 0's.
    pub runs_differing_gumbel: usize,
    /// Over all runs after run 0: probabilities, inverse-CDF tokens and Gumbel tokens that
    /// differ from run 0's.
    pub probabilities_differing: u64,
    pub inverse_cdf_tokens_differing: u64,
    pub gumbel_tokens_differing: u64,
}

/// Experiment 3's report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub note: &'static str,
    pub source: String,
    pub rows: usize,
    pub vocab: usize,
    pub runs: usize,
    pub setup: Setup,
    pub orders: Vec<OrderRuns>,
}

/// Experiment 3's orders: three fixed ones (sequential, a 256-thread block, a split-K merge with a
/// fixed schedule) and float atomics over 256-item chunks.
pub fn default_orders() -> Vec<Order> {
    vec![
        Order::Sequential,
        Order::Block { threads: 256 },
        Order::SplitK {
            chunk: 256,
            seed: 0x5eed,
        },
        Order::Atomics {
            chunk: 256,
            seed: 0,
        },
    ]
}

/// The order used in run `run`: atomics get a fresh arrival-order seed, the others are fixed.
pub fn order_in_run(order: Order, seed: u64, run: usize) -> Order {
    match order {
        Order::Atomics { .. } => order.with_seed(splitmix64(seed ^ (run as u64 + 1))),
        o => o,
    }
}

/// What one run of one row gives: the probability bits and both tokens of every draw.
#[derive(PartialEq)]
struct RowRun {
    bits: Vec<u32>,
    inverse_cdf: Vec<usize>,
    gumbel: Vec<usize>,
}

/// Per order and run: (bits, inverse-CDF, Gumbel) differences from run 0 for one row.
type Diffs = Vec<Vec<[u64; 3]>>;

fn one_row(batch: &Batch, r: usize, setup: &Setup, orders: &[Order], runs: usize) -> Diffs {
    let row = batch.row(r);
    let seed = crate::io::row_seed(setup.seed, r);
    let w = weights(row, setup.temperature);
    let steps: Vec<u64> = (setup.step..setup.step + setup.draws).collect();
    let uniforms: Vec<f32> = steps
        .iter()
        .map(|&s| philox::row_uniform(seed, s))
        .collect();
    let scores: Vec<Vec<f64>> = steps
        .iter()
        .map(|&s| gumbel_scores(row, setup.temperature, seed, s))
        .collect();
    orders
        .iter()
        .map(|&order| {
            let mut first: Option<RowRun> = None;
            (0..runs)
                .map(|run| {
                    let o = order_in_run(order, setup.seed, run);
                    let z = o.sum(&w);
                    let index = walk_index(&o.prefix(&w), &w);
                    let this = RowRun {
                        bits: w.iter().map(|&x| (x / z).to_bits()).collect(),
                        inverse_cdf: uniforms
                            .iter()
                            .map(|&u| order_walk(&index, &w, u * z))
                            .collect(),
                        gumbel: scores.iter().map(|s| o.argmax(s).unwrap_or(0)).collect(),
                    };
                    match &first {
                        None => {
                            first = Some(this);
                            [0; 3]
                        }
                        Some(f) => {
                            let count = |a: &[usize], b: &[usize]| {
                                a.iter().zip(b).filter(|(x, y)| x != y).count() as u64
                            };
                            [
                                f.bits
                                    .iter()
                                    .zip(&this.bits)
                                    .filter(|(a, b)| a != b)
                                    .count() as u64,
                                count(&f.inverse_cdf, &this.inverse_cdf),
                                count(&f.gumbel, &this.gumbel),
                            ]
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// Runs experiment 3: every row `runs` times under each order.
pub fn run(batch: &Batch, setup: &Setup, orders: &[Order], runs: usize) -> Result<Report> {
    setup.validate()?;
    let runs = runs.max(1);
    let per_row: Vec<Diffs> = (0..batch.rows)
        .into_par_iter()
        .map(|r| one_row(batch, r, setup, orders, runs))
        .collect();
    let results = orders
        .iter()
        .enumerate()
        .map(|(k, &order)| {
            let mut res = OrderRuns {
                order,
                name: order.name(),
                per_run_seed: matches!(order, Order::Atomics { .. }),
                runs,
                runs_differing_bits: 0,
                runs_differing_inverse_cdf: 0,
                runs_differing_gumbel: 0,
                probabilities_differing: 0,
                inverse_cdf_tokens_differing: 0,
                gumbel_tokens_differing: 0,
            };
            for run in 1..runs {
                let mut total = [0u64; 3];
                for row in &per_row {
                    for (t, d) in total.iter_mut().zip(row[k][run]) {
                        *t += d;
                    }
                }
                res.runs_differing_bits += (total[0] > 0) as usize;
                res.runs_differing_inverse_cdf += (total[1] > 0) as usize;
                res.runs_differing_gumbel += (total[2] > 0) as usize;
                res.probabilities_differing += total[0];
                res.inverse_cdf_tokens_differing += total[1];
                res.gumbel_tokens_differing += total[2];
            }
            res
        })
        .collect();
    Ok(Report {
        note: BANNER,
        source: batch.source.clone(),
        rows: batch.rows,
        vocab: batch.vocab,
        runs,
        setup: *setup,
        orders: results,
    })
}

/// The summary printed to stdout.
pub fn summary(rep: &Report) -> String {
    let mut s = format!("{BANNER}\n");
    s += &format!(
        "experiment 3, run to run: {} runs of {} rows x {} vocab ({}), T = {}, {} draw(s) per row\n",
        rep.runs, rep.rows, rep.vocab, rep.source, rep.setup.temperature, rep.setup.draws
    );
    s += &format!(
        "{:<14} {:>10} {:>18} {:>18} {:>18}\n",
        "order", "seed", "runs != run 0: bits", "inverse-cdf", "gumbel"
    );
    let others = rep.runs.saturating_sub(1);
    for o in &rep.orders {
        s += &format!(
            "{:<14} {:>10} {:>18} {:>18} {:>18}\n",
            o.name,
            if o.per_run_seed { "per run" } else { "fixed" },
            format!("{}/{others}", o.runs_differing_bits),
            format!("{}/{others}", o.runs_differing_inverse_cdf),
            format!("{}/{others}", o.runs_differing_gumbel),
        );
    }
    s += "(a run differs when any probability bit, or any token of any row, differs from run 0)\n";
    s
}
