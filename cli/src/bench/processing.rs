//! The logits processing a bench case applies (`--processing`): the issue's `penalties` and
//! `bitmask` workloads, crossed with every `--mode` so that each is timed alone (`temperature`)
//! and with the filters (`combined`), against the same case unprocessed in the same run.

use super::workload::splitmix64;
use batchsample::processing::{
    bitmask_words, LogprobsMode, Penalties, ProcessingBuf, RowProcessing,
};
use serde::Serialize;

/// Prompt and output tokens a row of the `penalties` workload holds (2048 of history).
pub const PENALTY_PROMPT_TOKENS: usize = 1024;
pub const PENALTY_OUTPUT_TOKENS: usize = 1024;

/// Which processing a case applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchProcessing {
    /// None: the plain sampler.
    #[default]
    None,
    /// Every row: 1024 prompt + 1024 output tokens (uniform over the vocabulary, so with
    /// repeats), repetition 1.1, frequency 0.5, presence 0.5.
    Penalties,
    /// Every row: an allowed-token bitmask allowing a random half of the vocabulary.
    Bitmask,
    /// Both.
    All,
    /// No lists, logprobs of the raw logits (`LogprobsMode::Raw`): the processed path's draw
    /// and, on the GPU, the second launch that scores the token.
    Raw,
    /// `all` with raw logprobs.
    AllRaw,
}

impl BenchProcessing {
    pub const ALL: [BenchProcessing; 6] = [
        BenchProcessing::None,
        BenchProcessing::Penalties,
        BenchProcessing::Bitmask,
        BenchProcessing::All,
        BenchProcessing::Raw,
        BenchProcessing::AllRaw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchProcessing::None => "none",
            BenchProcessing::Penalties => "penalties",
            BenchProcessing::Bitmask => "bitmask",
            BenchProcessing::All => "all",
            BenchProcessing::Raw => "raw",
            BenchProcessing::AllRaw => "all-raw",
        }
    }

    fn penalties(self) -> bool {
        matches!(
            self,
            BenchProcessing::Penalties | BenchProcessing::All | BenchProcessing::AllRaw
        )
    }

    fn bitmask(self) -> bool {
        matches!(
            self,
            BenchProcessing::Bitmask | BenchProcessing::All | BenchProcessing::AllRaw
        )
    }

    /// The logprobs the case reports.
    pub fn logprobs(self) -> LogprobsMode {
        match self {
            BenchProcessing::Raw | BenchProcessing::AllRaw => LogprobsMode::Raw,
            _ => LogprobsMode::Processed,
        }
    }
}

impl std::str::FromStr for BenchProcessing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BenchProcessing::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown processing '{s}' (expected none, penalties, bitmask, all, raw or \
                     all-raw)"
                )
            })
    }
}

/// The CSR buffers of `processing` for a `[batch, vocab]` case, reproducible from `seed` (no
/// lists for [`BenchProcessing::Raw`]); `None` for [`BenchProcessing::None`].
pub fn processing_inputs(
    processing: BenchProcessing,
    batch: usize,
    vocab: usize,
    seed: u64,
) -> Option<ProcessingBuf> {
    if processing == BenchProcessing::None {
        return None;
    }
    let token = |row: usize, i: usize| {
        (splitmix64(seed ^ ((row as u64) << 32) ^ i as u64) % vocab as u64) as u32
    };
    let rows: Vec<RowProcessing> = (0..batch)
        .map(|r| {
            if !processing.penalties() {
                return RowProcessing::default();
            }
            let history = PENALTY_PROMPT_TOKENS + PENALTY_OUTPUT_TOKENS;
            RowProcessing {
                prompt_tokens: (0..PENALTY_PROMPT_TOKENS).map(|i| token(r, i)).collect(),
                output_tokens: (PENALTY_PROMPT_TOKENS..history)
                    .map(|i| token(r, i))
                    .collect(),
                penalties: Penalties {
                    repetition: 1.1,
                    frequency: 0.5,
                    presence: 0.5,
                },
                ..Default::default()
            }
        })
        .collect();
    let bitmask = processing.bitmask().then(|| {
        let words = bitmask_words(vocab);
        (0..batch * words)
            .map(|w| splitmix64(seed.rotate_left(17) ^ w as u64) as i32)
            .collect()
    });
    Some(ProcessingBuf::from_rows(&rows, bitmask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchsample::processing::is_allowed;

    #[test]
    fn the_workloads_hold_what_their_docs_say() {
        let (batch, vocab) = (4, 1000);
        assert!(processing_inputs(BenchProcessing::None, batch, vocab, 1).is_none());
        let all = processing_inputs(BenchProcessing::All, batch, vocab, 1).unwrap();
        let view = all.view();
        view.validate(batch, vocab).unwrap();
        let row = view.row(2, vocab);
        assert_eq!(row.prompt.len(), PENALTY_PROMPT_TOKENS);
        assert_eq!(row.output.len(), PENALTY_OUTPUT_TOKENS);
        assert_eq!(row.penalties.frequency, 0.5);
        let allowed = (0..vocab)
            .filter(|&t| is_allowed(row.mask.unwrap(), t))
            .count();
        assert!(
            (400..600).contains(&allowed),
            "about half allowed: {allowed}"
        );
        let mask_only = processing_inputs(BenchProcessing::Bitmask, batch, vocab, 1).unwrap();
        assert!(mask_only.prompt.is_empty() && mask_only.bitmask.is_some());
    }
}
