//! The flags `sample` and `verify` share: the sampling parameters every row (request) takes and
//! the logits processing every row gets, unless `--params` gives a row its own.

use super::parse_bias;
use batchsample::processing::{Penalties, RowProcessing};
use batchsample::SamplingParams;
use clap::Args;

/// Temperature, top-k, top-p, min-p, seed and step for every row.
#[derive(Debug, Args)]
pub struct SamplingFlags {
    /// Temperature (>= 0; 0 is greedy).
    #[arg(
        long,
        short = 't',
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub temperature: f32,
    /// Keep the K highest-ranked tokens (0 = off).
    #[arg(
        long,
        short = 'k',
        value_name = "K",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub top_k: u32,
    /// Keep the smallest most-probable set whose mass reaches P, in (0, 1] (1 = off).
    #[arg(
        long,
        short = 'p',
        value_name = "P",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub top_p: f32,
    /// Drop tokens below M times the top probability, in [0, 1) (0 = off).
    #[arg(
        long,
        value_name = "M",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub min_p: f32,
    /// Base seed (default: a random one, reported on stderr). A row (request) without its own
    /// seed uses splitmix64(seed ^ row * 0xD1B54A32D192ED03), so rows draw independently.
    #[arg(long, short = 's', allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Step of every row's random stream (sample: draw d uses step + d; verify: position j uses
    /// step + j).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub step: u64,
}

impl SamplingFlags {
    /// The parameters the flags give, with the base seed (a random one when `--seed` is
    /// absent), and whether it was random.
    pub fn params(&self) -> (SamplingParams, bool) {
        let (seed, random) = match self.seed {
            Some(s) => (s, false),
            None => (rand::random::<u64>(), true),
        };
        let p = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            seed,
            step: self.step,
        };
        (p, random)
    }
}

/// Banned tokens, logit bias and the three penalties for every row.
#[derive(Debug, Args)]
pub struct ProcessingFlags {
    /// Tokens banned in every row (-inf), e.g. a stop token before a minimum length.
    #[arg(long, value_name = "T,T,...", value_delimiter = ',')]
    pub banned_tokens: Vec<u32>,
    /// A bias added to a token's logit in every row, TOKEN:BIAS (BIAS may be -inf).
    #[arg(long, value_name = "T:B,...", value_delimiter = ',', allow_hyphen_values = true, value_parser = parse_bias)]
    pub logit_bias: Vec<(u32, f32)>,
    /// Repetition penalty r (> 0; 1 = off) over each row's prompt_tokens and output_tokens.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub repetition_penalty: f32,
    /// Frequency penalty f (0 = off) per occurrence in each row's output_tokens.
    #[arg(
        long,
        value_name = "F",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub frequency_penalty: f32,
    /// Presence penalty q (0 = off) for each token present in a row's output_tokens.
    #[arg(
        long,
        value_name = "Q",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub presence_penalty: f32,
}

impl ProcessingFlags {
    /// The processing every row gets (`--params` fields override it per row); no history.
    pub fn row(&self) -> RowProcessing {
        RowProcessing {
            banned_tokens: self.banned_tokens.clone(),
            logit_bias: self.logit_bias.clone(),
            penalties: Penalties {
                repetition: self.repetition_penalty,
                frequency: self.frequency_penalty,
                presence: self.presence_penalty,
            },
            ..Default::default()
        }
    }
}
