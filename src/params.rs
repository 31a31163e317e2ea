//! Per-row sampling parameters, their validation, and the draw methods.

use crate::error::SampleError;

/// Which rows each kernel family can serve, as the kernels check them: `row_<rule>` of
/// kernels/row_rules.cuh, translated by build.rs (build/rules.rs). The host's choices below are
/// made with these, so a batch the host sends to a family passes that family's own row check.
mod row_rules {
    use super::SamplingParams;
    #[allow(unused_imports)] // a rule may name any of the kernels' constants
    use crate::gpu::constants::*;
    include!(concat!(env!("OUT_DIR"), "/row_rules.rs"));
}

/// `vocab` as the kernels take it (vocabularies past `u32::MAX` are refused before a launch).
fn vocab_u32(vocab: usize) -> u32 {
    u32::try_from(vocab).unwrap_or(u32::MAX)
}

/// The parameters of one row. `#[repr(C)]` and 32 bytes: the kernels read this exact layout
/// (`kernels/params.cuh` states it; build.rs asserts this struct's size and offsets against that
/// header at compile time, `build/layout.rs`).
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(C)]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SamplingParams {
    /// `>= 0`; `0` is greedy (argmax, ties to the lowest index, no random number used).
    pub temperature: f32,
    /// Keep the `top_k` most probable tokens; `0` turns the filter off.
    pub top_k: u32,
    /// In `(0, 1]`: keep the smallest most-probable set whose mass reaches `top_p`; `1` is off.
    pub top_p: f32,
    /// In `[0, 1)`: drop tokens below `min_p` times the largest probability; `0` is off.
    pub min_p: f32,
    /// Key of the request's random stream.
    pub seed: u64,
    /// Counter of the request's random stream (the decode step).
    pub step: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 0,
            step: 0,
        }
    }
}

impl SamplingParams {
    /// Checks every field's range; the error names `row` and the field.
    pub fn validate(&self, row: usize) -> Result<(), SampleError> {
        let bad = |field, value: f32, reason| SampleError::InvalidParam {
            row,
            field,
            value: value.to_string(),
            reason,
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(bad(
                "temperature",
                self.temperature,
                "must be a finite number >= 0",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", self.top_p, "must be in (0, 1]"));
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return Err(bad("min_p", self.min_p, "must be in [0, 1)"));
        }
        Ok(())
    }

    /// The check every kernel makes of a row before sampling it (the rule `valid` of
    /// kernels/row_rules.cuh): [`SamplingParams::validate`]'s ranges, which a row written on the
    /// device has not been through. The invariant twin makes it too.
    pub fn is_valid_on_device(&self) -> bool {
        row_rules::row_valid(self, 0)
    }

    /// Greedy rows take the argmax and use no random number.
    pub fn is_greedy(&self) -> bool {
        row_rules::row_greedy(self, 0)
    }

    /// The same parameters at a later step (draw `d` of a request uses `step + d`).
    pub fn at_step(self, step: u64) -> Self {
        SamplingParams { step, ..self }
    }

    /// Greedy, or no top-k (0, or at least `vocab`), no top-p (1) and no min-p (0): no filter
    /// that changes the draw (a greedy row's filters never drop its argmax): the rules
    /// `greedy` and `unfiltered` of kernels/row_rules.cuh, which the kernels check too.
    pub fn is_unfiltered(&self, vocab: usize) -> bool {
        let vocab = vocab_u32(vocab);
        row_rules::row_greedy(self, vocab) || row_rules::row_unfiltered(self, vocab)
    }

    /// Greedy, or a top-k of 1 to [`COLLECTED_MAX_TOP_K`] (with any top-p and min-p): a row the
    /// collected kernels (kernels/collected.cuh) sample from the candidates of one read: the
    /// rules `greedy` and `small_top_k` of kernels/row_rules.cuh, which the kernels check too
    /// (and ask for the Gumbel draw).
    pub fn is_small_top_k(&self) -> bool {
        row_rules::row_greedy(self, 0) || row_rules::row_small_top_k(self, 0)
    }
}

/// The largest top-k the collected kernels serve (`COLLECTED_MAX_TOP_K` in kernels/row_rules.cuh,
/// the split kernels' `SPLIT_SLICE_CANDIDATES`).
pub const COLLECTED_MAX_TOP_K: u32 = crate::gpu::constants::COLLECTED_MAX_TOP_K;

/// What the caller knows of a batch's filters, as vLLM's `no_top_k` / `no_top_p` / `all_greedy`
/// flags tell its sampler which paths to take. With [`BatchFilters::Unfiltered`] the GPU sampler
/// may launch its unfiltered kernels (kernels/unfiltered.cuh), with [`BatchFilters::SmallTopK`]
/// its collected kernels (kernels/collected.cuh): both within 64 registers, so that two row
/// blocks share an SM (what that buys on a given card is measured by `batchsample bench
/// --filters`, BENCHMARKS.md). [`BatchFilters::Any`] is always correct.
///
/// **A wrong hint never changes a token.** The light kernels check every row against their rule
/// and give a row they cannot serve [`RowStatus::InvalidParams`] (no token), leaving the other
/// rows unharmed; the tokens they do return are the general kernels' draws. The safe choice is
/// automatic where the parameters are on the host: [`BatchFilters::of`] (which the host paths
/// and the CLI use), or [`BatchFilters::from_flags`] from per-batch flags an engine keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchFilters {
    /// Rows may use top-k, top-p and min-p.
    #[default]
    Any,
    /// No row uses a filter ([`SamplingParams::is_unfiltered`]). A row that does anyway gets
    /// [`RowStatus::InvalidParams`] from the unfiltered kernels; the other rows are unharmed.
    Unfiltered,
    /// Every row is greedy or has a top-k of 1 to [`COLLECTED_MAX_TOP_K`], with any top-p and
    /// min-p ([`SamplingParams::is_small_top_k`]). A row that is not gets
    /// [`RowStatus::InvalidParams`] from the collected kernels; the other rows are unharmed.
    SmallTopK,
}

impl BatchFilters {
    /// From per-batch flags as an engine keeps them (vLLM's `SamplingMetadata`): every row
    /// greedy; no row with top-k; no row with top-p; no row with min-p; and, where every
    /// non-greedy row has a top-k (`k >= 1`), the largest (`None` otherwise or when unknown).
    /// The lightest choice the flags prove, else [`BatchFilters::Any`].
    pub fn from_flags(
        all_greedy: bool,
        no_top_k: bool,
        no_top_p: bool,
        no_min_p: bool,
        every_top_k_at_most: Option<u32>,
    ) -> Self {
        if all_greedy || (no_top_k && no_top_p && no_min_p) {
            BatchFilters::Unfiltered
        } else if every_top_k_at_most.is_some_and(|k| (1..=COLLECTED_MAX_TOP_K).contains(&k)) {
            BatchFilters::SmallTopK
        } else {
            BatchFilters::Any
        }
    }

    /// What `params` (host copies of a batch's parameters) allow.
    pub fn of(params: &[SamplingParams], vocab: usize) -> Self {
        if params.iter().all(|p| p.is_unfiltered(vocab)) {
            BatchFilters::Unfiltered
        } else if params.iter().all(SamplingParams::is_small_top_k) {
            BatchFilters::SmallTopK
        } else {
            BatchFilters::Any
        }
    }
}

/// Validates a parameter slice against a batch: one entry (shared by every row) or one per row.
pub fn validate_batch(params: &[SamplingParams], batch: usize) -> Result<(), SampleError> {
    if params.len() != 1 && params.len() != batch {
        return Err(SampleError::Shape(format!(
            "{} parameter rows for a batch of {batch} (give 1 or {batch})",
            params.len()
        )));
    }
    params
        .iter()
        .enumerate()
        .try_for_each(|(row, p)| p.validate(row))
}

/// The parameters of row `row` when `params` holds one entry for all rows or one per row.
#[inline]
pub fn row_params(params: &[SamplingParams], row: usize) -> &SamplingParams {
    if params.len() == 1 {
        &params[0]
    } else {
        &params[row]
    }
}

/// How a token is drawn from the final distribution. Both are exact in distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum DrawMethod {
    /// Gumbel-max (the exponential race): the argmax of `logit / T + g_i`, `g_i` Gumbel noise from
    /// token `i`'s own uniform. The default: it needs no prefix sum and no normalisation, and an
    /// argmax gives the same answer in any reduction order, so the GPU's parallel evaluation picks
    /// the CPU's token except when two noisy scores tie to within float rounding.
    #[default]
    Gumbel,
    /// One uniform per row, walked through the cumulative sum of the kept probabilities in token
    /// index order (what `torch.multinomial` does). Its prefix sum depends on summation order, so
    /// a boundary can move between implementations. It needs no per-token random number: on
    /// temperature-only rows (fast numerics, rows of up to `gpu::CDF_STREAM_MAX_VOCAB`) the GPU
    /// reads the logits once, as for greedy (`kernels/stream_cdf.cuh`).
    InverseCdf,
}

/// How the kernels (and the CPU path) do their arithmetic. Both implement the same semantics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Numerics {
    /// CUDA's `expf`/`logf` and f32 sums in the block's fixed order on the GPU (temperature-only
    /// rows: the hardware `ex2` and per-window sums rescaled to the running maximum,
    /// `kernels/stream.cuh`, `kernels/stream_cdf.cuh`); exact f64 on the CPU. Deterministic run to run and at any position
    /// in a batch, and within float rounding of the f64 reference. Not batch-size invariant:
    /// below about two blocks per SM, greedy and temperature-only rows are split over several
    /// blocks (`gpu::split_count`), whose partial sums and scores round differently — logprob
    /// bits (and a token at a float near-tie) can differ between batch sizes.
    #[default]
    Fast,
    /// Batch-invariant and bit-exact: every per-token value from IEEE operations in a fixed
    /// sequence (exp and log included), every sum an integer in fixed point. A row's token,
    /// logprob and top-n bits depend only on its logits and parameters — not on the batch size,
    /// the row's position, the block size or the run — and the CPU path
    /// ([`crate::cpu::invariant`]) returns the same bits as the GPU.
    Invariant,
}

/// Per-row outcome. A failed row has no token; the other rows of its batch are unaffected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(u32)]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RowStatus {
    Ok = 0,
    /// The row holds NaN or `+inf`.
    NonFiniteLogit = 1,
    /// Every logit of the row is `-inf`.
    NoFiniteLogit = 2,
    /// The row's parameters failed validation (only reported by device-side checks).
    InvalidParams = 3,
    /// A speculative-decoding request's drafts are unusable ([`crate::verify`]): a draft token
    /// past the vocabulary, a draft distribution with a negative or non-finite entry, or one that
    /// gives its own draft token probability 0.
    InvalidDraft = 4,
}

// The codes are the kernels' `RowStatusCode` (kernels/params.cuh).
const _: () = {
    use crate::gpu::constants as k;
    assert!(RowStatus::Ok as u32 == k::STATUS_OK);
    assert!(RowStatus::NonFiniteLogit as u32 == k::STATUS_NON_FINITE_LOGIT);
    assert!(RowStatus::NoFiniteLogit as u32 == k::STATUS_NO_FINITE_LOGIT);
    assert!(RowStatus::InvalidParams as u32 == k::STATUS_INVALID_PARAMS);
    assert!(RowStatus::InvalidDraft as u32 == k::STATUS_INVALID_DRAFT);
};

impl RowStatus {
    pub fn from_code(code: u32) -> Option<RowStatus> {
        Some(match code {
            0 => RowStatus::Ok,
            1 => RowStatus::NonFiniteLogit,
            2 => RowStatus::NoFiniteLogit,
            3 => RowStatus::InvalidParams,
            4 => RowStatus::InvalidDraft,
            _ => return None,
        })
    }
}

// Per-row seeds from one base seed: what the CLI, the Python package and the examples do when a
// row names no seed of its own.

/// SplitMix64's output function (Steele, Lea & Flood, 2014): a bijection of `u64` with full
/// avalanche, so nearby inputs give unrelated outputs.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The odd constant that spreads a row index over 64 bits before it is mixed into the seed.
pub const ROW_MIX: u64 = 0xD1B5_4A32_D192_ED03;

/// The seed of row `row` when the row names none of its own:
///
/// `row_seed(base, row) = splitmix64(base ^ (row * 0xD1B54A32D192ED03 mod 2^64))`
///
/// where `splitmix64(x)` is SplitMix64's output function of `x + 0x9E3779B97F4A7C15`. For a given
/// `base` distinct rows get distinct seeds (multiplying by an odd constant, xoring a constant and
/// SplitMix64 are all bijections of `u64`), and unrelated ones: Philox keys its whole stream by the
/// seed, so the rows draw independently. A row that names its own seed uses it unchanged, so it
/// draws the same tokens wherever it sits in the batch.
pub fn row_seed(base: u64, row: usize) -> u64 {
    splitmix64(base ^ (row as u64).wrapping_mul(ROW_MIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_kernels() {
        assert_eq!(std::mem::size_of::<SamplingParams>(), 32);
        assert_eq!(std::mem::offset_of!(SamplingParams, temperature), 0);
        assert_eq!(std::mem::offset_of!(SamplingParams, top_k), 4);
        assert_eq!(std::mem::offset_of!(SamplingParams, top_p), 8);
        assert_eq!(std::mem::offset_of!(SamplingParams, min_p), 12);
        assert_eq!(std::mem::offset_of!(SamplingParams, seed), 16);
        assert_eq!(std::mem::offset_of!(SamplingParams, step), 24);
    }

    /// The rules the kernels check (translated from kernels/row_rules.cuh) against what the
    /// semantics say, at the edges of every field: `valid` is exactly `validate`, and the
    /// filter rules keep and drop what their docs say.
    #[test]
    fn row_rules_read_as_the_semantics() {
        let temperatures = [
            -1.0,
            -0.0,
            0.0,
            1e-30,
            1.0,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
        ];
        let top_ps = [
            -0.0,
            0.0,
            1e-7,
            0.5,
            0.999_999_9,
            1.0,
            1.000_000_1,
            f32::NAN,
        ];
        let min_ps = [-0.1, -0.0, 0.0, 1e-7, 0.5, 0.999_999_9, 1.0, f32::NAN];
        let top_ks = [0, 1, 64, 65, 999, 1000, 1001, u32::MAX];
        let vocab = 1000;
        for &temperature in &temperatures {
            for &top_p in &top_ps {
                for &min_p in &min_ps {
                    for &top_k in &top_ks {
                        let p = SamplingParams {
                            temperature,
                            top_k,
                            top_p,
                            min_p,
                            ..Default::default()
                        };
                        assert_eq!(
                            row_rules::row_valid(&p, vocab),
                            p.validate(0).is_ok(),
                            "{p:?}"
                        );
                        assert_eq!(row_rules::row_greedy(&p, vocab), temperature == 0.0);
                        let filters_off =
                            (top_k == 0 || top_k >= vocab) && top_p >= 1.0 && min_p <= 0.0;
                        assert_eq!(row_rules::row_unfiltered(&p, vocab), filters_off, "{p:?}");
                        assert_eq!(
                            row_rules::row_small_top_k(&p, vocab),
                            (1..=COLLECTED_MAX_TOP_K).contains(&top_k)
                        );
                    }
                }
            }
        }
        assert_eq!(
            COLLECTED_MAX_TOP_K,
            crate::gpu::constants::SPLIT_SLICE_CANDIDATES
        );
    }

    #[test]
    fn batch_filters_from_flags_claim_only_what_the_flags_prove() {
        let f = BatchFilters::from_flags;
        assert_eq!(f(true, false, false, false, None), BatchFilters::Unfiltered);
        assert_eq!(f(false, true, true, true, None), BatchFilters::Unfiltered);
        assert_eq!(
            f(false, false, true, true, Some(50)),
            BatchFilters::SmallTopK
        );
        assert_eq!(
            f(false, false, false, false, Some(64)),
            BatchFilters::SmallTopK
        );
        assert_eq!(f(false, false, true, true, Some(65)), BatchFilters::Any);
        // Some rows with top-k is not every row with one.
        assert_eq!(f(false, false, true, true, None), BatchFilters::Any);
        assert_eq!(f(false, true, false, true, None), BatchFilters::Any);
    }

    #[test]
    fn batch_filters_name_the_lightest_kernels_every_row_allows() {
        let vocab = 1000;
        let plain = SamplingParams::default();
        let greedy = SamplingParams {
            temperature: 0.0,
            top_p: 0.5,
            ..plain
        };
        let k = |top_k| SamplingParams {
            top_k,
            top_p: 0.9,
            min_p: 0.05,
            ..plain
        };
        let of = |rows: &[SamplingParams]| BatchFilters::of(rows, vocab);
        assert_eq!(of(&[plain, greedy]), BatchFilters::Unfiltered);
        assert_eq!(
            of(&[k(1), greedy, k(COLLECTED_MAX_TOP_K)]),
            BatchFilters::SmallTopK
        );
        // A temperature-only row needs the unfiltered path, which the collected kernels lack.
        assert_eq!(of(&[k(50), plain]), BatchFilters::Any);
        assert_eq!(of(&[k(50), k(COLLECTED_MAX_TOP_K + 1)]), BatchFilters::Any);
        assert_eq!(of(&[k(50), k(0)]), BatchFilters::Any);
    }

    #[test]
    fn every_invalid_field_is_named() {
        let ok = SamplingParams::default();
        let cases = [
            (
                SamplingParams {
                    temperature: -1.0,
                    ..ok
                },
                "temperature",
            ),
            (
                SamplingParams {
                    temperature: f32::NAN,
                    ..ok
                },
                "temperature",
            ),
            (
                SamplingParams {
                    temperature: f32::INFINITY,
                    ..ok
                },
                "temperature",
            ),
            (SamplingParams { top_p: 0.0, ..ok }, "top_p"),
            (SamplingParams { top_p: 1.5, ..ok }, "top_p"),
            (
                SamplingParams {
                    top_p: f32::NAN,
                    ..ok
                },
                "top_p",
            ),
            (SamplingParams { min_p: 1.0, ..ok }, "min_p"),
            (SamplingParams { min_p: -0.1, ..ok }, "min_p"),
            (
                SamplingParams {
                    min_p: f32::NAN,
                    ..ok
                },
                "min_p",
            ),
        ];
        for (p, field) in cases {
            let msg = p.validate(3).unwrap_err().to_string();
            assert!(msg.contains(field) && msg.contains("row 3"), "{msg}");
        }
        assert!(ok.validate(0).is_ok());
        assert!(SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            min_p: 0.0,
            ..ok
        }
        .validate(0)
        .is_ok());
    }

    #[test]
    fn batch_params_are_one_or_one_per_row() {
        let p = SamplingParams::default();
        assert!(validate_batch(&[p], 5).is_ok());
        assert!(validate_batch(&[p; 5], 5).is_ok());
        assert!(validate_batch(&[p; 2], 5).is_err());
    }
}
