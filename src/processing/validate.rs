//! The checks that make a [`Processing`] safe to apply: shapes first (a [`SampleError::Shape`]
//! naming the input), then every row's values (a [`SampleError::InvalidParam`] naming the row
//! and the field, as the CLI prints it).

use super::{bitmask_words, Processing};
use crate::error::SampleError;

impl Processing<'_> {
    /// Checks the inputs against a `[batch, vocab]` batch.
    pub fn validate(&self, batch: usize, vocab: usize) -> Result<(), SampleError> {
        self.validate_shapes(batch, vocab)?;
        (0..batch).try_for_each(|row| self.validate_row(row, vocab))
    }

    fn validate_shapes(&self, batch: usize, vocab: usize) -> Result<(), SampleError> {
        if let Some(mask) = self.bitmask {
            let words = bitmask_words(vocab);
            if mask.len() != batch * words {
                return Err(SampleError::Shape(format!(
                    "bitmask holds {} words; a batch of {batch} rows of vocab {vocab} needs \
                     [{batch}, {words}] = {} (ceil(vocab / 32) words a row)",
                    mask.len(),
                    batch * words
                )));
            }
        }
        check_offsets(
            "banned_tokens",
            self.banned.offsets,
            self.banned.tokens.len(),
            batch,
        )?;
        check_offsets(
            "logit_bias",
            self.bias.offsets,
            self.bias.tokens.len(),
            batch,
        )?;
        if self.bias.tokens.len() != self.bias.biases.len() {
            return Err(SampleError::Shape(format!(
                "logit_bias: {} tokens but {} biases",
                self.bias.tokens.len(),
                self.bias.biases.len()
            )));
        }
        check_offsets(
            "prompt_tokens",
            self.prompt.offsets,
            self.prompt.tokens.len(),
            batch,
        )?;
        check_offsets(
            "output_tokens",
            self.output.offsets,
            self.output.tokens.len(),
            batch,
        )?;
        let n = self.penalties.len();
        if n > 1 && n != batch {
            return Err(SampleError::Shape(format!(
                "{n} penalty rows for a batch of {batch} (give 0, 1 or {batch})"
            )));
        }
        Ok(())
    }

    fn validate_row(&self, row: usize, vocab: usize) -> Result<(), SampleError> {
        let lists = self.row(row, vocab);
        let bad = |field, value: String, reason| SampleError::InvalidParam {
            row,
            field,
            value,
            reason,
        };
        let in_range = |field, tokens: &[u32]| match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(t) => Err(bad(
                field,
                t.to_string(),
                "token id not below the vocabulary size",
            )),
            None => Ok(()),
        };
        in_range("banned_tokens", lists.banned)?;
        in_range("logit_bias", lists.bias_tokens)?;
        in_range("prompt_tokens", lists.prompt)?;
        in_range("output_tokens", lists.output)?;
        if let Some(b) = lists
            .biases
            .iter()
            .find(|b| b.is_nan() || **b == f32::INFINITY)
        {
            return Err(bad(
                "logit_bias",
                b.to_string(),
                "must be finite or -inf (a ban)",
            ));
        }
        let mut tokens = lists.bias_tokens.to_vec();
        tokens.sort_unstable();
        if let Some(pair) = tokens.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                "logit_bias",
                pair[0].to_string(),
                "token biased twice (one bias per token)",
            ));
        }
        let p = lists.penalties;
        if !(p.repetition.is_finite() && p.repetition > 0.0) {
            return Err(bad(
                "repetition_penalty",
                p.repetition.to_string(),
                "must be a finite number > 0 (1 is off)",
            ));
        }
        if !p.frequency.is_finite() {
            return Err(bad(
                "frequency_penalty",
                p.frequency.to_string(),
                "must be finite (0 is off)",
            ));
        }
        if !p.presence.is_finite() {
            return Err(bad(
                "presence_penalty",
                p.presence.to_string(),
                "must be finite (0 is off)",
            ));
        }
        Ok(())
    }
}

/// CSR offsets: none, or `batch + 1` non-decreasing entries within the values.
fn check_offsets(
    name: &str,
    offsets: &[u32],
    values: usize,
    batch: usize,
) -> Result<(), SampleError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let shape = |what: String| Err(SampleError::Shape(format!("{name} offsets: {what}")));
    if offsets.len() != batch + 1 {
        return shape(format!(
            "{} entries for a batch of {batch} (give none or {})",
            offsets.len(),
            batch + 1
        ));
    }
    if let Some(i) = offsets.windows(2).position(|w| w[0] > w[1]) {
        return shape(format!(
            "row {i} starts at {} after it ends at {}",
            offsets[i],
            offsets[i + 1]
        ));
    }
    if offsets[batch] as usize > values {
        return shape(format!(
            "the last row ends at {} past the {values} values",
            offsets[batch]
        ));
    }
    Ok(())
}
