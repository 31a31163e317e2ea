//! The batch-invariant numerics on the CPU ([`crate::params::Numerics::Invariant`]): the twin of
//! the kernels' `sample_rows_invariant_*`, bit for bit.
//!
//! In that mode every per-token value (scaled logit, weight, Gumbel score, logprob) comes from IEEE
//! operations in a fixed sequence ([`math`] mirrors `kernels/exact_math.cuh`), and every sum is an
//! integer (weights in fixed point: 2^-32 for the top-p decision, as in the fast path, 2^-40 for the
//! normaliser and the inverse-CDF walk). Integer sums are the same in any order, so nothing
//! depends on the block size, the batch, the row's position or the run — and this module, which
//! sums in whatever order is convenient, gets the kernels' bits.

pub mod math;
mod sampler;
mod verify;

pub(crate) use sampler::sample_row_scanned;
pub use sampler::{raw_logprobs, sample_row};
pub(crate) use verify::verify_position;
