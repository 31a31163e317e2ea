//! Speculative-decoding verification: chain rejection sampling of draft tokens against the
//! target model's logits, exact in distribution.
//!
//! A draft (a small model, EAGLE, n-gram lookup) proposes `n` tokens per request; the target model
//! scores `n + 1` positions in one pass; verification decides how many drafts to keep and emits
//! one more token. Done right, the emitted tokens are distributed exactly as sampling the target
//! alone, position by position (Leviathan et al., "Fast Inference from Transformers via
//! Speculative Decoding", ICML 2023; Chen et al., "Accelerating Large Language Model Decoding
//! with Speculative Sampling", 2023). This is the chain verification of vLLM's rejection sampler
//! and FlashInfer's `chain_speculative_sampling`.
//!
//! # Semantics
//! Request `r` has `n_r >= 0` drafts `d_1..d_n` ([`Drafts`]: CSR offsets, so `n` varies per
//! request), optional draft distributions `q_j` (dense f32, one row per draft; absent = point
//! masses, as for n-gram and greedy EAGLE drafts), target logits for `n_r + 1` positions, and the
//! request's [`SamplingParams`], seed and step. `p_j` is the final distribution of target position
//! `j` under those parameters at step `step + j - 1`: exactly what [`crate::cpu::sample_row`]
//! draws from (temperature, top-k, top-p, min-p, the crate's semantics 1-7).
//! - **Greedy requests** (temperature 0): `d_j` is accepted while it equals position `j`'s greedy
//!   token; the first mismatch emits that greedy token; if all are accepted, position `n + 1`'s
//!   greedy token is emitted. No random number is used.
//! - **Sampling requests**: for `j = 1..n`, `d_j` is accepted when `u_j * q_j(d_j) < p_j(d_j)`,
//!   i.e. with probability `min(1, p_j(d_j) / q_j(d_j))` (`q_j = 1` for point masses), where
//!   `u_j` is [`philox::accept_uniform`] at `(seed, step + j - 1)` — a purpose word of its own,
//!   independent of the position's draw. At the first rejection a token is drawn from the
//!   residual `max(0, p_j - q_j)` renormalised (for a point mass: `p_j` without `d_j`), by the
//!   request's [`DrawMethod`] with the uniforms a plain draw at `(seed, step + j - 1)` uses, and
//!   the chain stops. If every draft is accepted, a token is drawn from `p_{n+1}` exactly as
//!   [`crate::cpu::sample_row`] does at step `step + n` (so `n = 0` is plain sampling at `step`).
//! - A draft that `p_j` excludes (filtered, masked) has `p_j(d_j) = 0` and is always rejected.
//! - A dense `q_j` is used as given (not renormalised), as vLLM and FlashInfer use the draft
//!   model's probabilities; its entries must be finite and non-negative and `q_j(d_j) > 0`.
//! - A residual with no mass (a dense `q_j` at or above `p_j` everywhere, which a distribution
//!   `q_j` only reaches by rounding) falls back to a draw from `p_j` itself.
//! - Steps wrap at 2^64 (`step + j` is a wrapping add), like every other use of the counter.
//!
//! # Invariant numerics
//! With [`Numerics::Invariant`] every position is decided in the invariant sampler's arithmetic
//! (2^-40 fixed-point masses, exact integer sums, the crate's own exp and log): the accept test is
//! `(u * q(d)) * M < m(d)` in f64 with `M` the kept mass, the residuals are integer masses, and
//! the results' bits depend on nothing but the request. The decisions are spelled out in
//! `src/cpu/invariant/verify.rs`; the GPU's invariant verification will return the same bits.
//!
//! # On the GPU
//! [`crate::gpu::GpuSampler::verify_on`] (device buffers, the caller's stream, no host
//! synchronisation, results written into the caller's [`crate::gpu::VerifyOutputs`] at their
//! stride, a [`crate::gpu::VerifyWorkspace`] sized once) and `verify_host` run the general
//! kernels over the target rows, one block per row: each block decides its position at once —
//! the draft's accept test and the residual draw (the draft left out of the row's race or walk;
//! the draft's own mass added back gives the position's total), or the bonus draw — and the last
//! of a request's blocks to arrive walks the chain. Both numerics: the invariant kernels return
//! [`Numerics::Invariant`]'s bits (tested through the host shim), the fast kernels the same
//! decisions as the f64 reference except within float rounding of a boundary. A dense `q_j`'s
//! residual takes one more pass over the row and `q_j` (after the position's own draw, which
//! gives its total); its distribution is checked on the device first.
//!
//! # Logits processing
//! [`crate::processing`] applies per *target row*: the caller passes lists with one row per
//! target position. For the penalties, position `j`'s output history is the request's output so
//! far followed by the drafts `d_1..d_{j-1}` before it — what vLLM's rejection sampler builds
//! (`_combine_outputs_with_spec_tokens`) — and a grammar's bitmask for position `j` is the one
//! after those drafts. The verifier does not extend the lists itself: the caller knows its
//! grammar state, and a serving loop can keep the CSR lists on the device and update them in
//! place.
//!
//! # Where we follow vLLM and FlashInfer, and where we differ
//! The accept test, the residual and the bonus token are the standard ones (vLLM's
//! `rejection_sample`, FlashInfer's `chain_speculative_sampling`). We differ in: the uniforms
//! come from our Philox stream keyed by `(seed, step + j)` (vLLM draws from per-request torch
//! generators), so verification is reproducible and position `j`'s bonus or resampled draw uses
//! the uniforms a plain decode at that step would; min-p applies to the target like top-k and
//! top-p (vLLM's spec path applies temperature, top-k and top-p); a request with unusable
//! drafts gets [`RowStatus::InvalidDraft`] instead of undefined results; and logprobs are
//! reported for the emitted tokens, the resampled one under its residual.
//!
//! Outputs per request ([`VerifyOutput`]): the accepted count `a` (0..n), the `a + 1` emitted
//! tokens, each one's logprob — under `p_j` for an accepted draft and for the bonus token
//! (0 on greedy requests, as in sampling), under the normalised residual for a resampled token —
//! and a status. [`VerifyOutput::padded_tokens`] gives the tensor layout (`n_max + 1` tokens per
//! request, `-1` after the emitted ones).
//!
//! # Errors and statuses
//! A malformed batch (offsets not starting at 0 or decreasing, target rows or draft
//! probabilities not matching the offsets) or invalid parameters are a [`SampleError`]. A bad
//! request gets its status and the others are verified normally: a target row of the request
//! with NaN / `+inf` or no finite logit gives that row's status (whichever position the chain
//! would stop at, so the status never depends on a random number); a draft token past the
//! vocabulary, a draft distribution with a negative or non-finite entry, or `q_j(d_j) = 0` gives
//! [`RowStatus::InvalidDraft`].
//!
//! # Layout
//! Request `r`'s drafts are `tokens[offsets[r]..offsets[r + 1]]`, its draft distributions the
//! rows with those indices of `probs`, and its target positions the rows
//! `offsets[r] + r ..= offsets[r + 1] + r` of the target logits ([`Drafts::target_row`]). Tree
//! verification (EAGLE / SGLang token trees) fits the same layout later: a parent index per draft
//! node next to `tokens`, the target rows unchanged (one per node plus the root).
//!
//! [`DrawMethod`]: crate::DrawMethod
//! [`SamplingParams`]: crate::SamplingParams
//! [`SampleError`]: crate::SampleError
//! [`philox::accept_uniform`]: crate::philox::accept_uniform

use crate::error::{Result, SampleError};
use crate::params::{DrawMethod, Numerics, RowStatus};

/// How verification draws its resampled and bonus tokens, and in which numerics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The draw of a resampled (residual) or bonus token; the accept test is the same for both.
    pub method: DrawMethod,
    /// [`Numerics::Fast`]: exact f64 on the CPU; [`Numerics::Invariant`]: the batch-invariant
    /// arithmetic of the invariant sampler (see "Invariant numerics" above).
    pub numerics: Numerics,
}

/// A draft token and its distribution (`None`: a point mass).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Draft<'a> {
    pub token: u32,
    pub probs: Option<&'a [f32]>,
}

/// What one position of the chain does with its draft.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step {
    /// The draft is accepted, with its logprob under the position's distribution.
    Accept(f64),
    /// The chain stops here and emits this token with this logprob.
    Emit(u32, f64),
}

impl Step {
    /// A greedy position: the draft is accepted when it is the greedy token, else the greedy
    /// token is emitted; logprob 0 (a point mass) either way, in both numerics.
    pub(crate) fn greedy(draft: u32, argmax: u32) -> Step {
        if draft == argmax {
            Step::Accept(0.0)
        } else {
            Step::Emit(argmax, 0.0)
        }
    }
}

/// The draft tokens (and optionally their distributions) of a batch of requests, in CSR form.
#[derive(Clone, Copy, Debug)]
pub struct Drafts<'a> {
    /// `batch + 1` offsets into `tokens`, starting at 0, never decreasing.
    pub offsets: &'a [u32],
    /// Every request's draft tokens, concatenated.
    pub tokens: &'a [u32],
    /// The draft distributions, dense `[tokens.len(), vocab]`; `None` for point-mass drafts.
    pub probs: Option<&'a [f32]>,
}

impl<'a> Drafts<'a> {
    /// The batch size.
    pub fn batch(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Request `r`'s draft count `n_r`.
    pub fn count(&self, r: usize) -> usize {
        (self.offsets[r + 1] - self.offsets[r]) as usize
    }

    /// The largest draft count of the batch (`n_max`).
    pub fn max_count(&self) -> usize {
        (0..self.batch()).map(|r| self.count(r)).max().unwrap_or(0)
    }

    /// How many target rows the batch needs: one per draft plus one per request.
    pub fn target_rows(&self) -> usize {
        self.tokens.len() + self.batch()
    }

    /// The target row of request `r`'s position `j` (0-based: `j = 0` scores draft 1).
    pub fn target_row(&self, r: usize, j: usize) -> usize {
        self.offsets[r] as usize + r + j
    }

    /// Request `r`'s draft tokens.
    pub fn request_tokens(&self, r: usize) -> &'a [u32] {
        &self.tokens[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }

    /// Request `r`'s draft `j` distribution (0-based), when the drafts have distributions.
    pub fn draft_probs(&self, r: usize, j: usize, vocab: usize) -> Option<&'a [f32]> {
        let row = self.offsets[r] as usize + j;
        self.probs.map(|q| &q[row * vocab..(row + 1) * vocab])
    }

    /// Checks the batch's shape against `target_len` target logits of `vocab` each: the
    /// per-request problems are statuses ([`Drafts::request_status`]), not errors.
    pub fn validate(&self, target_len: usize, vocab: usize) -> Result<()> {
        let shape = |m: String| Err(SampleError::Shape(m));
        if self.offsets.is_empty() {
            return shape("draft offsets need batch + 1 entries (at least one)".into());
        }
        if self.offsets[0] != 0 {
            return shape(format!("draft offsets start at {}, not 0", self.offsets[0]));
        }
        if let Some(r) = (0..self.batch()).find(|&r| self.offsets[r + 1] < self.offsets[r]) {
            return shape(format!(
                "draft offsets decrease at request {r} ({} then {})",
                self.offsets[r],
                self.offsets[r + 1]
            ));
        }
        let drafts = *self.offsets.last().expect("not empty") as usize;
        if drafts != self.tokens.len() {
            return shape(format!(
                "draft offsets end at {drafts} but there are {} draft tokens",
                self.tokens.len()
            ));
        }
        if vocab == 0 {
            return shape("vocab size must be at least 1".into());
        }
        let rows = self.target_rows();
        if target_len != rows * vocab {
            return shape(format!(
                "{target_len} target logits for {rows} target rows (drafts + 1 per request) of \
                 {vocab}"
            ));
        }
        if let Some(q) = self.probs {
            if q.len() != drafts * vocab {
                return shape(format!(
                    "{} draft probabilities for {drafts} drafts of {vocab}",
                    q.len()
                ));
            }
        }
        Ok(())
    }

    /// [`Drafts::validate`], and that `params` parameter rows (1 or one per request) and
    /// `processing` (one row per target row) fit the batch: the shape checks every host path of
    /// verification makes before any work.
    pub fn check_batch(
        &self,
        target_len: usize,
        vocab: usize,
        params: usize,
        processing: &crate::processing::Processing,
    ) -> Result<()> {
        self.validate(target_len, vocab)?;
        let batch = self.batch();
        if params != 1 && params != batch {
            return Err(SampleError::Shape(format!(
                "{params} parameter rows for {batch} requests (give 1 or {batch})"
            )));
        }
        processing.validate(self.target_rows(), vocab)
    }

    /// [`RowStatus::InvalidDraft`] when request `r`'s drafts are unusable: a token past the
    /// vocabulary, a distribution with a negative or non-finite entry, or one that gives its own
    /// draft probability 0.
    pub fn request_status(&self, r: usize, vocab: usize) -> RowStatus {
        for (j, &d) in self.request_tokens(r).iter().enumerate() {
            if d as usize >= vocab {
                return RowStatus::InvalidDraft;
            }
            if let Some(q) = self.draft_probs(r, j, vocab) {
                if q.iter().any(|&x| !(x >= 0.0 && x.is_finite())) || q[d as usize] <= 0.0 {
                    return RowStatus::InvalidDraft;
                }
            }
        }
        RowStatus::Ok
    }
}

/// CSR offsets for `batch` requests of `n` drafts each.
pub fn uniform_offsets(batch: usize, n: usize) -> Vec<u32> {
    (0..=batch).map(|r| (r * n) as u32).collect()
}

/// One request's verification result.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VerifyOutput {
    /// How many drafts were accepted (0 on a failed request).
    pub accepted: usize,
    /// The `accepted + 1` emitted tokens: the accepted drafts, then the resampled or bonus
    /// token. Empty when `status` is not `Ok`.
    pub tokens: Vec<u32>,
    /// Each emitted token's logprob (see the module docs for under which distribution).
    pub logprobs: Vec<f64>,
    pub status: RowStatus,
}

impl VerifyOutput {
    pub fn failed(status: RowStatus) -> VerifyOutput {
        VerifyOutput {
            accepted: 0,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            status,
        }
    }

    /// A request's result from the kernels' output layout ([`crate::gpu::VerifyOutputs`],
    /// copied to the host): its status code, accepted count and row of tokens and logprobs (the
    /// emitted ones first, then padding). A code the kernels never write reads as
    /// [`RowStatus::InvalidParams`].
    pub fn from_padded(
        status: u32,
        accepted: i32,
        tokens: &[i32],
        logprobs: &[f32],
    ) -> VerifyOutput {
        let status = RowStatus::from_code(status).unwrap_or(RowStatus::InvalidParams);
        if status != RowStatus::Ok {
            return VerifyOutput::failed(status);
        }
        let emitted = (accepted.max(0) as usize + 1).min(tokens.len());
        VerifyOutput {
            accepted: emitted - 1,
            tokens: tokens[..emitted].iter().map(|&t| t as u32).collect(),
            logprobs: logprobs[..emitted].iter().map(|&l| l as f64).collect(),
            status,
        }
    }

    /// The emitted tokens padded with `-1` to `n_max + 1` entries (the GPU's output layout).
    pub fn padded_tokens(&self, n_max: usize) -> Vec<i32> {
        let mut out = vec![-1i32; n_max + 1];
        for (slot, &t) in out.iter_mut().zip(&self.tokens) {
            *slot = t as i32;
        }
        out
    }
}
