//! # batchsample
//!
//! Batched LLM token sampling: a batch of `[batch, vocab]` logit rows (f32, f16 or bf16), each with
//! its own temperature, top-k, top-p, min-p, seed and step, becomes one token per row — fused on
//! an NVIDIA GPU ([`gpu`]) or exactly in f64 on the CPU ([`cpu`]), from the same random stream.
//!
//! ## Semantics (the contract for the CPU reference and the kernels)
//! Per row, with `x` the logits widened exactly to f32:
//! 1. **Validation.** `temperature >= 0` and finite; `top_k` any (0 = off); `top_p` in (0, 1]
//!    (1 = off); `min_p` in [0, 1) (0 = off). Anything else is [`SampleError::InvalidParam`]
//!    naming the row and the field. A row holding NaN or `+inf` gets
//!    [`RowStatus::NonFiniteLogit`], a row with no finite logit [`RowStatus::NoFiniteLogit`]; the
//!    other rows are sampled normally. `-inf` is a masked token: never drawn.
//! 2. **Rank order.** Larger logit first; equal logits by lower token index (`-0.0 == 0.0`).
//!    Temperature does not change it, so every filter keeps a prefix of this order.
//! 3. **Temperature.** `temperature == 0` is greedy: the first token of the rank order, no random
//!    number used, logprob 0 (the distribution is a point mass), filters moot. Otherwise the
//!    weights are `w_i = exp((x_i - max) / T)`.
//! 4. **top-k** keeps the first `k` tokens of the rank order (all if `k` is 0 or `>=` the number of
//!    finite tokens).
//! 5. **top-p** keeps, of the top-k survivors renormalised, the shortest rank-order prefix whose
//!    mass reaches `p` — the token that crosses `p` included (if rounding keeps the sum just under
//!    `p`, all top-k survivors stay).
//! 6. **min-p** keeps the tokens whose probability is at least `min_p` times the largest surviving
//!    probability (the row's maximum, weight 1), i.e. `w_i >= min_p`.
//! 7. **Draw** from the survivors renormalised, by [`DrawMethod::Gumbel`] (default) or
//!    [`DrawMethod::InverseCdf`], with uniforms from [`philox`] keyed by `(seed, step)` and the token
//!    index — never by the row's position in the batch.
//! 8. **Outputs.** The token, its logprob under the final distribution, optionally the `top_n`
//!    most probable survivors with their logprobs, and the row status.
//!
//! The f64 reference ([`cpu::sample_row`]) implements this literally; the GPU agrees with it
//! except where f32 sums put a top-p / min-p boundary, or a Gumbel near-tie, differently.
//!
//! ## Numerics
//! [`Numerics::Fast`] (default) is the above with CUDA's `expf`/`logf` (the hardware `ex2` for
//! temperature-only rows) and f32 sums on the GPU, and exact f64 on the CPU.
//! [`Numerics::Invariant`] computes every per-token value with one fixed sequence of IEEE
//! operations (`kernels/exact_math.cuh`, twinned in [`cpu::invariant::math`]) and every sum as
//! a fixed-point integer, so a row's results are the same bits at any batch size, position,
//! block size and run, on the GPU and on the CPU.

pub mod cpu;
pub mod dtype;
pub mod error;
pub mod gpu;
#[cfg(feature = "host-simt")]
pub mod host_simt;
pub mod params;
pub mod philox;
pub mod processing;
pub mod verify;

pub use cpu::{RowOutput, SampleOptions, TokenLogprob};
pub use dtype::{Dtype, Logit, LogitsBuf};
pub use error::{Result, SampleError};
pub use params::{
    BatchFilters, DrawMethod, Numerics, RowStatus, SamplingParams, COLLECTED_MAX_TOP_K,
};
