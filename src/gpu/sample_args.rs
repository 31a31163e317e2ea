//! One launch of the sampler's entry points, whatever asked for it (sampling, processing,
//! verification, raw logprobs' scoring): the shapes and capacities checked, the kernel chosen, the
//! launch's `SampleArgs` built from the buffers' device addresses, and the launch on the caller's
//! stream.

use super::args::{
    ParamFields as ParamFieldPtrs, ProcessingArgs, RowOutputs as RowOutputPtrs, SampleArgs,
    TokenListArgs, VerifyArgs,
};
use super::launch::{self, split_count, SamplerKernel, DRAW_GUMBEL, DRAW_INVERSE_CDF, MAX_TOP_N};
use super::table::KernelKey;
use super::{
    processing, DeviceProcessing, GpuSampler, LogitRows, ProcessingWorkspace, RowParams,
    SampleOutputs, Workspace,
};
use crate::cpu::SampleOptions;
use crate::dtype::Logit;
use crate::error::{Result, SampleError};
use crate::params::{BatchFilters, DrawMethod};
use cudarc::driver::{
    CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceRepr, SyncOnDrop,
};

/// The verification part of a launch (`GpuSampler::verify_on`): the drafts and where the
/// requests' results and the per-row decisions go.
pub(super) struct VerifyLaunch<'a, 'b, 'c> {
    pub(super) requests: usize,
    pub(super) offsets: &'a CudaView<'a, u32>,
    pub(super) drafts: &'a CudaView<'a, u32>,
    pub(super) probs: Option<&'a CudaView<'a, f32>>,
    pub(super) stride: usize,
    pub(super) positions: &'b mut CudaSlice<u64>,
    pub(super) arrivals: &'b mut CudaSlice<u32>,
    pub(super) accepted: &'b mut CudaViewMut<'c, i32>,
    pub(super) tokens: &'b mut CudaViewMut<'c, i32>,
    pub(super) logprobs: &'b mut CudaViewMut<'c, f32>,
    pub(super) status: &'b mut CudaViewMut<'c, u32>,
}

impl GpuSampler {
    /// Launches the entry point that serves `logits`' rows on `stream`: `processing` and
    /// `verify` when given, and `scored` for raw logprobs' second launch (the tokens already in
    /// `out.tokens` are scored, not drawn). Processed, verifying and scored launches take the
    /// general kernels, one block per row; the others the family `filters` allows, split when
    /// the batch is too small to fill the device.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_rows<T: Logit + DeviceRepr>(
        &self,
        stream: &CudaStream,
        logits: LogitRows<'_, T>,
        params: RowParams<'_>,
        mut processing: Option<(&DeviceProcessing<'_>, &mut ProcessingWorkspace)>,
        filters: BatchFilters,
        opts: &SampleOptions,
        out: &mut SampleOutputs<'_>,
        workspace: &mut Workspace,
        mut verify: Option<VerifyLaunch<'_, '_, '_>>,
        scored: bool,
    ) -> Result<()> {
        if stream.context().cu_ctx() != self.ctx.cu_ctx() {
            return Err(SampleError::Shape(
                "the stream belongs to another CUDA context than the sampler's".into(),
            ));
        }
        let LogitRows {
            data,
            batch,
            vocab,
            row_stride,
        } = logits;
        check_logit_rows(data.len(), batch, vocab, row_stride)?;
        if opts.top_n > MAX_TOP_N {
            return Err(SampleError::Capacity(format!(
                "top_n {} exceeds the kernels' {MAX_TOP_N}",
                opts.top_n
            )));
        }
        if batch > workspace.max_batch {
            return Err(SampleError::Capacity(format!(
                "batch {batch} exceeds the workspace's max_batch {}",
                workspace.max_batch
            )));
        }
        // Tokens come back as i32, and the kernels' index arithmetic stays below 2^32.
        let vocab_u32 = u32::try_from(vocab)
            .ok()
            .filter(|&v| v <= i32::MAX as u32)
            .ok_or_else(|| SampleError::Capacity(format!("vocab {vocab} exceeds 2^31 - 1")))?;
        let batch_u32 = u32::try_from(batch)
            .map_err(|_| SampleError::Capacity(format!("batch {batch} exceeds 2^32 - 1")))?;
        check_outputs(out, batch, opts.top_n)?;
        if let Some((p, ws)) = &processing {
            processing::check_processing(p, batch, vocab, ws)?;
        }
        let key = KernelKey {
            kernel: SamplerKernel::for_launch(
                filters,
                opts.numerics,
                opts.method,
                opts.top_n,
                vocab,
            ),
            numerics: opts.numerics,
            draw: opts.method,
            dtype: T::DTYPE,
            split: false,
        };
        // A processed, verification or scored launch: the general kernels, one block per row (a
        // split launch would sample such rows whole in their first block anyway; the light
        // families do not score).
        let one_block_rows = processing.is_some() || verify.is_some() || scored;
        let key = KernelKey {
            kernel: if one_block_rows {
                SamplerKernel::General
            } else {
                key.kernel
            },
            ..key
        };
        let splits = if one_block_rows {
            1
        } else {
            split_count(
                batch,
                vocab,
                self.info.multiprocessors.max(1) as usize * self.kernels.blocks_per_sm(key.kernel),
                opts.numerics,
            )
        };
        let key = KernelKey {
            split: splits > 1,
            ..key
        };
        // The addresses, taken on `stream` (event tracking is off on this context: the guards
        // record nothing, and are held to the launch all the same).
        // At most 27 buffers (logits, 6 parameter arrays, 5 outputs, 2 of workspace; with
        // processing a bitmask, penalties, 9 list arrays and 2 of workspace): a fixed array, so
        // the serving path allocates nothing per launch.
        // Verification adds 9 (offsets, drafts, their distributions, 6 outputs and scratch).
        let mut guards: [Option<SyncOnDrop<'_>>; 36] = std::array::from_fn(|_| None);
        let mut held = 0;
        macro_rules! addr {
            ($taken:expr) => {{
                let (ptr, guard) = $taken;
                guards[held] = Some(guard);
                held += 1;
                ptr
            }};
        }
        macro_rules! field_addr {
            ($field:expr) => {
                match $field {
                    Some(v) => addr!(v.device_ptr(stream)),
                    None => 0,
                }
            };
        }
        let mut args = SampleArgs {
            logits: addr!(data.device_ptr(stream)),
            row_stride: row_stride as u64,
            vocab: vocab_u32,
            method: match opts.method {
                DrawMethod::Gumbel => DRAW_GUMBEL,
                DrawMethod::InverseCdf => DRAW_INVERSE_CDF,
            },
            ..SampleArgs::default()
        };
        // A verification launch's parameters are the requests'.
        let param_rows = verify.as_ref().map_or(batch, |v| v.requests);
        match params {
            RowParams::Packed(packed) => {
                args.params_stride = match packed.len() {
                    1 => 0,
                    n if n == param_rows => 1,
                    n => {
                        return Err(SampleError::Shape(format!(
                            "{n} parameter rows for a batch of {param_rows} (give 1 or \
                             {param_rows})"
                        )))
                    }
                };
                args.params = addr!(packed.device_ptr(stream));
            }
            RowParams::Fields(fields) => {
                fields.scalars.validate(0)?;
                let field = |name: &str, len: Option<usize>| match len {
                    Some(n) if n < param_rows => Err(SampleError::Shape(format!(
                        "the {name} array holds {n} rows for a batch of {param_rows}"
                    ))),
                    _ => Ok(()),
                };
                field("temperature", fields.temperature.map(|v| v.len()))?;
                field("top_k", fields.top_k.map(|v| v.len()))?;
                field("top_p", fields.top_p.map(|v| v.len()))?;
                field("min_p", fields.min_p.map(|v| v.len()))?;
                field("seed", fields.seed.map(|v| v.len()))?;
                field("step", fields.step.map(|v| v.len()))?;
                args.scalars = fields.scalars;
                args.fields = ParamFieldPtrs {
                    temperature: field_addr!(fields.temperature),
                    top_k: field_addr!(fields.top_k),
                    top_p: field_addr!(fields.top_p),
                    min_p: field_addr!(fields.min_p),
                    seed: field_addr!(fields.seed),
                    step: field_addr!(fields.step),
                };
            }
        }
        args.out = RowOutputPtrs {
            tokens: addr!(out.tokens.device_ptr_mut(stream)),
            logprobs: addr!(out.logprobs.device_ptr_mut(stream)),
            status: addr!(out.status.device_ptr_mut(stream)),
            top_n: opts.top_n as u32,
            ..RowOutputPtrs::default()
        };
        if let Some(top) = out.top.as_mut() {
            args.out.top_tokens = addr!(top.tokens.device_ptr_mut(stream));
            args.out.top_logprobs = addr!(top.logprobs.device_ptr_mut(stream));
            args.out.top_stride = top.stride as u32;
        }
        if scored {
            // The tokens to score are those an earlier launch wrote to this output.
            args.scored_tokens = args.out.tokens;
        }
        args.partials = addr!(workspace.partials.device_ptr_mut(stream));
        args.arrivals = addr!(workspace.arrivals.device_ptr_mut(stream));
        if let Some((p, ws)) = processing.as_mut() {
            macro_rules! list {
                ($list:expr) => {
                    match $list {
                        Some(l) => TokenListArgs {
                            offsets: addr!(l.offsets.device_ptr(stream)),
                            tokens: addr!(l.tokens.device_ptr(stream)),
                            len: l.tokens.len() as u32, // checked to fit
                            reserved: 0,
                        },
                        None => TokenListArgs::default(),
                    }
                };
            }
            args.proc = ProcessingArgs {
                bitmask: field_addr!(p.bitmask),
                bitmask_words: crate::processing::bitmask_words(vocab) as u32,
                penalties_stride: u32::from(p.penalties.is_some_and(|v| v.len() > 1 || batch == 1)),
                penalties: field_addr!(p.penalties),
                banned: list!(p.banned),
                bias: list!(p.bias.map(|b| b.lists)),
                bias_values: field_addr!(p.bias.map(|b| b.biases)),
                prompt: list!(p.prompt),
                output: list!(p.output),
                touched: addr!(ws.touched.device_ptr_mut(stream)),
                table: addr!(ws.table.device_ptr_mut(stream)),
                table_capacity: ws.table_capacity as u32,
                reserved: 0,
            };
        }
        if let Some(v) = verify.as_mut() {
            if v.positions.len() < batch || v.arrivals.len() < v.requests {
                return Err(SampleError::Capacity(format!(
                    "verification buffers for {} rows and {} requests",
                    v.positions.len(),
                    v.arrivals.len()
                )));
            }
            let fits = |what: &str, n: usize| {
                u32::try_from(n)
                    .map_err(|_| SampleError::Capacity(format!("{what} {n} exceeds 2^32 - 1")))
            };
            if v.probs.is_some_and(|q| q.len() < v.drafts.len() * vocab) {
                return Err(SampleError::Shape(format!(
                    "draft distributions for {} drafts of {vocab} need {} entries",
                    v.drafts.len(),
                    v.drafts.len() * vocab
                )));
            }
            args.verify = VerifyArgs {
                offsets: addr!(v.offsets.device_ptr(stream)),
                drafts: addr!(v.drafts.device_ptr(stream)),
                draft_probs: field_addr!(v.probs),
                requests: fits("requests", v.requests)?,
                stride: fits("stride", v.stride)?,
                drafts_len: fits("drafts", v.drafts.len())?,
                rows: batch_u32,
                positions: addr!(v.positions.device_ptr_mut(stream)),
                arrivals: addr!(v.arrivals.device_ptr_mut(stream)),
                accepted: addr!(v.accepted.device_ptr_mut(stream)),
                tokens: addr!(v.tokens.device_ptr_mut(stream)),
                logprobs: addr!(v.logprobs.device_ptr_mut(stream)),
                status: addr!(v.status.device_ptr_mut(stream)),
            };
        }
        debug_assert!(held <= guards.len());
        // SAFETY: shapes checked above: the logits hold `batch` rows of `vocab` at `row_stride`,
        // the parameters 1 or `batch` packed rows or `batch` per field array, the outputs
        // `batch` rows and the top-n pair `batch` rows of `stride >= top_n` slots (when top_n >
        // 0), top_n <= MAX_TOP_N; the workspace holds max_batch >= batch rows of MAX_SPLITS
        // partials and batch arrival counters, which start zeroed (alloc_workspace) and every
        // launch leaves at 0; with processing (check_processing): the bitmask `batch` rows of
        // ceil(vocab / 32) words, each list's offsets `batch + 1` entries and its tokens `len`
        // (the kernels bound every row's range by it), the biases as many as the bias tokens,
        // the penalties 1 or `batch`, the workspace's touched bitmap `batch` rows of
        // ceil(vocab / 32) words (zeroed at allocation, left zero by every launch) and its table
        // `batch` rows of table_capacity slots; every buffer and `stream` are of this sampler's
        // context (checked above for the stream; cudarc views carry it).
        let launched = unsafe {
            launch::sample_rows(stream, &self.kernels, &key, batch_u32, splits as u32, &args)
        };
        drop(guards);
        launched
    }
}

/// That `len` elements hold `batch` rows of `vocab` logits `row_stride` apart.
pub(super) fn check_logit_rows(
    len: usize,
    batch: usize,
    vocab: usize,
    row_stride: usize,
) -> Result<()> {
    if row_stride < vocab {
        return Err(SampleError::Shape(format!(
            "row stride {row_stride} is shorter than the vocabulary {vocab}"
        )));
    }
    let need = match batch {
        0 => Some(0),
        b => (b - 1)
            .checked_mul(row_stride)
            .and_then(|n| n.checked_add(vocab)),
    };
    match need {
        Some(need) if need <= len => Ok(()),
        _ => Err(SampleError::Shape(format!(
            "{len} logits cannot hold {batch} rows of {vocab} at a stride of {row_stride}"
        ))),
    }
}

/// That the output views hold `batch` rows, and the top-n pair `batch` rows of at least
/// `top_n` slots.
pub(super) fn check_outputs(out: &SampleOutputs<'_>, batch: usize, top_n: usize) -> Result<()> {
    let short = |what: String| {
        Err(SampleError::Capacity(format!(
            "the output views hold fewer than {batch} rows of {what}"
        )))
    };
    if out.tokens.len() < batch || out.logprobs.len() < batch || out.status.len() < batch {
        return short("results".into());
    }
    if top_n == 0 || batch == 0 {
        return Ok(());
    }
    let Some(top) = &out.top else {
        return short(format!("top-{top_n} results (no top-n views given)"));
    };
    let need = (batch - 1)
        .checked_mul(top.stride)
        .and_then(|n| n.checked_add(top_n));
    let fits = |len: usize| need.is_some_and(|need| need <= len);
    let stride_ok = top.stride >= top_n && top.stride <= u32::MAX as usize;
    if !stride_ok || !fits(top.tokens.len()) || !fits(top.logprobs.len()) {
        return short(format!("top-{top_n} results at a stride of {}", top.stride));
    }
    Ok(())
}
