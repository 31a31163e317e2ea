//! The CPU path: host arrays through the library's exact f64 reference (fast numerics) or its
//! invariant twin — what `batchsample sample` and `batchsample verify` run without a GPU, so
//! the same inputs give the CLI's tokens and logprobs.

use crate::args::Inputs;
use crate::errors::{to_py, value_error};
use crate::outputs::{SampleOuts, VerifyOuts};
use crate::tensor::{Device, Elem, Tensor};
use batchsample::cpu::{
    compare_token, sample_batch_processed, verify_batch, Agreement, Tolerances,
};
use batchsample::params::validate_batch;
use batchsample::processing::LogprobsMode;
use batchsample::verify::{Drafts, VerifyOptions};
use batchsample::{DrawMethod, Logit, RowOutput, SampleOptions};
use pyo3::prelude::*;
use std::borrow::Cow;

/// `[rows, vocab]` host logits as one dense slice: in place when the rows are back to back, else
/// (a padded row stride) one copy.
fn dense_rows<T: Logit>(logits: &Tensor) -> PyResult<(Cow<'_, [T]>, usize, usize)> {
    let (rows, vocab, stride) = logits.expect_rows()?;
    if rows == 0 {
        return Ok((Cow::Borrowed(&[]), 0, vocab));
    }
    // SAFETY: a CPU array (checked by the caller) of T-sized elements; `expect_rows` checked the
    // shape and strides, so rows * stride elements (the last row: vocab) lie in it.
    let span = (rows - 1) * stride + vocab;
    let all = unsafe { logits.host::<T>(span) };
    if stride == vocab {
        return Ok((Cow::Borrowed(all), rows, vocab));
    }
    let mut dense = Vec::with_capacity(rows * vocab);
    for r in 0..rows {
        dense.extend_from_slice(&all[r * stride..r * stride + vocab]);
    }
    Ok((Cow::Owned(dense), rows, vocab))
}

/// Runs `$body` with `$T` the logits' element type.
macro_rules! with_logit_type {
    ($elem:expr, $T:ident => $body:expr) => {
        match $elem {
            Elem::F32 => {
                type $T = f32;
                $body
            }
            Elem::F16 => {
                type $T = half::f16;
                $body
            }
            _ => {
                type $T = half::bf16;
                $body
            }
        }
    };
}
pub(crate) use with_logit_type;

/// Samples host logits into host outputs.
pub fn sample(
    py: Python<'_>,
    inputs: &Inputs,
    logprobs: LogprobsMode,
    opts: &SampleOptions,
    out: &SampleOuts,
) -> PyResult<()> {
    let Inputs {
        logits,
        elem,
        fields,
        processing,
        ..
    } = inputs;
    let (rows, _, _) = logits.expect_rows()?;
    fields.check(rows, Device::Cpu)?;
    out.check(rows, opts.top_n, Device::Cpu)?;
    let params = fields.host_rows(rows);
    let view = processing.host_view()?;
    let results = with_logit_type!(elem, T => {
        let (data, _, vocab) = dense_rows::<T>(logits)?;
        py.detach(|| sample_batch_processed(&data, vocab, &params, &view, logprobs, opts))
    })
    .map_err(to_py)?;
    write_rows(&results, out, opts.top_n);
    Ok(())
}

/// The per-row results into the output arrays (after `SampleOuts::check` on the CPU): a failed
/// row gets token -1 and logprob NaN, as on the GPU; the top-n lists end in (-1, -inf).
fn write_rows(results: &[RowOutput], out: &SampleOuts, top_n: usize) {
    let rows = results.len();
    // SAFETY: checked by `SampleOuts::check`: writable CPU arrays of these shapes and 4-byte
    // element types, each its own memory.
    let (tokens, logprobs, status) = unsafe {
        (
            out.tokens.host_mut::<i32>(rows),
            out.logprobs.host_mut::<f32>(rows),
            out.status.host_mut::<u32>(rows),
        )
    };
    for (r, row) in results.iter().enumerate() {
        tokens[r] = row.token.map_or(-1, |t| t as i32);
        logprobs[r] = row.logprob as f32;
        status[r] = row.status as u32;
    }
    if let Some((t, l)) = &out.top {
        let (top_tokens, top_logprobs) = unsafe {
            (
                t.host_mut::<i32>(rows * top_n),
                l.host_mut::<f32>(rows * top_n),
            )
        };
        for (r, row) in results.iter().enumerate() {
            for i in 0..top_n {
                let (token, logprob) = row
                    .top_logprobs
                    .get(i)
                    .map_or((-1, f32::NEG_INFINITY), |c| {
                        (c.token as i32, c.logprob as f32)
                    });
                top_tokens[r * top_n + i] = token;
                top_logprobs[r * top_n + i] = logprob;
            }
        }
    }
}

/// The CSR drafts of a verification call: offsets `[requests + 1]` and tokens (uint32 or int32),
/// and optionally float32 draft distributions `[drafts, vocab]`.
pub struct DraftArgs {
    pub offsets: Tensor,
    pub tokens: Tensor,
    pub probs: Option<Tensor>,
}

impl DraftArgs {
    pub fn check(&self, device: Device) -> PyResult<usize> {
        let ints = [Elem::I32, Elem::U32];
        for t in [&self.offsets, &self.tokens] {
            t.expect_elem(&ints)?;
            if t.shape.len() != 1 {
                return Err(t.error(format!("shape {:?} (expected 1-D)", t.shape)));
            }
            t.expect_contiguous()?;
            t.expect_device(device)?;
        }
        if let Some(p) = &self.probs {
            p.expect_elem(&[Elem::F32])?;
            p.expect_contiguous()?;
            p.expect_device(device)?;
        }
        self.offsets.len().checked_sub(1).ok_or_else(|| {
            self.offsets
                .error("needs requests + 1 entries (at least one)")
        })
    }
}

/// Verifies host drafts against host target logits into host outputs.
pub fn verify(
    py: Python<'_>,
    inputs: &Inputs,
    drafts: &DraftArgs,
    opts: &VerifyOptions,
    out: &VerifyOuts,
) -> PyResult<()> {
    let Inputs {
        logits: target,
        elem,
        fields,
        processing,
        ..
    } = inputs;
    let requests = drafts.check(Device::Cpu)?;
    fields.check(requests, Device::Cpu)?;
    let width = out.check(requests, Device::Cpu)?;
    let params = fields.host_rows(requests);
    let view = processing.host_view()?;
    // SAFETY: contiguous CPU arrays of 4-byte elements (checked above).
    let host = unsafe {
        Drafts {
            offsets: drafts.offsets.host(drafts.offsets.len()),
            tokens: drafts.tokens.host(drafts.tokens.len()),
            probs: drafts.probs.as_ref().map(|p| p.host::<f32>(p.len())),
        }
    };
    if host.max_count() + 1 > width {
        return Err(value_error(format!(
            "out tokens: {width} columns for a request of {} drafts (needs drafts + 1)",
            host.max_count()
        )));
    }
    let results = with_logit_type!(elem, T => {
        let (data, _, vocab) = dense_rows::<T>(target)?;
        py.detach(|| verify_batch(&data, vocab, &host, &params, &view, opts))
    })
    .map_err(to_py)?;
    // SAFETY: checked by `VerifyOuts::check`: writable CPU arrays of these shapes.
    let (accepted, tokens, logprobs, status) = unsafe {
        (
            out.accepted.host_mut::<i32>(requests),
            out.tokens.host_mut::<i32>(requests * width),
            out.logprobs.host_mut::<f32>(requests * width),
            out.status.host_mut::<u32>(requests),
        )
    };
    for (r, v) in results.iter().enumerate() {
        accepted[r] = v.accepted as i32;
        status[r] = v.status as u32;
        for i in 0..width {
            tokens[r * width + i] = v.tokens.get(i).map_or(-1, |&t| t as i32);
            logprobs[r * width + i] = v.logprobs.get(i).map_or(f32::NAN, |&l| l as f32);
        }
    }
    Ok(())
}

/// The reference's verdict on each row's token (`same`, `explained` by float rounding at a
/// boundary, or `unexplained`), with the library's explanation.
pub fn compare(
    py: Python<'_>,
    inputs: &Inputs,
    tokens: &Tensor,
    method: DrawMethod,
) -> PyResult<Vec<(&'static str, String)>> {
    let Inputs {
        logits,
        elem,
        fields,
        ..
    } = inputs;
    let (rows, _, _) = logits.expect_rows()?;
    fields.check(rows, Device::Cpu)?;
    tokens.expect_elem(&[Elem::I32, Elem::I64])?;
    tokens.expect_vector(rows)?;
    tokens.expect_device(Device::Cpu)?;
    let params = fields.host_rows(rows);
    validate_batch(&params, rows).map_err(to_py)?;
    // SAFETY: a contiguous CPU vector of `rows` elements of the checked type.
    let drawn: Vec<i64> = unsafe {
        match tokens.elem {
            Elem::I32 => tokens.host::<i32>(rows).iter().map(|&t| t as i64).collect(),
            _ => tokens.host::<i64>(rows).to_vec(),
        }
    };
    let verdicts = with_logit_type!(elem, T => {
        let (data, _, vocab) = dense_rows::<T>(logits)?;
        py.detach(|| {
            (0..rows)
                .map(|r| {
                    let row = &data[r * vocab..(r + 1) * vocab];
                    let token = match u32::try_from(drawn[r]) {
                        Ok(t) if (t as usize) < vocab => t,
                        _ => {
                            let why = format!("token {} is outside the vocabulary", drawn[r]);
                            return ("unexplained", why);
                        }
                    };
                    match compare_token(row, &params[r], method, token, &Tolerances::default()) {
                        Agreement::Same => ("same", String::new()),
                        Agreement::Explained(why) => ("explained", why),
                        Agreement::Unexplained(why) => ("unexplained", why),
                    }
                })
                .collect()
        })
    });
    Ok(verdicts)
}
