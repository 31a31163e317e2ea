//! The CUDA path: the caller's device arrays borrowed in place ([`GpuSampler::borrow_slice`]),
//! launched on the caller's stream ([`GpuSampler::borrow_stream`]: PyTorch's current stream),
//! with the per-field parameters as the kernels read them (FlashInfer's `array ? array[row] :
//! scalar`). Nothing is allocated and nothing waits on the host once the workspaces have grown
//! to a call's size; growing them is the one synchronising step (do it before a graph capture:
//! a warm-up call of the largest shape).

use crate::args::{Field, Fields, Inputs, ProcessingArgs};
use crate::cpu::{with_logit_type, DraftArgs};
use crate::errors::to_py;
use crate::outputs::{SampleOuts, VerifyOuts};
use crate::tensor::{Device, Elem, Tensor};
use batchsample::gpu::{
    BorrowedSlice, DeviceBiasLists, DeviceDrafts, DeviceProcessing, DeviceTokenLists, GpuConfig,
    GpuSampler, LogitRows, ParamFields, ProcessingWorkspace, RowParams, SampleOutputs, TopOutputs,
    VerifyOutputs, VerifyWorkspace, Workspace, MAX_TOP_N,
};
use batchsample::params::validate_batch;
use batchsample::processing::{LogprobsMode, Penalties};
use batchsample::verify::VerifyOptions;
use batchsample::{BatchFilters, SampleOptions};
use cudarc::driver::{CudaStream, CudaView};
use pyo3::prelude::*;
use std::sync::Arc;

/// A call's logit rows: `rows` of `vocab`, `row_stride` apart (`span` elements in all), and
/// whether the call is processed.
struct Shape {
    rows: usize,
    vocab: usize,
    row_stride: usize,
    span: usize,
    processed: bool,
}

/// One device's sampler and the workspaces it has grown so far.
pub struct GpuState {
    sampler: GpuSampler,
    ordinal: usize,
    workspace: Workspace,
    processing: Option<ProcessingWorkspace>,
    verify: Option<VerifyWorkspace>,
}

/// `t`'s elements as a device slice of `T` (same element size: checked by the callers).
///
/// # Safety
/// `t` is a contiguous CUDA array of the sampler's device that outlives the slice and the
/// launches that use it.
unsafe fn borrow<T>(
    g: &GpuSampler,
    s: &Arc<CudaStream>,
    t: &Tensor,
    len: usize,
) -> BorrowedSlice<T> {
    g.borrow_slice(s, t.addr as u64, len)
}

impl GpuState {
    pub fn open(ordinal: usize, max_batch: usize) -> PyResult<GpuState> {
        let sampler = GpuSampler::new(GpuConfig {
            device_ordinal: ordinal,
            max_batch: max_batch.max(1),
            max_top_n: MAX_TOP_N,
        })
        .map_err(to_py)?;
        let workspace = sampler.alloc_workspace(max_batch.max(1)).map_err(to_py)?;
        // Zeroed on the sampler's own stream: done before any launch on the caller's.
        sampler
            .stream()
            .synchronize()
            .map_err(|e| to_py(e.into()))?;
        Ok(GpuState {
            sampler,
            ordinal,
            workspace,
            processing: None,
            verify: None,
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// Waits for every stream of the device: before a buffer that earlier launches on the
    /// caller's stream may still use is replaced (dropping it frees it on the sampler's own
    /// stream, unordered with the caller's), and after new buffers are zeroed on the sampler's
    /// stream, before the caller's stream uses them.
    fn settle(&self) -> PyResult<()> {
        self.sampler
            .context()
            .synchronize()
            .map_err(|e| to_py(e.into()))
    }

    /// Grows the workspaces to serve `rows` rows (and, processed, `vocab` and `entries` list
    /// entries): the one step that waits for the device (`settle`, before and after).
    fn grow(&mut self, rows: usize, processed: Option<(usize, usize)>) -> PyResult<()> {
        let workspace_fits = rows <= self.workspace.max_batch();
        let processing_fits = processed.is_none_or(|(vocab, entries)| {
            self.processing.as_ref().is_some_and(|w| {
                rows <= w.max_batch() && vocab <= w.max_vocab() && entries <= w.table_capacity()
            })
        });
        if workspace_fits && processing_fits {
            return Ok(());
        }
        self.settle()?;
        if !workspace_fits {
            self.workspace = self.sampler.alloc_workspace(rows).map_err(to_py)?;
        }
        if let Some((vocab, entries)) = processed {
            if !processing_fits {
                let (b, v, e) = self.processing.as_ref().map_or((0, 0, 0), |w| {
                    (w.max_batch(), w.max_vocab(), w.table_capacity())
                });
                let ws = self
                    .sampler
                    .alloc_processing_workspace(rows.max(b), vocab.max(v), entries.max(e))
                    .map_err(to_py)?;
                self.processing = Some(ws);
            }
        }
        self.settle()
    }

    fn grow_verify(&mut self, requests: usize, rows: usize) -> PyResult<()> {
        let fits = self
            .verify
            .as_ref()
            .is_some_and(|v| requests <= v.max_requests() && rows <= v.max_rows());
        if !fits {
            self.settle()?;
            let (q, r) = self
                .verify
                .as_ref()
                .map_or((0, 0), |v| (v.max_requests(), v.max_rows()));
            let scratch = self
                .sampler
                .alloc_verify_workspace(requests.max(q), rows.max(r))
                .map_err(to_py)?;
            self.verify = Some(scratch);
            self.settle()?;
        }
        Ok(())
    }

    /// The launch stream: the caller's (`torch.cuda.current_stream().cuda_stream`; 0 is the
    /// legacy default stream).
    fn stream(&self, raw: usize) -> Arc<CudaStream> {
        // SAFETY: the Python layer passes the current stream of the logits' device, which
        // PyTorch keeps alive; PyTorch and this sampler share the device's primary context.
        unsafe {
            self.sampler
                .borrow_stream(raw as cudarc::driver::sys::CUstream)
        }
    }

    /// What sampling and verification check first: the logits on this device, `[rows,
    /// vocab]` with unit column stride; the parameters' arrays `[param_rows]` (`rows` when
    /// none: one set a logit row) and their scalars valid; the workspaces grown. Returns the
    /// call's shape. `raw`: raw logprobs, which take the processed launch with or without
    /// processing.
    fn prepare(
        &mut self,
        inputs: &Inputs,
        param_rows: Option<usize>,
        raw: bool,
    ) -> PyResult<Shape> {
        let device = Device::Cuda(self.ordinal);
        inputs.logits.expect_device(device)?;
        let (rows, vocab, row_stride) = inputs.logits.expect_rows()?;
        inputs.fields.check(param_rows.unwrap_or(rows), device)?;
        validate_batch(&[inputs.fields.scalars()], 1).map_err(to_py)?;
        let processing = &inputs.processing;
        let processed = !processing.is_none() || raw;
        self.grow(
            rows,
            processed.then(|| (vocab, processing.row_entries_bound())),
        )?;
        Ok(Shape {
            rows,
            vocab,
            row_stride,
            // The elements from the first row's start to the last row's end.
            span: if rows == 0 {
                0
            } else {
                (rows - 1) * row_stride + vocab
            },
            processed,
        })
    }

    /// Samples device logits into device outputs on the caller's stream.
    pub fn sample(
        &mut self,
        inputs: &Inputs,
        mode: LogprobsMode,
        opts: &SampleOptions,
        out: &SampleOuts,
    ) -> PyResult<()> {
        out.check(
            inputs.logits.expect_rows()?.0,
            opts.top_n,
            Device::Cuda(self.ordinal),
        )?;
        let Shape {
            rows,
            vocab,
            row_stride,
            span,
            processed,
        } = self.prepare(inputs, None, mode == LogprobsMode::Raw)?;
        let Inputs {
            logits,
            elem,
            fields,
            processing,
            stream,
        } = inputs;
        let s = self.stream(*stream);
        let g = &self.sampler;
        // SAFETY (every borrow below): arrays on this device, checked contiguous and of the
        // borrowed element size; they outlive this call, and PyTorch orders its later work on
        // them after this stream's launches.
        let params = unsafe { ParamArrays::borrow(g, &s, fields) };
        let views = params.views();
        let param_fields = views.fields(fields.scalars());
        let mut tokens = unsafe { borrow::<i32>(g, &s, &out.tokens, rows) };
        let mut logprobs = unsafe { borrow::<f32>(g, &s, &out.logprobs, rows) };
        let mut status = unsafe { borrow::<u32>(g, &s, &out.status, rows) };
        let mut top = out.top.as_ref().map(|(t, l)| unsafe {
            (
                borrow::<i32>(g, &s, t, rows * opts.top_n),
                borrow::<f32>(g, &s, l, rows * opts.top_n),
            )
        });
        let mut outs = SampleOutputs {
            tokens: tokens.view_mut(),
            logprobs: logprobs.view_mut(),
            status: status.view_mut(),
            top: top.as_mut().map(|(t, l)| TopOutputs {
                tokens: t.view_mut(),
                logprobs: l.view_mut(),
                stride: opts.top_n,
            }),
        };
        let lists = unsafe { ProcessingArrays::borrow(g, &s, processing) };
        let lists_views = lists.views();
        let device_processing = lists_views.processing();
        with_logit_type!(elem, T => {
            let data = unsafe { borrow::<T>(g, &s, logits, span) };
            let view = data.view();
            let rows_in = LogitRows { data: &view, batch: rows, vocab, row_stride };
            let params = RowParams::Fields(param_fields);
            match (&mut self.processing, processed) {
                (Some(pws), true) => g.sample_processed_on(
                    &s, rows_in, params, &device_processing, mode, opts, &mut outs,
                    &mut self.workspace, pws,
                ),
                _ => g.sample_rows_on(
                    &s, rows_in, params, BatchFilters::Any, opts, &mut outs, &mut self.workspace,
                ),
            }
        })
        .map_err(to_py)
    }

    /// Verifies device drafts against device target logits, straight into the caller's
    /// device outputs (their row length is the stride), on the caller's stream.
    pub fn verify(
        &mut self,
        inputs: &Inputs,
        drafts: &DraftArgs,
        opts: &VerifyOptions,
        out: &VerifyOuts,
    ) -> PyResult<()> {
        let device = Device::Cuda(self.ordinal);
        let requests = drafts.check(device)?;
        let width = out.check(requests, device)?;
        let Shape {
            rows,
            vocab,
            row_stride,
            span,
            processed,
        } = self.prepare(inputs, Some(requests), false)?;
        self.grow_verify(requests, rows)?;
        let Inputs {
            logits: target,
            elem,
            fields,
            processing,
            stream,
        } = inputs;
        let s = self.stream(*stream);
        let g = &self.sampler;
        // SAFETY: as in `sample`.
        let params = unsafe { ParamArrays::borrow(g, &s, fields) };
        let views = params.views();
        let param_fields = views.fields(fields.scalars());
        let offsets = unsafe { borrow::<u32>(g, &s, &drafts.offsets, drafts.offsets.len()) };
        let tokens = unsafe { borrow::<u32>(g, &s, &drafts.tokens, drafts.tokens.len()) };
        let probs = drafts
            .probs
            .as_ref()
            .map(|p| unsafe { borrow::<f32>(g, &s, p, p.len()) });
        let (offsets_v, tokens_v) = (offsets.view(), tokens.view());
        let probs_v = probs.as_ref().map(|p| p.view());
        let device_drafts = DeviceDrafts {
            offsets: &offsets_v,
            tokens: &tokens_v,
            probs: probs_v.as_ref(),
        };
        let lists = unsafe { ProcessingArrays::borrow(g, &s, processing) };
        let lists_views = lists.views();
        let device_processing = lists_views.processing();
        let scratch = self.verify.as_mut().expect("grown above");
        let n = requests * width;
        // SAFETY: as in `sample` (the outputs checked by `out.check`: `[requests]` and
        // `[requests, width]`, contiguous).
        let mut accepted = unsafe { borrow::<i32>(g, &s, &out.accepted, requests) };
        let mut status = unsafe { borrow::<u32>(g, &s, &out.status, requests) };
        let mut tokens_out = unsafe { borrow::<i32>(g, &s, &out.tokens, n) };
        let mut logprobs_out = unsafe { borrow::<f32>(g, &s, &out.logprobs, n) };
        let mut outs = VerifyOutputs {
            accepted: accepted.view_mut(),
            tokens: tokens_out.view_mut(),
            logprobs: logprobs_out.view_mut(),
            status: status.view_mut(),
            stride: width,
        };
        with_logit_type!(elem, T => {
            let data = unsafe { borrow::<T>(g, &s, target, span) };
            let view = data.view();
            let rows_in = LogitRows { data: &view, batch: rows, vocab, row_stride };
            let pws = self.processing.as_mut().filter(|_| processed);
            g.verify_on(
                &s,
                rows_in,
                device_drafts,
                RowParams::Fields(param_fields),
                pws.map(|w| (&device_processing, w)),
                opts,
                &mut outs,
                &mut self.workspace,
                scratch,
            )
        })
        .map_err(to_py)
    }
}

/// The per-field parameter arrays of a launch, borrowed.
struct ParamArrays {
    temperature: Option<BorrowedSlice<f32>>,
    top_k: Option<BorrowedSlice<u32>>,
    top_p: Option<BorrowedSlice<f32>>,
    min_p: Option<BorrowedSlice<f32>>,
    seed: Option<BorrowedSlice<u64>>,
    step: Option<BorrowedSlice<u64>>,
}

/// Their views (a launch takes references to views).
struct ParamViews<'a> {
    temperature: Option<CudaView<'a, f32>>,
    top_k: Option<CudaView<'a, u32>>,
    top_p: Option<CudaView<'a, f32>>,
    min_p: Option<CudaView<'a, f32>>,
    seed: Option<CudaView<'a, u64>>,
    step: Option<CudaView<'a, u64>>,
}

impl ParamArrays {
    /// # Safety
    /// As for [`borrow`], for every array field (checked `[rows]` on this device).
    unsafe fn borrow(g: &GpuSampler, s: &Arc<CudaStream>, f: &Fields) -> ParamArrays {
        fn one<T, U>(
            g: &GpuSampler,
            s: &Arc<CudaStream>,
            f: &Field<U>,
        ) -> Option<BorrowedSlice<T>> {
            match f {
                Field::Array(t) => Some(unsafe { borrow(g, s, t, t.len()) }),
                Field::Scalar(_) => None,
            }
        }
        ParamArrays {
            temperature: one(g, s, &f.temperature),
            top_k: one(g, s, &f.top_k),
            top_p: one(g, s, &f.top_p),
            min_p: one(g, s, &f.min_p),
            seed: one(g, s, &f.seed),
            step: one(g, s, &f.step),
        }
    }

    fn views(&self) -> ParamViews<'_> {
        ParamViews {
            temperature: self.temperature.as_ref().map(|b| b.view()),
            top_k: self.top_k.as_ref().map(|b| b.view()),
            top_p: self.top_p.as_ref().map(|b| b.view()),
            min_p: self.min_p.as_ref().map(|b| b.view()),
            seed: self.seed.as_ref().map(|b| b.view()),
            step: self.step.as_ref().map(|b| b.view()),
        }
    }
}

impl<'a> ParamViews<'a> {
    fn fields(&'a self, scalars: batchsample::SamplingParams) -> ParamFields<'a> {
        ParamFields {
            temperature: self.temperature.as_ref(),
            top_k: self.top_k.as_ref(),
            top_p: self.top_p.as_ref(),
            min_p: self.min_p.as_ref(),
            seed: self.seed.as_ref(),
            step: self.step.as_ref(),
            scalars,
        }
    }
}

/// A CSR list's two arrays, borrowed.
type ListSlices = (BorrowedSlice<u32>, BorrowedSlice<u32>);

/// The processing arrays of a launch, borrowed.
struct ProcessingArrays {
    bitmask: Option<BorrowedSlice<i32>>,
    banned: Option<ListSlices>,
    bias: Option<(ListSlices, BorrowedSlice<f32>)>,
    prompt: Option<ListSlices>,
    output: Option<ListSlices>,
    penalties: Option<BorrowedSlice<Penalties>>,
}

type ListViews<'a> = (CudaView<'a, u32>, CudaView<'a, u32>);

struct ProcessingViews<'a> {
    bitmask: Option<CudaView<'a, i32>>,
    banned: Option<ListViews<'a>>,
    bias: Option<(ListViews<'a>, CudaView<'a, f32>)>,
    prompt: Option<ListViews<'a>>,
    output: Option<ListViews<'a>>,
    penalties: Option<CudaView<'a, Penalties>>,
}

impl ProcessingArrays {
    /// # Safety
    /// As for [`borrow`], for every array (checked contiguous on this device by `parse`).
    unsafe fn borrow(g: &GpuSampler, s: &Arc<CudaStream>, p: &ProcessingArgs) -> Self {
        let list = |l: &crate::args::Lists| unsafe {
            (
                borrow(g, s, &l.offsets, l.offsets.len()),
                borrow(g, s, &l.tokens, l.tokens.len()),
            )
        };
        ProcessingArrays {
            bitmask: p.bitmask.as_ref().map(|t| borrow(g, s, t, t.len())),
            banned: p.banned.as_ref().map(list),
            bias: p
                .bias
                .as_ref()
                .map(|(l, v)| (list(l), borrow(g, s, v, v.len()))),
            prompt: p.prompt.as_ref().map(list),
            output: p.output.as_ref().map(list),
            // float32 [rows, 3]: one Penalties (three f32s, #[repr(C)]) a row.
            penalties: p
                .penalties
                .as_ref()
                .map(|t| borrow(g, s, t, t.shape.first().copied().unwrap_or(0))),
        }
    }

    fn views(&self) -> ProcessingViews<'_> {
        fn list((o, t): &ListSlices) -> ListViews<'_> {
            (o.view(), t.view())
        }
        ProcessingViews {
            bitmask: self.bitmask.as_ref().map(|b| b.view()),
            banned: self.banned.as_ref().map(list),
            bias: self.bias.as_ref().map(|(l, v)| (list(l), v.view())),
            prompt: self.prompt.as_ref().map(list),
            output: self.output.as_ref().map(list),
            penalties: self.penalties.as_ref().map(|b| b.view()),
        }
    }
}

impl<'a> ProcessingViews<'a> {
    fn processing(&'a self) -> DeviceProcessing<'a> {
        let list = |(o, t): &'a ListViews<'a>| DeviceTokenLists {
            offsets: o,
            tokens: t,
        };
        DeviceProcessing {
            bitmask: self.bitmask.as_ref(),
            banned: self.banned.as_ref().map(list),
            bias: self.bias.as_ref().map(|(l, v)| DeviceBiasLists {
                lists: list(l),
                biases: v,
            }),
            prompt: self.prompt.as_ref().map(list),
            output: self.output.as_ref().map(list),
            penalties: self.penalties.as_ref(),
        }
    }
}
