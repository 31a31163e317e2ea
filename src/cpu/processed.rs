//! Sampling with logits processing ([`crate::processing`]): each row's processed logits are
//! computed once in f32 (the same bits the kernels compute), then sampled by the reference or
//! the invariant twin exactly as an unprocessed row.

use super::reference::{
    batch_size, sample_row, sample_row_scanned, scan_row, RowOutput, RowScan, SampleOptions,
};
use super::select::top_sorted;
use super::TokenLogprob;
use crate::dtype::Logit;
use crate::error::Result;
use crate::params::{row_params, validate_batch, Numerics, RowStatus};
use crate::processing::{process_row_scanned, LogprobsMode, Processing};
use crate::SamplingParams;
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// One processed row per worker thread, reused across rows and calls.
    static PROCESSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Samples a `[batch, vocab]` batch after `processing`, reporting logprobs as `logprobs` says.
/// `params` holds one entry for every row or one per row. With [`Processing::NONE`] and
/// [`LogprobsMode::Processed`] this is [`super::sample_batch`], bit for bit.
pub fn sample_batch_processed<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    logprobs: LogprobsMode,
    opts: &SampleOptions,
) -> Result<Vec<RowOutput>> {
    let batch = batch_size(logits.len(), vocab)?;
    validate_batch(params, batch)?;
    processing.validate(batch, vocab)?;
    Ok(logits
        .par_chunks(vocab)
        .enumerate()
        .map(|(r, row)| {
            let lists = processing.row(r, vocab);
            let p = row_params(params, r);
            if lists.is_off() && logprobs == LogprobsMode::Processed {
                return sample_row_in(row, p, opts);
            }
            // The raw row's scan only for raw logprobs: processing checks the raw logits itself
            // (a broken model output stays broken whatever masks it) and scans what it writes.
            let raw_scan = match logprobs {
                LogprobsMode::Raw => match scan_row(row) {
                    Ok(scan) => Some(scan),
                    Err(status) => return RowOutput::failed(status),
                },
                LogprobsMode::Processed => None,
            };
            let mut out = PROCESSED.with_borrow_mut(|processed| {
                match process_row_scanned(row, &lists, processed) {
                    Ok(scan) => sample_scanned_in(processed.as_slice(), scan, p, opts),
                    Err(status) => RowOutput::failed(status),
                }
            });
            if let (Some(raw_scan), RowStatus::Ok) = (raw_scan, out.status) {
                let token = out.token.expect("an Ok row has a token");
                (out.logprob, out.top_logprobs) = match opts.numerics {
                    Numerics::Fast => raw_logprobs(row, &raw_scan, token, opts.top_n),
                    Numerics::Invariant => {
                        super::invariant::raw_logprobs(row, &raw_scan, token, opts.top_n)
                    }
                };
            }
            out
        })
        .collect())
}

fn sample_scanned_in(
    row: &[f32],
    scan: RowScan,
    p: &SamplingParams,
    opts: &SampleOptions,
) -> RowOutput {
    match opts.numerics {
        Numerics::Fast => sample_row_scanned(row, Some(scan), p, opts),
        Numerics::Invariant => super::invariant::sample_row_scanned(row, Some(scan), p, opts),
    }
}

fn sample_row_in<T: Logit>(row: &[T], p: &SamplingParams, opts: &SampleOptions) -> RowOutput {
    match opts.numerics {
        Numerics::Fast => sample_row(row, p, opts),
        Numerics::Invariant => super::invariant::sample_row(row, p, opts),
    }
}

/// The logprobs of `token` and of the row's `top_n` most probable tokens under the raw logits'
/// softmax at temperature 1, exactly in f64 ([`LogprobsMode::Raw`]).
pub fn raw_logprobs<T: Logit>(
    row: &[T],
    scan: &RowScan,
    token: u32,
    top_n: usize,
) -> (f64, Vec<TokenLogprob>) {
    let max = scan.max as f64;
    let norm: f64 = row
        .iter()
        .map(|x| x.to_f32())
        .filter(|&x| x != f32::NEG_INFINITY)
        .map(|x| (x as f64 - max).exp())
        .sum();
    let log_norm = norm.ln();
    let logprob = |x: f32| x as f64 - max - log_norm;
    let top = top_sorted(row, top_n)
        .iter()
        .map(|c| TokenLogprob {
            token: c.token,
            logprob: logprob(c.logit),
        })
        .collect();
    (logprob(row[token as usize].to_f32()), top)
}
