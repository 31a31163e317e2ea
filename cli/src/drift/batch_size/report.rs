//! Experiment 2's report (JSON through serde, read back by `--replot`) and its printed summary.

use super::Config;
use batchsample::dtype::Dtype;
use serde::{Deserialize, Serialize};

/// A pool row under the f64 reference: its greedy token, the runner-up and the margin between.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowReference {
    pub row: usize,
    pub top_token: usize,
    pub top_logit: f64,
    pub runner_up: usize,
    pub runner_up_logit: f64,
    /// `top_logit - runner_up_logit` (0 is an exact tie, decided by the lower index).
    pub margin: f64,
    /// `margin / |top_logit|`.
    pub relative_margin: f64,
}

/// One position index of one batch size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PositionStats {
    pub position: usize,
    pub rows_compared: usize,
    /// Rows with any logit different from batch 1.
    pub rows_differing: usize,
    pub logits_differing: u64,
    pub greedy_flips: usize,
}

/// One batch size, all positions and rows together, against batch 1 of the same backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStats {
    pub batch: usize,
    /// (row, position) pairs compared.
    pub rows_compared: usize,
    pub logits_compared: u64,
    /// Logits whose bits differ from batch 1's.
    pub logits_differing: u64,
    /// Rows with any logit different from batch 1.
    pub rows_differing: usize,
    /// The most logits differing in one row.
    pub max_logits_differing_in_a_row: u64,
    /// Largest difference in units in the last place, and in absolute value.
    pub max_ulp: u64,
    pub max_abs: f64,
    /// Largest `|difference| / |top logit|` of a row.
    pub max_relative: f64,
    /// Every compared logit's ULP distance, binned as [`crate::drift::ULP_BINS`].
    pub ulp_histogram: Vec<u64>,
    /// Rows whose greedy token (argmax, ties to the lowest index) differs from batch 1's.
    pub greedy_flips: usize,
    pub flip_rate: f64,
    pub per_position: Vec<PositionStats>,
    /// Mean time of one projection of this batch size, when the backend was timed.
    pub time_ms: Option<f64>,
}

/// A greedy flip: the row's token at this batch size and position differs from batch 1's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    pub batch: usize,
    pub position: usize,
    pub row: usize,
    pub batch_1_token: usize,
    pub token: usize,
    /// The f64 reference's greedy token and top-2 margins of this row.
    pub f64_token: usize,
    pub f64_margin: f64,
    pub f64_relative_margin: f64,
    /// How far apart the two tokens' logits are at batch 1 (`>= 0`).
    pub batch_1_gap: f64,
}

/// Everything measured for one backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendReport {
    pub name: String,
    pub description: String,
    pub batch_invariant: bool,
    /// Rows whose batch-1 greedy token equals the f64 reference's.
    pub batch_1_matches_f64: usize,
    pub batches: Vec<BatchStats>,
    pub flips: Vec<Flip>,
}

/// The cost of invariance at one batch size: an invariant backend's time over another's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub batch: usize,
    pub invariant: String,
    pub baseline: String,
    pub invariant_ms: f64,
    pub baseline_ms: f64,
    /// `invariant_ms / baseline_ms`.
    pub ratio: f64,
}

/// A backend's batch-1 logits against the CPU twin of the invariant kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TwinCheck {
    pub backend: String,
    pub rows: usize,
    pub logits: u64,
    pub logits_differing: u64,
    pub max_ulp: u64,
}

/// Experiment 2's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub note: String,
    pub device: String,
    pub source: String,
    pub dtype: Dtype,
    /// Pool rows (rows of interest).
    pub rows: usize,
    pub d: usize,
    pub vocab: usize,
    pub config: Config,
    pub reference: Vec<RowReference>,
    /// Pool rows whose f64 relative top-2 margin is below 1e-3.
    pub near_tie_rows: usize,
    pub backends: Vec<BackendReport>,
    pub cost: Vec<Cost>,
    pub twin_check: Option<TwinCheck>,
}

/// The summary printed to stdout.
pub fn summary(rep: &Report) -> String {
    let mut s = format!("{}\n", rep.note);
    s += &format!(
        "{} x {} projection in {}, {} pool rows, positions {}; {}\n",
        rep.vocab,
        rep.d,
        rep.dtype.name(),
        rep.rows,
        rep.config
            .positions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        rep.source
    );
    s += &format!(
        "f64 reference: {} of {} rows have a top-2 margin below 1e-3 relative (smallest {:.2e})\n",
        rep.near_tie_rows,
        rep.rows,
        rep.reference
            .iter()
            .map(|r| r.relative_margin)
            .fold(f64::INFINITY, f64::min)
    );
    for b in &rep.backends {
        s += &format!(
            "\n{}: {} (batch-1 greedy token = f64's in {}/{} rows)\n",
            b.name, b.description, b.batch_1_matches_f64, rep.rows
        );
        s += &format!(
            "{:>6} {:>8} {:>14} {:>10} {:>8} {:>10} {:>11} {:>10}\n",
            "batch", "rows", "logits != b1", "rows != b1", "max ulp", "max |d|", "flips", "ms"
        );
        for st in &b.batches {
            s += &format!(
                "{:>6} {:>8} {:>13.3}% {:>10} {:>8} {:>10.2e} {:>11} {:>10}\n",
                st.batch,
                st.rows_compared,
                100.0 * st.logits_differing as f64 / st.logits_compared.max(1) as f64,
                st.rows_differing,
                st.max_ulp,
                st.max_abs,
                format!("{}/{}", st.greedy_flips, st.rows_compared),
                st.time_ms.map_or("-".into(), |t| format!("{t:.3}")),
            );
        }
        let flips: Vec<&super::Flip> = b.flips.iter().collect();
        if let Some(widest) = flips
            .iter()
            .map(|f| f.f64_relative_margin)
            .max_by(f64::total_cmp)
        {
            s += &format!(
                "{} flips; the widest f64 relative margin that flipped: {widest:.2e}\n",
                flips.len()
            );
        } else {
            s += "no greedy flips\n";
        }
    }
    if !rep.cost.is_empty() {
        s += "\ncost of invariance (time / baseline time):";
        for c in &rep.cost {
            s += &format!(" b{} {:.2}x", c.batch, c.ratio);
        }
        s += "\n";
    }
    if let Some(t) = &rep.twin_check {
        s += &format!(
            "CPU twin: {} of {} logits of {} batch-1 rows differ from {} (max {} ulp)\n",
            t.logits_differing, t.logits, t.rows, t.backend, t.max_ulp
        );
    }
    s
}
