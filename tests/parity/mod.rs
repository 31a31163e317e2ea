//! Diffing a batch of results from another implementation (the GPU, or the kernels run on the
//! host) against the exact CPU reference, row by row, with every disagreement either explained
//! by a float boundary or reported.

#![allow(dead_code)]

use batchsample::cpu::{compare_token, sample_row, Agreement, Tolerances};
use batchsample::params::row_params;
use batchsample::{Logit, RowOutput, RowStatus, SampleOptions, SamplingParams};
use rayon::prelude::*;

#[derive(Debug, Default)]
pub struct ParityReport {
    pub rows: usize,
    pub same: usize,
    pub failed_rows: usize,
    pub explained: Vec<String>,
    pub unexplained: Vec<String>,
    /// Largest |logprob - reference| over rows whose token and kept set agree.
    pub max_logprob_error: f64,
}

impl ParityReport {
    pub fn merge(&mut self, other: ParityReport) {
        self.rows += other.rows;
        self.same += other.same;
        self.failed_rows += other.failed_rows;
        self.explained.extend(other.explained);
        self.unexplained.extend(other.unexplained);
        self.max_logprob_error = self.max_logprob_error.max(other.max_logprob_error);
    }

    pub fn summary(&self) -> String {
        format!(
            "{} rows: {} same token, {} failed as expected, {} differ within float error, {} unexplained; max logprob error {:.2e}",
            self.rows,
            self.same,
            self.failed_rows,
            self.explained.len(),
            self.unexplained.len(),
            self.max_logprob_error
        )
    }

    /// Panics with the first unexplained rows, if any.
    pub fn assert_clean(&self) {
        assert!(
            self.unexplained.is_empty(),
            "{}\nfirst unexplained: {:#?}",
            self.summary(),
            &self.unexplained[..self.unexplained.len().min(8)]
        );
    }
}

/// Compares `outputs` (one per row of `logits`) with the reference.
pub fn check_parity<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    outputs: &[RowOutput],
    logprob_tolerance: f64,
) -> ParityReport {
    let tol = Tolerances::default();
    let rows: Vec<(usize, &[T])> = logits.chunks(vocab).enumerate().collect();
    // Rows are independent: check them in parallel, then merge in row order.
    let per_row: Vec<ParityReport> = rows
        .par_iter()
        .zip(outputs.par_iter())
        .map(|(&(r, row), out)| {
            check_row(
                r,
                row,
                row_params(params, r),
                opts,
                out,
                &tol,
                logprob_tolerance,
            )
        })
        .collect();
    let mut report = ParityReport::default();
    per_row.into_iter().for_each(|r| report.merge(r));
    report
}

pub mod batches;
pub mod processed;

fn check_row<T: Logit>(
    r: usize,
    row: &[T],
    p: &SamplingParams,
    opts: &SampleOptions,
    out: &RowOutput,
    tol: &Tolerances,
    logprob_tolerance: f64,
) -> ParityReport {
    let mut report = ParityReport {
        rows: 1,
        ..Default::default()
    };
    let reference = sample_row(row, p, opts);
    if reference.status != RowStatus::Ok || out.status != RowStatus::Ok {
        if reference.status == out.status && out.token.is_none() {
            report.failed_rows += 1;
        } else {
            report.unexplained.push(format!(
                "row {r}: status {:?} / token {:?}, reference {:?}",
                out.status, out.token, reference.status
            ));
        }
        return report;
    }
    let token = out.token.expect("ok rows have a token");
    match compare_token(row, p, opts.method, token, tol) {
        Agreement::Same => {
            report.same += 1;
            // Top-n follows rank order, which is exact: the common prefix must agree.
            let n = out.top_logprobs.len().min(reference.top_logprobs.len());
            let ours: Vec<u32> = out.top_logprobs[..n].iter().map(|t| t.token).collect();
            let theirs: Vec<u32> = reference.top_logprobs[..n]
                .iter()
                .map(|t| t.token)
                .collect();
            if ours != theirs {
                report
                    .unexplained
                    .push(format!("row {r}: top-n {ours:?}, reference {theirs:?}"));
                return report;
            }
            if out.top_logprobs.len() == reference.top_logprobs.len() {
                let err = (out.logprob - reference.logprob).abs();
                if err > logprob_tolerance * (1.0 + reference.logprob.abs()) {
                    report.unexplained.push(format!(
                        "row {r}: logprob {} vs reference {} ({p:?})",
                        out.logprob, reference.logprob
                    ));
                    return report;
                }
                report.max_logprob_error = err;
                for (a, b) in out.top_logprobs.iter().zip(&reference.top_logprobs) {
                    let err = (a.logprob - b.logprob).abs();
                    if err > logprob_tolerance * (1.0 + b.logprob.abs()) {
                        report.unexplained.push(format!(
                            "row {r}: top logprob of {} is {} vs reference {}",
                            a.token, a.logprob, b.logprob
                        ));
                        break;
                    }
                }
            }
        }
        Agreement::Explained(why) => report.explained.push(format!("row {r}: {why}")),
        Agreement::Unexplained(why) => report.unexplained.push(format!("row {r}: {why} ({p:?})")),
    }
    report
}
