//! Experiment 2: batch-size drift at temperature 0. Logits are produced the way a model produces
//! them, `hidden [batch, d] x projection [vocab, d]^T`, by a [`Backend`] (on the GPU: cuBLAS, and
//! the batch-invariant kernel of `kernels/projection.cu`), for a row of interest placed at several
//! positions of batches of many sizes, and compared with the same row computed alone (batch 1) by
//! the same backend: logits that differ in any bit, the largest difference, and greedy
//! (argmax) flips, each flip set against the row's top-2 margin under the f64 reference.
//!
//! The analysis ([`measure`], [`assemble`]) is backend-independent and runs on the CPU in the
//! tests with fake backends; `gpu` holds the two GPU backends; [`inputs`] the hidden states and
//! projection; [`plot`] the figure.
//!
//! Batches: for batch size `B` and each `j` in `0..rows`, row `q` of the batch is pool row
//! `(j + q) % rows`. The positions measured (first, middle, last, or given indices) then see every
//! pool row once per batch size, and the other rows of the batch are real rows, not padding.

pub mod gpu;
pub mod inputs;
mod launch;
mod measure;
pub mod plot;
mod report;

pub use inputs::{ProjectionInputs, SyntheticSpec};
pub use measure::{assemble, measure, reference, twin_check, Measured};
pub use report::{summary, BackendReport, BatchStats, Flip, PositionStats, Report, RowReference};
pub use report::{Cost, TwinCheck};

use batchsample::error::{Result, SampleError};
use serde::{Deserialize, Serialize};

/// Produces logits for batches of pool rows.
pub trait Backend {
    /// Short name for reports (`cublas`, `invariant`, ...).
    fn name(&self) -> String;
    /// What it is, for reports (library, kernel, dtype, device).
    fn description(&self) -> String;
    /// Whether its summation order is claimed not to depend on the batch (0 differences
    /// expected); its time then counts as the cost of invariance.
    fn batch_invariant(&self) -> bool;
    /// Logits of the batch whose row `q` is pool row `rows[q]`: the `vocab` logits of each row
    /// at `positions` (indices into `rows`), in that order.
    fn project(&mut self, rows: &[usize], positions: &[usize]) -> Result<Vec<Vec<f32>>>;
    /// Mean milliseconds of one projection of a `batch`-row batch over `iterations` back-to-back
    /// runs, when the backend can time itself.
    fn time_ms(&mut self, batch: usize, iterations: usize) -> Result<Option<f64>>;
}

/// Where in the batch the row of interest sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Position {
    First,
    /// Index `batch / 2`.
    Middle,
    Last,
    /// A fixed index (batches too small for it skip it).
    Index(usize),
}

impl Position {
    /// The index in a batch of `batch` rows, if it has one.
    pub fn at(self, batch: usize) -> Option<usize> {
        match self {
            _ if batch == 0 => None,
            Position::First => Some(0),
            Position::Middle => Some(batch / 2),
            Position::Last => Some(batch - 1),
            Position::Index(i) => (i < batch).then_some(i),
        }
    }

    pub fn name(self) -> String {
        match self {
            Position::First => "first".into(),
            Position::Middle => "middle".into(),
            Position::Last => "last".into(),
            Position::Index(i) => i.to_string(),
        }
    }
}

impl std::str::FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "first" => Ok(Position::First),
            "middle" => Ok(Position::Middle),
            "last" => Ok(Position::Last),
            other => other.parse().map(Position::Index).map_err(|_| {
                format!("'{other}' is not a position (use first, middle, last or an index)")
            }),
        }
    }
}

/// The distinct indices of `positions` in a batch of `batch` rows, ascending.
pub fn positions_in(positions: &[Position], batch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = positions.iter().filter_map(|p| p.at(batch)).collect();
    idx.sort_unstable();
    idx.dedup();
    idx
}

/// The largest batch size accepted (its logits buffer is `batch x vocab` f32 on the device).
pub const MAX_BATCH: usize = 65536;

/// Batch sizes 1..=16, then 24, 32, 48, 64, 96, 128, 192, 256.
pub fn default_batches() -> Vec<usize> {
    (1..=16)
        .chain([24, 32, 48, 64, 96, 128, 192, 256])
        .collect()
}

/// Parses `1-16,24,32`: sizes and inclusive ranges, sorted and deduplicated, each in
/// `1..=MAX_BATCH`.
pub fn parse_batches(s: &str) -> std::result::Result<Vec<usize>, String> {
    let num = |t: &str| -> std::result::Result<usize, String> {
        let n: usize = t
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a batch size", t.trim()))?;
        if (1..=MAX_BATCH).contains(&n) {
            Ok(n)
        } else {
            Err(format!("batch size {n} is outside 1..={MAX_BATCH}"))
        }
    };
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("empty range '{}'", part.trim()));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("no batch sizes given".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// What is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Batch sizes, ascending (batch 1 is always the baseline, listed or not).
    pub batches: Vec<usize>,
    pub positions: Vec<Position>,
    /// Timed runs per batch size (0: no timing).
    pub iterations: usize,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, reason: &'static str| {
            Err(SampleError::InvalidParam {
                row: 0,
                field,
                value,
                reason,
            })
        };
        if self.batches.is_empty() || self.batches.iter().any(|&b| !(1..=MAX_BATCH).contains(&b)) {
            return bad(
                "batches",
                format!("{:?}", self.batches),
                "batch sizes must be in 1..=65536",
            );
        }
        if self.positions.is_empty() {
            return bad("positions", "[]".into(), "give at least one position");
        }
        Ok(())
    }

    /// The largest batch size measured.
    pub fn max_batch(&self) -> usize {
        self.batches.iter().copied().max().unwrap_or(1).max(1)
    }
}

/// The index of the largest value, ties to the lowest index (the greedy token).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Distance in units in the last place between two finite f32 of any sign (`-0 == +0`).
pub fn ulp_diff(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let m = (x.to_bits() & 0x7fff_ffff) as i64;
        if x.is_sign_negative() {
            -m
        } else {
            m
        }
    };
    (key(a) - key(b)).unsigned_abs()
}
