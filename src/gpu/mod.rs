//! The GPU sampler: the fused kernels of `kernels/sampler.cu` on one CUDA stream.
//!
//! [`GpuSampler::sample`] works on device buffers, is stream-ordered, allocates nothing and never
//! waits for the host, so a serving loop can call it every step or capture it in a CUDA graph;
//! [`GpuSampler::sample_host`] is the convenience path from and to host slices. The kernels keep
//! every per-row intermediate in shared memory; the only device scratch is that of the split-row
//! kernels (small batches: several blocks per row, see `kernels/sampler.cu`), the [`Workspace`].
//!
//! **The serving path** is [`GpuSampler::sample_on`]: the engine's stream (its own, or another
//! library's through [`GpuSampler::borrow_stream`]), the engine's output views ([`SampleOutputs`]:
//! tokens can go straight into the next step's `input_ids`), and a [`Workspace`] sized once.
//! Another library's device memory (a PyTorch tensor's `data_ptr()`) becomes a view through
//! [`GpuSampler::borrow_slice`], which never frees it: the Python package's path.
//! [`GpuSampler::sample`] is the same launch on the sampler's own stream into [`GpuOutputs`].

pub(crate) mod args;
mod borrowed;
#[doc(hidden)]
pub mod constants;
mod device;
mod kernels_image;
mod processing;
mod sample_args;
mod verify;
// The host shim (test-only) runs the kernels with the launcher's geometry.
pub(crate) mod launch;
pub(crate) mod table;

pub use borrowed::BorrowedSlice;
pub use device::{gpu_available, DeviceInfo};
pub use launch::MAX_TOP_N;
pub use processing::{
    DeviceBiasLists, DeviceProcessing, DeviceProcessingBuf, DeviceTokenLists, ProcessingWorkspace,
};
pub use verify::{DeviceDrafts, VerifyBuffers, VerifyOutputs, VerifyWorkspace};

/// The context, device facts and kernel image the sampler uses, so that a companion crate can
/// launch the image's other kernels: batchsample-cli's experiment 2 launches the projection
/// kernel (`kernels/projection.cu`) with them. Not the sampler's API: hidden from the docs and
/// free to change with any release.
#[doc(hidden)]
pub mod raw {
    pub use super::constants;
    pub use super::device::{device_info, load_sampler_module, open_context};
}

use crate::cpu::{batch_size, RowOutput, SampleOptions, TokenLogprob};
use crate::dtype::Logit;
use crate::error::{Result, SampleError};
use crate::params::{validate_batch, BatchFilters, RowStatus, SamplingParams};
use crate::processing::LogprobsMode;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, CudaView, CudaViewMut, DeviceRepr};
use launch::{SamplerKernels, MAX_SPLITS, SPLIT_PARTIAL_WORDS};
use sample_args::check_outputs;
use std::sync::Arc;

/// Capacities a [`GpuSampler`]'s outputs are sized for.
#[derive(Clone, Copy, Debug)]
pub struct GpuConfig {
    pub device_ordinal: usize,
    pub max_batch: usize,
    pub max_top_n: usize,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            device_ordinal: 0,
            max_batch: 1024,
            max_top_n: 20,
        }
    }
}

/// Per-row results on the device, sized for a sampler's `max_batch` and `max_top_n`, with the
/// split-row [`Workspace`]: what [`GpuSampler::sample`] writes. An engine that wants its own
/// buffers (tokens straight into the next step's `input_ids`) passes [`SampleOutputs`] views and
/// a [`Workspace`] to [`GpuSampler::sample_on`] instead.
pub struct GpuOutputs {
    pub tokens: CudaSlice<i32>,       // [max_batch]; -1 for failed rows
    pub logprobs: CudaSlice<f32>,     // [max_batch]
    pub status: CudaSlice<u32>,       // [max_batch]; RowStatus codes
    pub top_tokens: CudaSlice<i32>,   // [max_batch, max_top_n]: a row's first top_n; -1 pads
    pub top_logprobs: CudaSlice<f32>, // [max_batch, max_top_n]; -inf pads
    /// `max_top_n`: the top-n pair's row stride, whatever a launch's `top_n`.
    pub top_stride: usize,
    pub workspace: Workspace,
}

impl GpuOutputs {
    /// Views of the whole buffers for a launch of `top_n` (no top-n views when 0), and the
    /// workspace beside them: what [`GpuSampler::sample_on`] and its kin take. The launch
    /// checks the lengths.
    pub fn views(&mut self, top_n: usize) -> (SampleOutputs<'_>, &mut Workspace) {
        let views = SampleOutputs {
            tokens: self.tokens.slice_mut(..),
            logprobs: self.logprobs.slice_mut(..),
            status: self.status.slice_mut(..),
            top: (top_n > 0).then(|| TopOutputs {
                tokens: self.top_tokens.slice_mut(..),
                logprobs: self.top_logprobs.slice_mut(..),
                stride: self.top_stride,
            }),
        };
        (views, &mut self.workspace)
    }
}

/// Caller-owned output views of one launch: `tokens`, `logprobs` and `status` hold at least
/// `batch` elements; the top-n pair is `None` when `top_n` is 0. Any views of the sampler's
/// context will do: slices of larger buffers included.
pub struct SampleOutputs<'a> {
    pub tokens: CudaViewMut<'a, i32>,
    pub logprobs: CudaViewMut<'a, f32>,
    pub status: CudaViewMut<'a, u32>,
    pub top: Option<TopOutputs<'a>>,
}

/// The top-n pair, `[batch, stride]`: row `r`'s `top_n` most probable survivors at
/// `[r * stride, r * stride + top_n)`, best first, `(-1, -inf)` past the last survivor. The
/// stride is the caller's (its buffers' capacity), so the layout does not change with `top_n`.
pub struct TopOutputs<'a> {
    pub tokens: CudaViewMut<'a, i32>,
    pub logprobs: CudaViewMut<'a, f32>,
    pub stride: usize,
}

/// A launch's logits on the device: `batch` rows of `vocab`, row `r` at
/// `[r * row_stride, r * row_stride + vocab)` — a padded vocabulary, or rows of a larger
/// buffer. [`LogitRows::dense`] is the `[batch, vocab]` case.
#[derive(Clone, Copy)]
pub struct LogitRows<'a, T> {
    pub data: &'a CudaView<'a, T>,
    pub batch: usize,
    pub vocab: usize,
    pub row_stride: usize,
}

impl<'a, T> LogitRows<'a, T> {
    /// `[batch, vocab]` logits, rows back to back: the batch is `data.len() / vocab`
    /// ([`SampleError::Shape`] when that does not divide).
    pub fn dense(data: &'a CudaView<'a, T>, vocab: usize) -> Result<Self> {
        Ok(LogitRows {
            data,
            batch: batch_size(data.len(), vocab)?,
            vocab,
            row_stride: vocab,
        })
    }
}

/// A launch's per-row parameters on the device: packed [`SamplingParams`] rows (`[batch]`, or
/// `[1]` shared by every row), or one array per field as an engine holds them, each optional
/// with a scalar fallback ([`ParamFields`], FlashInfer's `array ? array[row] : scalar`).
/// Either way the kernels check each row's values: an invalid row gets
/// [`RowStatus::InvalidParams`] and the others are sampled.
#[derive(Clone, Copy)]
pub enum RowParams<'a> {
    Packed(&'a CudaView<'a, SamplingParams>),
    Fields(ParamFields<'a>),
}

/// One optional device array per parameter, `[batch]` each; a `None` field takes its value
/// from `scalars` for every row (which must be valid parameters themselves: checked on the
/// host).
#[derive(Clone, Copy, Default)]
pub struct ParamFields<'a> {
    pub temperature: Option<&'a CudaView<'a, f32>>,
    pub top_k: Option<&'a CudaView<'a, u32>>,
    pub top_p: Option<&'a CudaView<'a, f32>>,
    pub min_p: Option<&'a CudaView<'a, f32>>,
    pub seed: Option<&'a CudaView<'a, u64>>,
    pub step: Option<&'a CudaView<'a, u64>>,
    pub scalars: SamplingParams,
}

/// The split-row kernels' device scratch (several blocks per row when a batch is too small to
/// fill the GPU): per-slice partials and per-row arrival counters that every launch leaves at 0.
/// Sized once for a largest batch ([`Workspace::bytes_for`]); a launch of more rows is refused
/// ([`SampleError::Capacity`]). One workspace serves one launch at a time: two streams that
/// sample concurrently need one each.
pub struct Workspace {
    partials: CudaSlice<u32>, // [max_batch * MAX_SPLITS * SPLIT_PARTIAL_WORDS]
    arrivals: CudaSlice<u32>, // [max_batch]
    max_batch: usize,
}

impl Workspace {
    /// Device bytes of a workspace for batches of up to `max_batch` rows.
    pub fn bytes_for(max_batch: usize) -> usize {
        4 * max_batch.max(1) * (MAX_SPLITS * SPLIT_PARTIAL_WORDS + 1)
    }

    /// The largest batch this workspace serves.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
}

/// Owns a context, a stream and the loaded kernels.
pub struct GpuSampler {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: SamplerKernels,
    config: GpuConfig,
    info: DeviceInfo,
}

impl GpuSampler {
    /// Opens the device and loads the kernels; [`SampleError::NoDevice`] when there is no driver
    /// or no GPU.
    pub fn new(config: GpuConfig) -> Result<Self> {
        if config.max_top_n > MAX_TOP_N {
            return Err(SampleError::Capacity(format!(
                "max_top_n {} exceeds the kernels' {MAX_TOP_N}",
                config.max_top_n
            )));
        }
        let ctx = device::open_context(config.device_ordinal)?;
        // All buffers are used on this sampler's one stream, in order: cudarc's cross-stream
        // event tracking would only add event records (which graph capture does not want).
        unsafe { ctx.disable_event_tracking() };
        let info = device::device_info(&ctx)?;
        let module = device::load_sampler_module(&ctx, info.compute_capability)?;
        let kernels = SamplerKernels::load(&module)?;
        // A stream of our own: the legacy default stream cannot be captured into a graph.
        let stream = ctx.new_stream()?;
        Ok(GpuSampler {
            ctx,
            stream,
            kernels,
            config,
            info,
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn config(&self) -> &GpuConfig {
        &self.config
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launch is ordered on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Output buffers sized for this sampler's capacities, with a workspace for `max_batch`.
    pub fn alloc_outputs(&self) -> Result<GpuOutputs> {
        let (b, n) = (self.config.max_batch, self.config.max_top_n);
        Ok(GpuOutputs {
            tokens: self.stream.alloc_zeros(b.max(1))?,
            logprobs: self.stream.alloc_zeros(b.max(1))?,
            status: self.stream.alloc_zeros(b.max(1))?,
            top_tokens: self.stream.alloc_zeros((b * n).max(1))?,
            top_logprobs: self.stream.alloc_zeros((b * n).max(1))?,
            top_stride: n,
            workspace: self.alloc_workspace(b)?,
        })
    }

    /// A split-row workspace for batches of up to `max_batch` rows ([`Workspace::bytes_for`]
    /// bytes), zeroed on this sampler's stream.
    pub fn alloc_workspace(&self, max_batch: usize) -> Result<Workspace> {
        let b = max_batch.max(1);
        Ok(Workspace {
            partials: self
                .stream
                .alloc_zeros(b * MAX_SPLITS * SPLIT_PARTIAL_WORDS)?,
            arrivals: self.stream.alloc_zeros(b)?,
            max_batch,
        })
    }

    /// Wraps a stream that another library owns (a PyTorch stream's `cuda_stream`, an engine's
    /// `CUstream`) for [`GpuSampler::sample_on`]. Dropping the wrapper does not destroy it.
    ///
    /// # Safety
    /// `raw` is a live stream of this sampler's context (the device's primary context: the one
    /// the CUDA runtime, and so PyTorch, uses) and outlives the wrapper and every launch on it.
    pub unsafe fn borrow_stream(&self, raw: cudarc::driver::sys::CUstream) -> Arc<CudaStream> {
        self.ctx.wrap_borrowed_stream(raw)
    }

    /// Samples `batch` rows of `logits` (`[batch, vocab]` on the device) into `out`, on this
    /// sampler's own stream. `params` holds one entry per row, or one shared by all rows.
    /// Stream-ordered: no allocation, no host synchronisation. Rows whose parameters are invalid
    /// get `RowStatus::InvalidParams`. [`GpuSampler::sample_with`] takes what the caller knows of
    /// the batch's filters; [`GpuSampler::sample_on`] the caller's stream and buffers.
    pub fn sample<T: Logit + DeviceRepr>(
        &self,
        logits: &CudaView<'_, T>,
        vocab: usize,
        params: &CudaView<'_, SamplingParams>,
        opts: &SampleOptions,
        out: &mut GpuOutputs,
    ) -> Result<()> {
        self.sample_with(logits, vocab, params, BatchFilters::Any, opts, out)
    }

    /// [`GpuSampler::sample`] for a batch whose filters the caller knows ([`BatchFilters`]: what
    /// each hint buys, and why a wrong one never changes a token).
    pub fn sample_with<T: Logit + DeviceRepr>(
        &self,
        logits: &CudaView<'_, T>,
        vocab: usize,
        params: &CudaView<'_, SamplingParams>,
        filters: BatchFilters,
        opts: &SampleOptions,
        out: &mut GpuOutputs,
    ) -> Result<()> {
        let batch = batch_size(logits.len(), vocab)?;
        if batch > self.config.max_batch {
            return Err(SampleError::Capacity(format!(
                "batch {batch} exceeds this sampler's max_batch {}",
                self.config.max_batch
            )));
        }
        if opts.top_n > self.config.max_top_n {
            return Err(SampleError::Capacity(format!(
                "top_n {} exceeds this sampler's max_top_n {}",
                opts.top_n, self.config.max_top_n
            )));
        }
        // Whole buffers as views: sample_on checks their lengths against the launch.
        let (mut views, workspace) = out.views(opts.top_n);
        self.sample_on(
            &self.stream,
            logits,
            vocab,
            params,
            filters,
            opts,
            &mut views,
            workspace,
        )
    }

    /// The serving path: samples `batch` rows of `logits` (`[batch, vocab]`) on the caller's
    /// `stream` (a stream of this sampler's context: [`GpuSampler::context`]`.new_stream()`, or
    /// another library's through [`GpuSampler::borrow_stream`]) into the caller's views, with
    /// the caller's split-row `workspace`. Stream-ordered, no allocation, no host
    /// synchronisation: the launch can be captured into a CUDA graph on `stream` and replayed,
    /// with the parameters (seeds, steps) rewritten in place between replays. The kernel family
    /// is chosen from `filters`, `opts` and the shapes alone — never from device data — so a
    /// replay takes the same kernel. [`GpuSampler::sample_rows_on`] takes strided logits and
    /// per-field parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_on<T: Logit + DeviceRepr>(
        &self,
        stream: &CudaStream,
        logits: &CudaView<'_, T>,
        vocab: usize,
        params: &CudaView<'_, SamplingParams>,
        filters: BatchFilters,
        opts: &SampleOptions,
        out: &mut SampleOutputs<'_>,
        workspace: &mut Workspace,
    ) -> Result<()> {
        self.sample_rows_on(
            stream,
            LogitRows::dense(logits, vocab)?,
            RowParams::Packed(params),
            filters,
            opts,
            out,
            workspace,
        )
    }

    /// [`GpuSampler::sample_on`] for any row layout: `logits.batch` rows `logits.row_stride`
    /// elements apart (a padded vocabulary, a view of a larger buffer), and the parameters
    /// packed or per field ([`RowParams`]). Shapes and capacities are checked here (typed
    /// errors); parameter values on the device, per row.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows_on<T: Logit + DeviceRepr>(
        &self,
        stream: &CudaStream,
        logits: LogitRows<'_, T>,
        params: RowParams<'_>,
        filters: BatchFilters,
        opts: &SampleOptions,
        out: &mut SampleOutputs<'_>,
        workspace: &mut Workspace,
    ) -> Result<()> {
        self.launch_rows(
            stream, logits, params, None, filters, opts, out, workspace, None, false,
        )
    }

    /// [`GpuSampler::sample_rows_on`] with logits processing ([`crate::processing`]: bitmask,
    /// banned tokens, bias, penalties) applied in the kernels as they read each row: the inputs
    /// as device arrays (CSR lists a serving loop rewrites in place between graph replays) and
    /// a [`ProcessingWorkspace`] sized once. The launch takes the general kernels, one block per
    /// row, whatever `filters` says; each row's lists and penalties are checked on the device
    /// (a bad row gets [`RowStatus::InvalidParams`] alone).
    ///
    /// Logprobs as `logprobs` says ([`LogprobsMode`]): of the final distribution, or of the raw
    /// logits (vLLM's `raw_logprobs`). Raw logprobs take a second launch on `stream`, of the
    /// general kernels over the raw rows at temperature 1 with no filters and no processing,
    /// which scores the token the first launch wrote to `out.tokens` (its logprob and the
    /// top-n, the draw's passes over the row: about the cost of sampling an unprocessed
    /// temperature-1 row with top-n); a row the first launch refused keeps its status and gets
    /// an empty top-n. Nothing waits for the device between the launches.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_processed_on<T: Logit + DeviceRepr>(
        &self,
        stream: &CudaStream,
        logits: LogitRows<'_, T>,
        params: RowParams<'_>,
        processing: &DeviceProcessing<'_>,
        logprobs: LogprobsMode,
        opts: &SampleOptions,
        out: &mut SampleOutputs<'_>,
        workspace: &mut Workspace,
        processing_workspace: &mut ProcessingWorkspace,
    ) -> Result<()> {
        let draw_opts = match logprobs {
            LogprobsMode::Processed => *opts,
            // The raw launch writes the top-n.
            LogprobsMode::Raw => SampleOptions { top_n: 0, ..*opts },
        };
        if logprobs == LogprobsMode::Raw {
            // Checked before the first launch, so that a bad top-n buffer launches nothing.
            check_outputs(out, logits.batch, opts.top_n)?;
        }
        self.launch_rows(
            stream,
            logits,
            params,
            Some((processing, processing_workspace)),
            BatchFilters::Any,
            &draw_opts,
            out,
            workspace,
            None,
            false,
        )?;
        if logprobs == LogprobsMode::Processed {
            return Ok(());
        }
        // The raw distribution: temperature 1, no filters (the default parameters).
        let raw = RowParams::Fields(ParamFields {
            scalars: SamplingParams::default(),
            ..ParamFields::default()
        });
        self.launch_rows(
            stream,
            logits,
            raw,
            None,
            BatchFilters::Any,
            opts,
            out,
            workspace,
            None,
            true,
        )
    }

    /// `(exp, log)` of every `x` as the batch-invariant kernels compute them
    /// (`kernels/exact_math.cuh`); the tests diff it against the CPU twin. Waits for the stream.
    pub fn exact_math_probe(&self, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = u32::try_from(x.len())
            .map_err(|_| SampleError::Capacity(format!("{} probe inputs", x.len())))?;
        let x_dev = self.stream.clone_htod(x)?;
        let mut exp = self.stream.alloc_zeros::<f32>(x.len().max(1))?;
        let mut log = self.stream.alloc_zeros::<f32>(x.len().max(1))?;
        // SAFETY: the three buffers hold at least n floats.
        unsafe {
            launch::exact_math_probe(
                &self.stream,
                &self.kernels,
                &x_dev.as_view(),
                &mut exp.as_view_mut(),
                &mut log.as_view_mut(),
                n,
            )?;
        }
        let exp = self.stream.clone_dtoh(&exp.slice(..x.len()))?;
        let log = self.stream.clone_dtoh(&log.slice(..x.len()))?;
        self.stream.synchronize()?;
        Ok((exp, log))
    }

    /// Copies the first `batch` rows of results to the host (waits for the stream).
    pub fn download(&self, out: &GpuOutputs, batch: usize, top_n: usize) -> Result<Vec<RowOutput>> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        let tokens = self.stream.clone_dtoh(&out.tokens.slice(..batch))?;
        let logprobs = self.stream.clone_dtoh(&out.logprobs.slice(..batch))?;
        let status = self.stream.clone_dtoh(&out.status.slice(..batch))?;
        let top_len = batch * out.top_stride;
        let (top_tokens, top_logprobs) = if top_n > 0 {
            (
                self.stream.clone_dtoh(&out.top_tokens.slice(..top_len))?,
                self.stream.clone_dtoh(&out.top_logprobs.slice(..top_len))?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        self.stream.synchronize()?;
        Ok(decode_rows(
            &tokens,
            &logprobs,
            &status,
            &top_tokens,
            &top_logprobs,
            top_n,
            out.top_stride,
        ))
    }

    /// The convenience path: validates `params` on the host (typed errors naming row and field),
    /// copies `logits` in, samples, and copies the results out.
    pub fn sample_host<T: Logit + DeviceRepr>(
        &self,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
    ) -> Result<Vec<RowOutput>> {
        let mut draws = self.sample_host_steps(logits, vocab, params, opts, 1, |_| {})?;
        Ok(draws.pop().unwrap_or_default())
    }

    /// `draws` consecutive decode steps of the same batch from host slices: draw `d` uses every
    /// row's `step + d`. The logits are copied to the device once, the outputs allocated once;
    /// each draw copies only the parameters in and the results out. `on_draw(d)` is called after
    /// each draw (for progress bars).
    pub fn sample_host_steps<T: Logit + DeviceRepr>(
        &self,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        draws: u64,
        mut on_draw: impl FnMut(u64),
    ) -> Result<Vec<Vec<RowOutput>>> {
        let batch = batch_size(logits.len(), vocab)?;
        validate_batch(params, batch)?;
        let filters = BatchFilters::of(params, vocab);
        if batch == 0 {
            return Ok(vec![Vec::new(); draws as usize]);
        }
        let logits_dev = self.stream.clone_htod(logits)?;
        let mut params_dev = self.stream.clone_htod(params)?;
        let mut out = self.alloc_outputs()?;
        let mut all = Vec::with_capacity(draws as usize);
        for d in 0..draws {
            let stepped: Vec<SamplingParams> = params
                .iter()
                .map(|p| p.at_step(p.step.wrapping_add(d)))
                .collect();
            self.stream.memcpy_htod(&stepped, &mut params_dev)?;
            self.sample_with(
                &logits_dev.as_view(),
                vocab,
                &params_dev.as_view(),
                filters,
                opts,
                &mut out,
            )?;
            all.push(self.download(&out, batch, opts.top_n)?);
            on_draw(d);
        }
        Ok(all)
    }
}

/// Turns the kernels' raw per-row outputs (`tokens`, `logprobs`, `status` of `[batch]`, the top-n
/// pair of `[batch, top_stride]`, `top_n` slots a row) into [`RowOutput`]s: failed rows lose
/// their token, -1 pads end the top-n lists.
pub fn decode_rows(
    tokens: &[i32],
    logprobs: &[f32],
    status: &[u32],
    top_tokens: &[i32],
    top_logprobs: &[f32],
    top_n: usize,
    top_stride: usize,
) -> Vec<RowOutput> {
    (0..tokens.len())
        .map(|r| {
            let status = RowStatus::from_code(status[r]).unwrap_or(RowStatus::InvalidParams);
            if status != RowStatus::Ok {
                return RowOutput::failed(status);
            }
            let top = (0..top_n)
                .map(|i| {
                    (
                        top_tokens[r * top_stride + i],
                        top_logprobs[r * top_stride + i],
                    )
                })
                .take_while(|&(t, _)| t >= 0)
                .map(|(t, l)| TokenLogprob {
                    token: t as u32,
                    logprob: l as f64,
                })
                .collect();
            RowOutput {
                token: Some(tokens[r] as u32),
                logprob: logprobs[r] as f64,
                top_logprobs: top,
                status,
            }
        })
        .collect()
}

// SAFETY: SamplingParams is #[repr(C)] plain data (bytemuck::Pod) with the layout the kernels
// read (checked on both sides).
unsafe impl DeviceRepr for SamplingParams {}
