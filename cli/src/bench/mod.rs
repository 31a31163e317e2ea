//! `batchsample bench`: latency of the sampler over a sweep of shapes and modes, against the
//! one-read memory floor (bytes of logits / measured bandwidth), on the GPU or the CPU.

mod cpu;
mod gpu;
mod plot;
mod processing;
mod workload;

pub use cpu::{bench_cpu, measure_host_bandwidth};
pub use gpu::{bench_gpu, measure_device_bandwidth, GpuTiming};
pub use plot::write_svg;
pub use processing::{processing_inputs, BenchProcessing};
pub use workload::{
    draft_distributions, mode_params, shaped_logits, synthetic_logits, verify_drafts, BenchMode,
    RowShape,
};

use batchsample::dtype::Dtype;
use batchsample::params::{DrawMethod, Numerics};
use serde::Serialize;

/// Which sampler kernels a GPU case launches (the CPU has one path and ignores it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchKernels {
    /// What `GpuSampler::sample_host` picks from the batch's parameters: the unfiltered kernels
    /// for batches without top-k, top-p or min-p, the collected ones for batches whose rows all
    /// have a top-k of at most 64 (`BatchFilters::of`), the general ones otherwise.
    #[default]
    Auto,
    /// The general kernels for every batch: the baseline the light kernels are measured
    /// against, in the same run.
    General,
    /// The `auto` kernels with the parameters as one device array per field
    /// (`RowParams::Fields`, the layout an engine holds) instead of packed rows: what the
    /// per-field prologue costs against `auto`, in the same run.
    Fields,
}

impl BenchKernels {
    pub fn name(self) -> &'static str {
        match self {
            BenchKernels::Auto => "auto",
            BenchKernels::General => "general",
            BenchKernels::Fields => "fields",
        }
    }
}

impl std::str::FromStr for BenchKernels {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            BenchKernels::Auto,
            BenchKernels::General,
            BenchKernels::Fields,
        ]
        .into_iter()
        .find(|k| k.name() == s)
        .ok_or_else(|| format!("unknown kernels '{s}' (expected auto, general or fields)"))
    }
}

/// One point of the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BenchCase {
    pub batch: usize,
    pub vocab: usize,
    pub dtype: Dtype,
    pub mode: BenchMode,
    pub method: DrawMethod,
    pub numerics: Numerics,
    /// The synthetic rows' shape.
    pub shape: RowShape,
    pub kernels: BenchKernels,
    /// The logits processing every row gets (`none` for the plain sampler).
    pub processing: BenchProcessing,
    /// [`BenchMode::Verify`]: each request's draft count `n` (its target rows are `n + 1`);
    /// 0 for the sampling modes.
    pub drafts: usize,
    /// [`BenchMode::Verify`]: dense draft distributions (`[batch * n, vocab]` f32, read too)
    /// instead of point masses.
    pub dense_drafts: bool,
}

impl BenchCase {
    /// Logit rows a launch reads: `batch`, or a verification's `batch * (drafts + 1)` target
    /// rows.
    pub fn rows(&self) -> usize {
        match self.mode {
            BenchMode::Verify => self.batch * (self.drafts + 1),
            _ => self.batch,
        }
    }

    /// The mode as the table names it: `verify/4` for four point-mass drafts a request,
    /// `verify/4q` for four dense ones.
    pub fn mode_label(&self) -> String {
        match self.mode {
            BenchMode::Verify if self.dense_drafts => format!("verify/{}q", self.drafts),
            BenchMode::Verify => format!("verify/{}", self.drafts),
            m => m.name().to_string(),
        }
    }

    /// Bytes one launch must read: the logit rows, and a dense verification's draft
    /// distributions.
    pub fn logit_bytes(&self) -> usize {
        let drafts = if self.dense_drafts {
            self.batch * self.drafts * self.vocab * 4
        } else {
            0
        };
        self.rows() * self.vocab * self.dtype.size_bytes() + drafts
    }
}

/// Timing of one case: per-iteration times in microseconds, summarised.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub case: BenchCase,
    pub device: String,
    pub iterations: usize,
    pub median_us: f64,
    pub p10_us: f64,
    pub p90_us: f64,
    /// Logit bytes over the median time.
    pub achieved_gbps: f64,
    /// Logit bytes over the measured bandwidth: no sampler reading the logits once is faster.
    pub floor_us: f64,
    /// `median_us / floor_us`.
    pub ratio_to_floor: f64,
    /// How the times were taken: `events` (CUDA events around each launch), `graph` (a CUDA
    /// graph of one launch per rotated buffer, replayed; time per launch), `wall` (CPU clock).
    pub timing: &'static str,
}

/// Summarises per-iteration times (microseconds) against a bandwidth in GB/s.
pub fn summarise(
    case: BenchCase,
    device: &str,
    mut times_us: Vec<f64>,
    bandwidth_gbps: f64,
) -> BenchResult {
    times_us.sort_by(f64::total_cmp);
    let at = |q: f64| times_us[((times_us.len() - 1) as f64 * q).round() as usize];
    let median = at(0.5);
    let bytes = case.logit_bytes() as f64;
    let floor_us = bytes / (bandwidth_gbps * 1e3);
    BenchResult {
        case,
        device: device.to_string(),
        iterations: times_us.len(),
        median_us: median,
        p10_us: at(0.1),
        p90_us: at(0.9),
        achieved_gbps: bytes / (median * 1e3),
        floor_us,
        ratio_to_floor: median / floor_us,
        timing: if device == "cpu" { "wall" } else { "events" },
    }
}

/// The results as an aligned text table.
pub fn table(results: &[BenchResult], bandwidth_gbps: f64) -> String {
    let mut s = format!(
        "measured bandwidth: {bandwidth_gbps:.0} GB/s (floor = logit bytes / bandwidth)\n{:<8} {:>6} {:>7} {:<5} {:<12} {:<9} {:<11} {:<9} {:<7} {:>10} {:>10} {:>10} {:>9} {:>8}\n",
        "device", "batch", "vocab", "dtype", "mode", "process", "method", "numerics", "kernels", "median_us", "p10_us", "p90_us", "GB/s", "x_floor"
    );
    for r in results {
        let c = &r.case;
        s += &format!(
            "{:<8} {:>6} {:>7} {:<5} {:<12} {:<9} {:<11} {:<9} {:<7} {:>10.1} {:>10.1} {:>10.1} {:>9.1} {:>8.2}\n",
            r.device,
            c.batch,
            c.vocab,
            c.dtype.name(),
            c.mode_label(),
            c.processing.name(),
            method_name(c.method),
            numerics_name(c.numerics),
            c.kernels.name(),
            r.median_us,
            r.p10_us,
            r.p90_us,
            r.achieved_gbps,
            r.ratio_to_floor
        );
    }
    s
}

pub fn method_name(m: DrawMethod) -> &'static str {
    match m {
        DrawMethod::Gumbel => "gumbel",
        DrawMethod::InverseCdf => "inverse-cdf",
    }
}

pub fn numerics_name(n: Numerics) -> &'static str {
    match n {
        Numerics::Fast => "fast",
        Numerics::Invariant => "invariant",
    }
}

/// The cost of the batch-invariant numerics: for every case measured both ways, the invariant
/// median over the fast one (same batch, vocab, dtype, mode and method, same run).
pub fn invariant_cost(results: &[BenchResult]) -> Vec<(BenchCase, f64)> {
    results
        .iter()
        .filter(|r| r.case.numerics == Numerics::Invariant)
        .filter_map(|inv| {
            let fast_case = BenchCase {
                numerics: Numerics::Fast,
                ..inv.case
            };
            results
                .iter()
                .find(|r| r.case == fast_case)
                .map(|fast| (inv.case, inv.median_us / fast.median_us))
        })
        .collect()
}

/// [`invariant_cost`] as text: a line per case and the range; empty when nothing was measured
/// both ways.
pub fn invariant_cost_table(results: &[BenchResult]) -> String {
    let cost = invariant_cost(results);
    if cost.is_empty() {
        return String::new();
    }
    let mut s =
        String::from("invariant numerics cost (invariant median / fast median, same run):\n");
    for (c, ratio) in &cost {
        s += &format!(
            "  batch {:>5} vocab {:>7} {:<5} {:<12} {:<11} {ratio:.3}x\n",
            c.batch,
            c.vocab,
            c.dtype.name(),
            c.mode_label(),
            method_name(c.method)
        );
    }
    let lo = cost.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let hi = cost.iter().map(|c| c.1).fold(0.0, f64::max);
    s += &format!("  range {lo:.3}x .. {hi:.3}x over {} cases\n", cost.len());
    s
}

/// The cost of logits processing: for every processed case, its median over the same case
/// unprocessed (same run).
pub fn processing_cost(results: &[BenchResult]) -> Vec<(BenchCase, f64)> {
    results
        .iter()
        .filter(|r| r.case.processing != BenchProcessing::None)
        .filter_map(|processed| {
            let plain = BenchCase {
                processing: BenchProcessing::None,
                ..processed.case
            };
            results
                .iter()
                .find(|r| r.case == plain)
                .map(|plain| (processed.case, processed.median_us / plain.median_us))
        })
        .collect()
}

/// [`processing_cost`] as text; empty when no processed case has its unprocessed twin.
pub fn processing_cost_table(results: &[BenchResult]) -> String {
    let cost = processing_cost(results);
    if cost.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "processing cost (processed median / unprocessed median, same run; target <= 1.10x \
         for penalties, bitmask and all; raw and all-raw add the raw-logprobs launch):\n",
    );
    for (c, ratio) in &cost {
        s += &format!(
            "  batch {:>5} vocab {:>7} {:<5} {:<12} {:<9} {:<11} {:<9} {ratio:.3}x\n",
            c.batch,
            c.vocab,
            c.dtype.name(),
            c.mode_label(),
            c.processing.name(),
            method_name(c.method),
            numerics_name(c.numerics)
        );
    }
    let lo = cost.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let hi = cost.iter().map(|c| c.1).fold(0.0, f64::max);
    s += &format!("  range {lo:.3}x .. {hi:.3}x over {} cases\n", cost.len());
    s
}
