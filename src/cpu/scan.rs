//! The first pass over a row: its maximum, where it first is, how many logits are finite, or the
//! status that makes the row unusable. Every sampler starts here, and processing computes the
//! same facts while it writes the processed row, so the pass is written once, for both.

use crate::dtype::Logit;
use crate::params::RowStatus;

/// Facts from one pass over a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowScan {
    pub max: f32,
    /// The lowest index holding `max`.
    pub argmax: u32,
    /// How many logits are finite (not `-inf`).
    pub finite: usize,
}

/// Scans a row for its maximum and finite count, or the status that makes it unusable: NaN or
/// `+inf` anywhere is [`RowStatus::NonFiniteLogit`], no finite logit [`RowStatus::NoFiniteLogit`].
pub fn scan_row<T: Logit>(row: &[T]) -> Result<RowScan, RowStatus> {
    let mut scanner = RowScanner::new();
    for (c, chunk) in row.chunks(RowScanner::CHUNK).enumerate() {
        scanner.chunk(c * RowScanner::CHUNK, chunk);
        if scanner.bad {
            return Err(RowStatus::NonFiniteLogit);
        }
    }
    scanner.finish()
}

/// [`scan_row`] fed chunk by chunk, in order. Each chunk's facts are gathered without a branch,
/// in eight independent lanes (the loop vectorises, and masked rows, which interleave `-inf`
/// unpredictably, cost no mispredictions); the chunk's first index of a new maximum is looked
/// for only when the maximum rises.
#[derive(Clone, Copy, Debug)]
pub struct RowScanner {
    pub scan: RowScan,
    /// A NaN or `+inf` was seen.
    pub bad: bool,
}

impl Default for RowScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl RowScanner {
    /// The chunk length callers feed (the last chunk may be shorter).
    pub const CHUNK: usize = 64;

    pub fn new() -> Self {
        RowScanner {
            scan: RowScan {
                max: f32::NEG_INFINITY,
                argmax: 0,
                finite: 0,
            },
            bad: false,
        }
    }

    /// Adds the logits at `start..start + chunk.len()`.
    #[inline]
    pub fn chunk<T: Logit>(&mut self, start: usize, chunk: &[T]) {
        let mut bad = [false; 8];
        let mut finite = [0u32; 8];
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut step = |k: usize, x: f32| {
            bad[k] |= x.is_nan() | (x == f32::INFINITY);
            finite[k] += (x != f32::NEG_INFINITY) as u32;
            lanes[k] = if x > lanes[k] { x } else { lanes[k] };
        };
        let groups = chunk.chunks_exact(8);
        let tail = groups.remainder();
        for group in groups {
            for (k, x) in group.iter().enumerate() {
                step(k, x.to_f32());
            }
        }
        for (k, x) in tail.iter().enumerate() {
            step(k, x.to_f32());
        }
        self.bad |= bad.contains(&true);
        self.scan.finite += finite.iter().map(|&f| f as usize).sum::<usize>();
        let max = lanes.into_iter().fold(f32::NEG_INFINITY, f32::max);
        if max > self.scan.max {
            self.scan.max = max;
            let at = chunk.iter().position(|x| x.to_f32() == max);
            self.scan.argmax = (start + at.expect("the chunk holds its maximum")) as u32;
        }
    }

    /// The scan, or the row's status.
    pub fn finish(self) -> Result<RowScan, RowStatus> {
        if self.bad {
            Err(RowStatus::NonFiniteLogit)
        } else if self.scan.finite == 0 {
            Err(RowStatus::NoFiniteLogit)
        } else {
            Ok(self.scan)
        }
    }
}
