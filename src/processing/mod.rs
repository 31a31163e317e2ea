//! Logits processing: what a serving engine does between the model and the draw.
//!
//! ## Semantics (per row, before temperature)
//! Applied to the logits widened to f32, in this order, each step one correctly rounded f32
//! operation per token (never fused into an FMA), so that the CPU, its invariant twin and the
//! kernels compute the same processed logit bit for bit:
//! 1. **Allowed-token bitmask** (optional, per batch): `i32 [batch, ceil(vocab / 32)]`, the
//!    layout of xgrammar and vLLM's structured output: bit `j` of word `i` (least significant
//!    first) set means token `32 i + j` is allowed; a cleared bit makes the token `-inf`. Bits past
//!    `vocab` are ignored.
//! 2. **Banned tokens** (a list per row): `-inf` (min-tokens' stop tokens, bad words).
//! 3. **Logit bias** (a list of `(token, bias)` per row, each token at most once, as the keys of
//!    OpenAI's `logit_bias`): `x = x + bias`; a `-inf` bias bans the token.
//! 4. **Penalties** ([`Penalties`], per row), from the row's prompt tokens and the output tokens
//!    generated so far (two lists, any length, repeats counted):
//!    - repetition `r` (1 = off, `> 0`), once per distinct token of prompt ∪ output:
//!      `x = x > 0 ? x / r : x * r`;
//!    - frequency `f` and presence `q` (0 = off, finite, any sign), over the output tokens only,
//!      with `c` the token's count there: `x = x - f * c`, then `x = x - q` when `c > 0`.
//!
//!    This is vLLM's order and arithmetic (`vllm/model_executor/layers/utils.py`,
//!    `apply_penalties`: `where(x > 0, x / r, x * r)`, then `x -= f * counts`, then
//!    `x -= q * mask`), which also is OpenAI's definition of frequency and presence
//!    (`x - c f - [c > 0] q`), rounded step by step.
//! 5. Then temperature, top-k, top-p, min-p and the draw exactly as for an unprocessed row
//!    (crate docs), on the processed logits.
//!
//! A row whose raw logits hold NaN or `+inf` gets [`RowStatus::NonFiniteLogit`] whatever its
//! processing (a mask does not hide a broken model output); so does a row that processing
//! overflows to `+inf` (a huge bias). A row whose processing leaves no finite token gets
//! [`RowStatus::NoFiniteLogit`]. Processing with every step off (no mask, empty lists, `r = 1`,
//! `f = q = 0`) leaves every logit's bits unchanged: the row is sampled as if unprocessed.
//!
//! Out-of-range tokens, a bitmask of the wrong length, a bias that is NaN or `+inf`, a token
//! biased twice, `r <= 0` or non-finite, a non-finite `f` or `q`: [`Processing::validate`] names
//! the row and the field ([`crate::SampleError::InvalidParam`]); malformed list offsets are a
//! [`crate::SampleError::Shape`].
//!
//! ## Logprobs
//! [`LogprobsMode::Processed`] (the default) reports the chosen token's and the top-n's
//! logprobs under the final distribution, as for unprocessed rows. [`LogprobsMode::Raw`]
//! reports them under the raw logits instead — `log_softmax` of the model's output at
//! temperature 1, before processing and filters, and the top-n of that distribution — as
//! vLLM's `logprobs_mode = "raw_logprobs"`.
//!
//! ## Where it runs
//! The reference ([`crate::cpu::sample_batch_processed`], exact) and the invariant twin sample
//! the row [`process_row`] writes. On the GPU, [`GpuSampler::sample_processed_on`] (device CSR
//! lists and a workspace sized once: no allocation, no host sync, graph-replayable) has the
//! general kernels apply the same f32 steps as they read each row (kernels/processing.cuh), so
//! the processed logits are the same bits and the caller's logits are never written. The
//! kernels check each row's lists and penalties themselves: a row they cannot apply (a token
//! past the vocabulary, malformed offsets, a bad value, lists longer than the workspace's edit
//! table) gets [`RowStatus::InvalidParams`] alone. Raw logprobs on the GPU are a second launch
//! of the general kernels over the raw rows at temperature 1 with no filters, scoring the token
//! the first launch drew: the same numbers as the reference within float rounding in the fast
//! numerics, and the invariant twin's bits in the invariant numerics.
//!
//! [`GpuSampler::sample_processed_on`]: crate::gpu::GpuSampler::sample_processed_on
//! [`RowStatus::InvalidParams`]: crate::RowStatus::InvalidParams
//! [`RowStatus::NonFiniteLogit`]: crate::RowStatus::NonFiniteLogit
//! [`RowStatus::NoFiniteLogit`]: crate::RowStatus::NoFiniteLogit

mod apply;
mod lists;
mod sparse;
mod validate;

pub use apply::{frequency_presence, process_row, process_row_scanned, repetition};
pub use lists::{
    BiasLists, Penalties, Processing, ProcessingBuf, RowLists, RowProcessing, TokenLists,
};

/// Under which distribution the logprobs of a processed row are reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum LogprobsMode {
    /// The final distribution: after processing, temperature and the filters.
    #[default]
    Processed,
    /// The raw logits' softmax at temperature 1 (vLLM's `raw_logprobs`).
    Raw,
}

/// The number of `i32` words of one row of an allowed-token bitmask: `ceil(vocab / 32)`.
pub fn bitmask_words(vocab: usize) -> usize {
    vocab.div_ceil(32)
}

/// Whether `token` is allowed by one row of a bitmask (bit `token % 32` of word `token / 32`,
/// least significant first).
#[inline]
pub fn is_allowed(mask_row: &[i32], token: usize) -> bool {
    (mask_row[token / 32] as u32 >> (token % 32)) & 1 == 1
}
