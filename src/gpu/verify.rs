//! Speculative verification on the GPU ([`crate::verify`]): the general kernels over the target
//! rows, one block per row deciding its position, the last block of each request walking its
//! chain (kernels/verify.cuh). One launch, stream-ordered, no host synchronisation, nothing
//! allocated per call: the request outputs are the caller's views ([`VerifyOutputs`]: its own
//! tensors, or a [`VerifyBuffers`]) and the per-row scratch a [`VerifyWorkspace`] sized once, so
//! a serving loop can replay it in a CUDA graph with the draft offsets and tokens rewritten in
//! place on the device.
//!
//! Point-mass drafts (n-gram and greedy drafters; vLLM's `draft_probs = None`) are left out of
//! their row's race or walk; a dense draft's residual `max(0, p - q)` takes a pass of its own
//! over the row and `q` (its distribution is checked on the device: a request with an unusable
//! one gets [`crate::RowStatus::InvalidDraft`]).

use super::{GpuSampler, LogitRows, RowParams, SampleOutputs, Workspace};
use crate::dtype::Logit;
use crate::error::{Result, SampleError};
use crate::params::{validate_batch, SamplingParams};
use crate::processing::Processing;
use crate::verify::{Drafts, VerifyOptions, VerifyOutput};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr};

/// The drafts of a verification launch on the device, in CSR form: request `r`'s drafts are
/// `tokens[offsets[r]..offsets[r + 1]]` and its target rows `offsets[r] + r ..= offsets[r + 1] +
/// r`. The offsets must start at 0 and never decrease (the host paths check it; the device path
/// cannot without a synchronisation, and a launch with broken offsets writes undefined results,
/// inside its buffers).
#[derive(Clone, Copy)]
pub struct DeviceDrafts<'a> {
    /// `[requests + 1]`.
    pub offsets: &'a CudaView<'a, u32>,
    /// `[offsets[requests]]` (at least).
    pub tokens: &'a CudaView<'a, u32>,
    /// `[tokens.len(), vocab]` draft distributions (`q_j`, as the draft model gave them), or
    /// none: point masses (n-gram and greedy drafters; vLLM's `draft_probs = None`).
    pub probs: Option<&'a CudaView<'a, f32>>,
}

/// Where a verification launch writes its request results: views of the caller's device memory
/// (a serving engine's own tensors, or [`VerifyBuffers::views`]). `accepted` and `status` hold
/// one entry a request, `tokens` and `logprobs` `stride` a request — the emitted tokens, then
/// -1, and their logprobs, then NaN. A request with more than `stride - 1` drafts gets
/// [`crate::RowStatus::InvalidDraft`].
pub struct VerifyOutputs<'a> {
    pub accepted: CudaViewMut<'a, i32>,
    pub tokens: CudaViewMut<'a, i32>,
    pub logprobs: CudaViewMut<'a, f32>,
    pub status: CudaViewMut<'a, u32>,
    pub stride: usize,
}

/// The per-target-row scratch of verification launches of up to `max_requests` requests and
/// `max_rows` target rows: each position's residual or bonus draw and its decision, and the
/// requests' arrival counters, which every launch leaves at 0. Sized once; one workspace serves
/// one launch at a time.
pub struct VerifyWorkspace {
    row_tokens: CudaSlice<i32>,
    row_logprobs: CudaSlice<f32>,
    row_status: CudaSlice<u32>,
    positions: CudaSlice<u64>,
    arrivals: CudaSlice<u32>,
    max_requests: usize,
    max_rows: usize,
}

impl VerifyWorkspace {
    pub fn max_requests(&self) -> usize {
        self.max_requests
    }

    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

/// Owned request outputs (`[max_requests, max_drafts + 1]` tokens and logprobs) and a
/// [`VerifyWorkspace`]: what [`GpuSampler::verify_host`] and a caller without output tensors
/// of its own use.
pub struct VerifyBuffers {
    pub accepted: CudaSlice<i32>,
    pub tokens: CudaSlice<i32>,
    pub logprobs: CudaSlice<f32>,
    pub status: CudaSlice<u32>,
    pub workspace: VerifyWorkspace,
    /// `max_drafts + 1`: the request outputs' row length.
    stride: usize,
}

impl VerifyBuffers {
    pub fn max_requests(&self) -> usize {
        self.workspace.max_requests
    }

    pub fn max_rows(&self) -> usize {
        self.workspace.max_rows
    }

    /// The row length of `tokens` and `logprobs`: `max_drafts + 1`.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The outputs as a launch takes them, and the workspace.
    pub fn views(&mut self) -> (VerifyOutputs<'_>, &mut VerifyWorkspace) {
        (
            VerifyOutputs {
                accepted: self.accepted.slice_mut(..),
                tokens: self.tokens.slice_mut(..),
                logprobs: self.logprobs.slice_mut(..),
                status: self.status.slice_mut(..),
                stride: self.stride,
            },
            &mut self.workspace,
        )
    }
}

impl GpuSampler {
    /// A verification workspace ([`VerifyWorkspace`]), zeroed on this sampler's stream.
    pub fn alloc_verify_workspace(
        &self,
        max_requests: usize,
        max_rows: usize,
    ) -> Result<VerifyWorkspace> {
        let (requests, rows) = (max_requests.max(1), max_rows.max(1));
        let s = &self.stream;
        Ok(VerifyWorkspace {
            row_tokens: s.alloc_zeros(rows)?,
            row_logprobs: s.alloc_zeros(rows)?,
            row_status: s.alloc_zeros(rows)?,
            positions: s.alloc_zeros(rows)?,
            arrivals: s.alloc_zeros(requests)?,
            max_requests,
            max_rows,
        })
    }

    /// Verification buffers ([`VerifyBuffers`]), zeroed on this sampler's stream.
    pub fn alloc_verify_buffers(
        &self,
        max_requests: usize,
        max_rows: usize,
        max_drafts: usize,
    ) -> Result<VerifyBuffers> {
        let (requests, stride) = (max_requests.max(1), max_drafts + 1);
        let s = &self.stream;
        Ok(VerifyBuffers {
            accepted: s.alloc_zeros(requests)?,
            tokens: s.alloc_zeros(requests * stride)?,
            logprobs: s.alloc_zeros(requests * stride)?,
            status: s.alloc_zeros(requests)?,
            workspace: self.alloc_verify_workspace(max_requests, max_rows)?,
            stride,
        })
    }

    /// Verifies drafts against `target` on `stream`: `target.batch` rows (at least
    /// `offsets[requests] + requests`; rows past that are skipped, so a fixed grid serves
    /// varying draft counts), `params` one per request or one for all (the position's step is
    /// the request's `step + j`), `processing` (optional) per target row. The results land in
    /// `out` ([`VerifyOutputs`]: the caller's tensors, or [`VerifyBuffers::views`]);
    /// `workspace` is the sampler's, as for sampling, and `scratch` the verification's. Shapes
    /// are checked here; values (parameters, draft tokens, logits) per request on the device.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_on<T: Logit + DeviceRepr>(
        &self,
        stream: &CudaStream,
        target: LogitRows<'_, T>,
        drafts: DeviceDrafts<'_>,
        params: RowParams<'_>,
        processing: Option<(
            &super::DeviceProcessing<'_>,
            &mut super::ProcessingWorkspace,
        )>,
        opts: &VerifyOptions,
        out: &mut VerifyOutputs<'_>,
        workspace: &mut Workspace,
        scratch: &mut VerifyWorkspace,
    ) -> Result<()> {
        let requests = drafts.offsets.len().checked_sub(1).ok_or_else(|| {
            SampleError::Shape("draft offsets need requests + 1 entries (at least one)".into())
        })?;
        if requests > scratch.max_requests || target.batch > scratch.max_rows {
            return Err(SampleError::Capacity(format!(
                "{requests} requests and {} target rows for a verification workspace of {} and \
                 {}",
                target.batch, scratch.max_requests, scratch.max_rows
            )));
        }
        check_verify_outputs(out, requests)?;
        let sample_opts = crate::SampleOptions {
            method: opts.method,
            numerics: opts.numerics,
            top_n: 0,
        };
        let mut rows = SampleOutputs {
            tokens: scratch.row_tokens.slice_mut(..),
            logprobs: scratch.row_logprobs.slice_mut(..),
            status: scratch.row_status.slice_mut(..),
            top: None,
        };
        let launch = super::sample_args::VerifyLaunch {
            requests,
            offsets: drafts.offsets,
            drafts: drafts.tokens,
            probs: drafts.probs,
            stride: out.stride,
            positions: &mut scratch.positions,
            arrivals: &mut scratch.arrivals,
            accepted: &mut out.accepted,
            tokens: &mut out.tokens,
            logprobs: &mut out.logprobs,
            status: &mut out.status,
        };
        self.launch_rows(
            stream,
            target,
            params,
            processing,
            crate::BatchFilters::Any,
            &sample_opts,
            &mut rows,
            workspace,
            Some(launch),
            false,
        )
    }

    /// The convenience path: checks the batch on the host (shapes, parameters, CSR offsets),
    /// copies it in, verifies on this sampler's stream, and copies the results out.
    pub fn verify_host<T: Logit + DeviceRepr>(
        &self,
        target: &[T],
        vocab: usize,
        drafts: &Drafts,
        params: &[SamplingParams],
        processing: &Processing,
        opts: &VerifyOptions,
    ) -> Result<Vec<VerifyOutput>> {
        drafts.check_batch(target.len(), vocab, params.len(), processing)?;
        let requests = drafts.batch();
        // The values too: the host path reports a bad parameter as an error, as sample_host.
        validate_batch(params, requests)?;
        let rows = drafts.target_rows();
        if requests == 0 {
            return Ok(Vec::new());
        }
        let s = &self.stream;
        let target_dev = s.clone_htod(target)?;
        let offsets_dev = s.clone_htod(drafts.offsets)?;
        // One spare token: a batch without drafts still gets a (non-empty) device buffer.
        let mut tokens = drafts.tokens.to_vec();
        tokens.push(0);
        let tokens_dev = s.clone_htod(&tokens)?;
        let params_dev = s.clone_htod(params)?;
        let probs_dev = match drafts.probs.filter(|q| !q.is_empty()) {
            Some(q) => Some(s.clone_htod(q)?),
            None => None,
        };
        let probs_view = probs_dev.as_ref().map(|q| q.as_view());
        let mut out = self.alloc_verify_buffers(requests, rows, drafts.max_count())?;
        let mut workspace = self.alloc_workspace(rows)?;
        let (mut views, scratch) = out.views();
        let logits = LogitRows {
            data: &target_dev.as_view(),
            batch: rows,
            vocab,
            row_stride: vocab,
        };
        let draft_views = DeviceDrafts {
            offsets: &offsets_dev.as_view(),
            tokens: &tokens_dev.as_view(),
            probs: probs_view.as_ref(),
        };
        let packed = params_dev.as_view();
        if *processing == Processing::NONE {
            self.verify_on(
                s,
                logits,
                draft_views,
                RowParams::Packed(&packed),
                None,
                opts,
                &mut views,
                &mut workspace,
                scratch,
            )?;
        } else {
            let buf = super::DeviceProcessingBuf::upload(s, processing)?;
            let capacity = processing.edit_table_capacity(rows);
            let mut ws = self.alloc_processing_workspace(rows, vocab, capacity)?;
            buf.with_view(|p| {
                self.verify_on(
                    s,
                    logits,
                    draft_views,
                    RowParams::Packed(&packed),
                    Some((p, &mut ws)),
                    opts,
                    &mut views,
                    &mut workspace,
                    scratch,
                )
            })?;
        }
        self.download_verify(&out, requests)
    }

    /// Copies `requests` requests' results out of `out` (waits for the stream).
    pub fn download_verify(
        &self,
        out: &VerifyBuffers,
        requests: usize,
    ) -> Result<Vec<VerifyOutput>> {
        let s = &self.stream;
        let accepted = s.clone_dtoh(&out.accepted)?;
        let tokens = s.clone_dtoh(&out.tokens)?;
        let logprobs = s.clone_dtoh(&out.logprobs)?;
        let status = s.clone_dtoh(&out.status)?;
        Ok((0..requests.min(out.max_requests()))
            .map(|r| {
                let row = r * out.stride..(r + 1) * out.stride;
                VerifyOutput::from_padded(
                    status[r],
                    accepted[r],
                    &tokens[row.clone()],
                    &logprobs[row],
                )
            })
            .collect())
    }
}

/// That `out` holds `requests` requests: `accepted` and `status` one entry each, `tokens` and
/// `logprobs` `stride` each, and a stride the kernels can index (at least 1, below 2^32).
fn check_verify_outputs(out: &VerifyOutputs<'_>, requests: usize) -> Result<()> {
    if out.stride == 0 || u32::try_from(out.stride).is_err() {
        return Err(SampleError::Shape(format!(
            "a verification output stride of {} (give n_max + 1)",
            out.stride
        )));
    }
    let short = |name: &str, len: usize, need: usize| {
        (len < need).then(|| {
            SampleError::Shape(format!(
                "verification output {name} holds {len} entries; {requests} requests of stride {} \
                 need {need}",
                out.stride
            ))
        })
    };
    let rows = requests * out.stride;
    [
        short("accepted", out.accepted.len(), requests),
        short("status", out.status.len(), requests),
        short("tokens", out.tokens.len(), rows),
        short("logprobs", out.logprobs.len(), rows),
    ]
    .into_iter()
    .flatten()
    .next()
    .map_or(Ok(()), Err)
}
