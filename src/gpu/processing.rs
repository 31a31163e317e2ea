//! Logits processing on the GPU (semantics: [`crate::processing`]): the inputs as device
//! arrays in CSR form, which a serving loop updates in place between steps (a CUDA graph replays
//! the same launch), and the workspace the kernels' sparse edits need, sized once.
//!
//! The general kernels apply processing as they read each row (kernels/processing.cuh): the
//! bitmask one bit a token, the sparse edits (banned, bias, penalties) through a per-row hash
//! table built from the lists, so their cost follows the lists' lengths. A processed launch
//! always takes the general kernels, one block per row. The logprobs are those of the final
//! distribution ([`LogprobsMode::Processed`]) or of the raw logits ([`LogprobsMode::Raw`]: a
//! second launch of the general kernels scores the drawn token on the raw rows).

use super::{GpuSampler, LogitRows, RowParams};
use crate::cpu::{batch_size, RowOutput, SampleOptions};
use crate::dtype::Logit;
use crate::error::{Result, SampleError};
use crate::params::{validate_batch, SamplingParams};
use crate::processing::{bitmask_words, LogprobsMode, Penalties, Processing, TokenLists};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, DeviceRepr};
use std::sync::Arc;

/// One token list a row on the device in CSR form: row `r`'s tokens are
/// `tokens[offsets[r]..offsets[r + 1]]` (`offsets` holds `batch + 1` entries). The kernels check
/// each row's offsets and tokens: a row whose offsets decrease or pass the list's end, or that
/// names a token past the vocabulary, gets [`crate::RowStatus::InvalidParams`] alone.
#[derive(Clone, Copy)]
pub struct DeviceTokenLists<'a> {
    pub offsets: &'a CudaView<'a, u32>,
    pub tokens: &'a CudaView<'a, u32>,
}

/// `(token, bias)` lists on the device: the tokens as a [`DeviceTokenLists`], and one bias per
/// token.
#[derive(Clone, Copy)]
pub struct DeviceBiasLists<'a> {
    pub lists: DeviceTokenLists<'a>,
    pub biases: &'a CudaView<'a, f32>,
}

/// A launch's processing inputs on the device, each optional (the default is none).
#[derive(Clone, Copy, Default)]
pub struct DeviceProcessing<'a> {
    /// `i32 [batch, ceil(vocab / 32)]` allowed-token bits.
    pub bitmask: Option<&'a CudaView<'a, i32>>,
    pub banned: Option<DeviceTokenLists<'a>>,
    pub bias: Option<DeviceBiasLists<'a>>,
    pub prompt: Option<DeviceTokenLists<'a>>,
    pub output: Option<DeviceTokenLists<'a>>,
    /// `[1]` (every row) or `[batch]`; none: off.
    pub penalties: Option<&'a CudaView<'a, Penalties>>,
}

/// The device scratch of processed launches: a touched-token bitmap per row (`ceil(vocab / 32)`
/// words, all zero between launches: each row clears what it set) and a hash table of edits per
/// row (`table_capacity` 16-byte slots). A row whose lists hold more entries than the capacity
/// (banned + bias, and prompt + output where its penalties are on) is refused with
/// [`crate::RowStatus::InvalidParams`]: size it for the longest lists the loop will pass
/// ([`crate::processing::Processing::edit_table_capacity`] for a given batch). One workspace
/// serves one launch at a time.
pub struct ProcessingWorkspace {
    pub(super) touched: CudaSlice<u32>, // [max_batch, ceil(max_vocab / 32)]
    pub(super) table: CudaSlice<u32>,   // [max_batch, table_capacity, 4]
    pub(super) max_batch: usize,
    pub(super) max_vocab: usize,
    pub(super) table_capacity: usize,
}

impl ProcessingWorkspace {
    /// Device bytes of a workspace for `max_batch` rows of up to `max_vocab` tokens and
    /// `table_capacity` slots a row (rounded up to a power of two, at least 16, when not 0).
    pub fn bytes_for(max_batch: usize, max_vocab: usize, table_capacity: usize) -> usize {
        let rows = max_batch.max(1);
        4 * rows * bitmask_words(max_vocab).max(1) + 16 * rows * slots(table_capacity).max(1)
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub fn max_vocab(&self) -> usize {
        self.max_vocab
    }

    /// Slots a row (a power of two, or 0: no sparse edits served).
    pub fn table_capacity(&self) -> usize {
        self.table_capacity
    }
}

fn slots(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity.next_power_of_two().max(16)
    }
}

impl GpuSampler {
    /// A processing workspace ([`ProcessingWorkspace::bytes_for`] bytes), zeroed on this
    /// sampler's stream.
    pub fn alloc_processing_workspace(
        &self,
        max_batch: usize,
        max_vocab: usize,
        table_capacity: usize,
    ) -> Result<ProcessingWorkspace> {
        let rows = max_batch.max(1);
        let capacity = slots(table_capacity);
        if capacity > u32::MAX as usize / 4 {
            return Err(SampleError::Capacity(format!(
                "an edit table of {capacity} slots a row"
            )));
        }
        Ok(ProcessingWorkspace {
            touched: self
                .stream
                .alloc_zeros(rows * bitmask_words(max_vocab).max(1))?,
            table: self.stream.alloc_zeros(rows * capacity.max(1) * 4)?,
            max_batch,
            max_vocab,
            table_capacity: capacity,
        })
    }
}

impl GpuSampler {
    /// The convenience path with processing: validates `params` and `processing` on the host
    /// (typed errors naming row and field), copies everything in, samples with
    /// [`GpuSampler::sample_processed_on`] on this sampler's stream, and copies the results out.
    /// The GPU's [`crate::cpu::sample_batch_processed`].
    pub fn sample_host_processed<T: Logit + DeviceRepr>(
        &self,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        processing: &Processing<'_>,
        logprobs: LogprobsMode,
        opts: &SampleOptions,
    ) -> Result<Vec<RowOutput>> {
        let mut draws = self.sample_host_processed_steps(
            logits,
            vocab,
            params,
            processing,
            logprobs,
            opts,
            1,
            |_| {},
        )?;
        Ok(draws.pop().unwrap_or_default())
    }

    /// [`GpuSampler::sample_host_processed`] for `draws` consecutive decode steps of the same
    /// batch and lists (draw `d` at every row's `step + d`), as
    /// [`GpuSampler::sample_host_steps`]: everything copied in once, each draw moving only the
    /// parameters in and the results out; `on_draw(d)` after each.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_host_processed_steps<T: Logit + DeviceRepr>(
        &self,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        processing: &Processing<'_>,
        logprobs: LogprobsMode,
        opts: &SampleOptions,
        draws: u64,
        mut on_draw: impl FnMut(u64),
    ) -> Result<Vec<Vec<RowOutput>>> {
        let batch = batch_size(logits.len(), vocab)?;
        validate_batch(params, batch)?;
        processing.validate(batch, vocab)?;
        if batch == 0 {
            return Ok(vec![Vec::new(); draws as usize]);
        }
        let s = &self.stream;
        let inputs = DeviceProcessingBuf::upload(s, processing)?;
        let logits_dev = s.clone_htod(logits)?;
        let mut params_dev = s.clone_htod(params)?;
        let capacity = processing.edit_table_capacity(batch);
        let mut ws = self.alloc_processing_workspace(batch, vocab, capacity)?;
        let mut out = self.alloc_outputs()?;
        let logits_view = logits_dev.as_view();
        let mut all = Vec::with_capacity(draws as usize);
        for d in 0..draws {
            let stepped: Vec<SamplingParams> = params
                .iter()
                .map(|p| p.at_step(p.step.wrapping_add(d)))
                .collect();
            s.memcpy_htod(&stepped, &mut params_dev)?;
            let params_view = params_dev.as_view();
            let (mut views, workspace) = out.views(opts.top_n);
            inputs.with_view(|device| {
                self.sample_processed_on(
                    s,
                    LogitRows::dense(&logits_view, vocab)?,
                    RowParams::Packed(&params_view),
                    device,
                    logprobs,
                    opts,
                    &mut views,
                    workspace,
                    &mut ws,
                )
            })?;
            all.push(self.download(&out, batch, opts.top_n)?);
            on_draw(d);
        }
        Ok(all)
    }
}

type UploadedList = Option<(CudaSlice<u32>, CudaSlice<u32>)>;

/// Device copies of a host [`Processing`] (what [`GpuSampler::sample_host_processed`] uploads;
/// for a benchmark or a test that keeps one batch's inputs on the device across launches).
/// Lists with no tokens, empty in every row, are passed as none.
pub struct DeviceProcessingBuf {
    bitmask: Option<CudaSlice<i32>>,
    banned: UploadedList,
    bias: UploadedList,
    biases: Option<CudaSlice<f32>>,
    prompt: UploadedList,
    output: UploadedList,
    penalties: Option<CudaSlice<Penalties>>,
}

impl DeviceProcessingBuf {
    /// Copies `p` to the device on `stream` (its shapes are the caller's to have validated).
    pub fn upload(stream: &Arc<CudaStream>, p: &Processing<'_>) -> Result<Self> {
        let list = |l: &TokenLists| -> Result<UploadedList> {
            if l.offsets.is_empty() || l.tokens.is_empty() {
                return Ok(None);
            }
            Ok(Some((
                stream.clone_htod(l.offsets)?,
                stream.clone_htod(l.tokens)?,
            )))
        };
        let bias = list(&TokenLists {
            offsets: p.bias.offsets,
            tokens: p.bias.tokens,
        })?;
        let biases = match bias {
            Some(_) => Some(stream.clone_htod(p.bias.biases)?),
            None => None,
        };
        Ok(DeviceProcessingBuf {
            bitmask: p.bitmask.map(|m| stream.clone_htod(m)).transpose()?,
            banned: list(&p.banned)?,
            bias,
            biases,
            prompt: list(&p.prompt)?,
            output: list(&p.output)?,
            penalties: (!p.penalties.is_empty())
                .then(|| stream.clone_htod(p.penalties))
                .transpose()?,
        })
    }

    /// Calls `f` with the launch's view of these inputs.
    pub fn with_view<R>(&self, f: impl FnOnce(&DeviceProcessing<'_>) -> R) -> R {
        fn views(l: &UploadedList) -> Option<(CudaView<'_, u32>, CudaView<'_, u32>)> {
            l.as_ref().map(|(o, t)| (o.as_view(), t.as_view()))
        }
        fn lists<'a>(
            v: &'a Option<(CudaView<'a, u32>, CudaView<'a, u32>)>,
        ) -> Option<DeviceTokenLists<'a>> {
            v.as_ref()
                .map(|(offsets, tokens)| DeviceTokenLists { offsets, tokens })
        }
        let (banned, bias, prompt, output) = (
            views(&self.banned),
            views(&self.bias),
            views(&self.prompt),
            views(&self.output),
        );
        let biases = self.biases.as_ref().map(|b| b.as_view());
        let bitmask = self.bitmask.as_ref().map(|m| m.as_view());
        let penalties = self.penalties.as_ref().map(|p| p.as_view());
        f(&DeviceProcessing {
            bitmask: bitmask.as_ref(),
            banned: lists(&banned),
            bias: lists(&bias)
                .zip(biases.as_ref())
                .map(|(lists, biases)| DeviceBiasLists { lists, biases }),
            prompt: lists(&prompt),
            output: lists(&output),
            penalties: penalties.as_ref(),
        })
    }
}

/// That `p` fits a launch of `batch` rows of `vocab` with `ws`: every array of the length the
/// kernels index it by (the values are the kernels' to check, row by row).
pub(super) fn check_processing(
    p: &DeviceProcessing<'_>,
    batch: usize,
    vocab: usize,
    ws: &ProcessingWorkspace,
) -> Result<()> {
    if batch > ws.max_batch || vocab > ws.max_vocab {
        return Err(SampleError::Capacity(format!(
            "a batch of {batch} rows of vocab {vocab} exceeds the processing workspace's \
             {} rows of vocab {}",
            ws.max_batch, ws.max_vocab
        )));
    }
    let shape = |what: String| Err(SampleError::Shape(what));
    if let Some(mask) = p.bitmask {
        let words = batch * bitmask_words(vocab);
        if mask.len() != words {
            return shape(format!(
                "bitmask holds {} words; a batch of {batch} rows of vocab {vocab} needs {words}",
                mask.len()
            ));
        }
    }
    let lists = [
        ("banned_tokens", p.banned),
        ("logit_bias", p.bias.map(|b| b.lists)),
        ("prompt_tokens", p.prompt),
        ("output_tokens", p.output),
    ];
    for (name, list) in lists {
        if let Some(l) = list {
            if l.offsets.len() != batch + 1 {
                return shape(format!(
                    "{name} offsets: {} entries for a batch of {batch} (give {})",
                    l.offsets.len(),
                    batch + 1
                ));
            }
            if l.tokens.len() > u32::MAX as usize {
                return shape(format!("{name}: more than 2^32 - 1 tokens"));
            }
        }
    }
    if let Some(b) = p.bias {
        if b.biases.len() != b.lists.tokens.len() {
            return shape(format!(
                "logit_bias: {} tokens but {} biases",
                b.lists.tokens.len(),
                b.biases.len()
            ));
        }
    }
    if let Some(pen) = p.penalties {
        if pen.len() != 1 && pen.len() != batch {
            return shape(format!(
                "{} penalty rows for a batch of {batch} (give 1 or {batch})",
                pen.len()
            ));
        }
    }
    Ok(())
}

// SAFETY: #[repr(C)] plain old data of kernels/params.cuh's layout (build/layout.rs asserts it).
unsafe impl DeviceRepr for Penalties {}
