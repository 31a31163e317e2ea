//! The processing inputs of a batch, as borrowed views in CSR form (what the kernels read and a
//! serving loop updates in place), and an owned builder from per-row lists.

/// Per-row token lists in CSR form: row `r`'s tokens are `tokens[offsets[r]..offsets[r + 1]]`.
/// `offsets` holds `batch + 1` non-decreasing entries, or none (every row's list is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenLists<'a> {
    pub offsets: &'a [u32],
    pub tokens: &'a [u32],
}

impl<'a> TokenLists<'a> {
    /// Row `row`'s list (empty when there are no offsets). The lists must have passed
    /// [`Processing::validate`]; out-of-range offsets give an empty list, never a panic.
    pub fn row(&self, row: usize) -> &'a [u32] {
        csr_row(self.offsets, row, self.tokens)
    }
}

/// Per-row `(token, bias)` lists in CSR form: row `r`'s pairs are at
/// `offsets[r]..offsets[r + 1]` of `tokens` and `biases`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BiasLists<'a> {
    pub offsets: &'a [u32],
    pub tokens: &'a [u32],
    pub biases: &'a [f32],
}

impl<'a> BiasLists<'a> {
    /// Row `row`'s tokens and biases (both empty when there are no offsets).
    pub fn row(&self, row: usize) -> (&'a [u32], &'a [f32]) {
        (
            csr_row(self.offsets, row, self.tokens),
            csr_row(self.offsets, row, self.biases),
        )
    }
}

fn csr_row<'a, T>(offsets: &[u32], row: usize, values: &'a [T]) -> &'a [T] {
    match (offsets.get(row), offsets.get(row + 1)) {
        (Some(&a), Some(&b)) => values.get(a as usize..b as usize).unwrap_or(&[]),
        _ => &[],
    }
}

/// A row's penalties. The default is off: `repetition` 1, `frequency` and `presence` 0.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[repr(C)]
pub struct Penalties {
    /// `> 0`; 1 is off. Divides positive logits and multiplies the others, once per distinct
    /// token of the prompt and output.
    pub repetition: f32,
    /// Finite, any sign; 0 is off. Subtracted once per occurrence in the output.
    pub frequency: f32,
    /// Finite, any sign; 0 is off. Subtracted once from every token the output holds.
    pub presence: f32,
}

impl Default for Penalties {
    fn default() -> Self {
        Penalties::OFF
    }
}

impl Penalties {
    pub const OFF: Penalties = Penalties {
        repetition: 1.0,
        frequency: 0.0,
        presence: 0.0,
    };

    /// Whether the penalties change no logit (whatever the history).
    pub fn is_off(&self) -> bool {
        self.repetition == 1.0 && self.frequency == 0.0 && self.presence == 0.0
    }
}

/// A batch's processing inputs (see the module docs for the semantics). Every part is optional:
/// [`Processing::NONE`] is no processing, and each list view with no offsets is empty for every
/// row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Processing<'a> {
    /// `[batch, ceil(vocab / 32)]` words, or none (every token allowed).
    pub bitmask: Option<&'a [i32]>,
    pub banned: TokenLists<'a>,
    pub bias: BiasLists<'a>,
    /// The tokens of each row's prompt (repetition penalty only).
    pub prompt: TokenLists<'a>,
    /// The tokens each row has generated so far (all three penalties).
    pub output: TokenLists<'a>,
    /// None (off), one for every row, or one per row.
    pub penalties: &'a [Penalties],
}

impl<'a> Processing<'a> {
    pub const NONE: Processing<'static> = Processing {
        bitmask: None,
        banned: TokenLists {
            offsets: &[],
            tokens: &[],
        },
        bias: BiasLists {
            offsets: &[],
            tokens: &[],
            biases: &[],
        },
        prompt: TokenLists {
            offsets: &[],
            tokens: &[],
        },
        output: TokenLists {
            offsets: &[],
            tokens: &[],
        },
        penalties: &[],
    };

    /// The slots a row of the kernels' edit table needs for these lists: a power of two at
    /// least twice the largest row's entries (banned, bias, and the prompt and output where the
    /// row's penalties are on), at least 16; 0 when no row has a sparse edit. A serving loop
    /// that grows its lists in place sizes the workspace for the longest lists it will pass.
    pub fn edit_table_capacity(&self, batch: usize) -> usize {
        let most = (0..batch)
            .map(|r| {
                let row = self.row(r, 0);
                let history = if row.penalties.is_off() {
                    0
                } else {
                    row.prompt.len() + row.output.len()
                };
                row.banned.len() + row.bias_tokens.len() + history
            })
            .max()
            .unwrap_or(0);
        if most == 0 {
            0
        } else {
            (2 * most).next_power_of_two().max(16)
        }
    }

    /// Row `row`'s inputs (of a batch whose vocabulary is `vocab`).
    pub fn row(&self, row: usize, vocab: usize) -> RowLists<'a> {
        let words = super::bitmask_words(vocab);
        let (bias_tokens, biases) = self.bias.row(row);
        RowLists {
            mask: self
                .bitmask
                .and_then(|m| m.get(row * words..(row + 1) * words)),
            banned: self.banned.row(row),
            bias_tokens,
            biases,
            prompt: self.prompt.row(row),
            output: self.output.row(row),
            penalties: match self.penalties {
                [] => Penalties::OFF,
                [one] => *one,
                many => many.get(row).copied().unwrap_or(Penalties::OFF),
            },
        }
    }
}

/// One row's processing inputs, as [`Processing::row`] cuts them from the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowLists<'a> {
    /// The row's `ceil(vocab / 32)` bitmask words, or none.
    pub mask: Option<&'a [i32]>,
    pub banned: &'a [u32],
    pub bias_tokens: &'a [u32],
    pub biases: &'a [f32],
    pub prompt: &'a [u32],
    pub output: &'a [u32],
    pub penalties: Penalties,
}

impl RowLists<'_> {
    /// Whether this row's processing changes nothing: no mask, no banned token, no bias, and
    /// penalties that are off or have no history to act on.
    pub fn is_off(&self) -> bool {
        let history_unused = self.penalties.is_off()
            || (self.prompt.is_empty() && self.output.is_empty())
            || (self.penalties.repetition == 1.0 && self.output.is_empty());
        self.mask.is_none()
            && self.banned.is_empty()
            && self.bias_tokens.is_empty()
            && history_unused
    }
}

/// One row's processing as a request states it (the CLI's `--params` rows, tests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowProcessing {
    pub banned_tokens: Vec<u32>,
    pub logit_bias: Vec<(u32, f32)>,
    pub prompt_tokens: Vec<u32>,
    pub output_tokens: Vec<u32>,
    pub penalties: Penalties,
}

/// Owned CSR buffers for a batch's processing, built from per-row lists; [`ProcessingBuf::view`]
/// is the [`Processing`] the samplers take.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessingBuf {
    pub bitmask: Option<Vec<i32>>,
    pub banned_offsets: Vec<u32>,
    pub banned: Vec<u32>,
    pub bias_offsets: Vec<u32>,
    pub bias_tokens: Vec<u32>,
    pub biases: Vec<f32>,
    pub prompt_offsets: Vec<u32>,
    pub prompt: Vec<u32>,
    pub output_offsets: Vec<u32>,
    pub output: Vec<u32>,
    pub penalties: Vec<Penalties>,
}

impl ProcessingBuf {
    /// The CSR form of `rows` (one per row of the batch), with an optional bitmask. Lists that are
    /// empty in every row get no offsets, and penalties that are off in every row none.
    pub fn from_rows(rows: &[RowProcessing], bitmask: Option<Vec<i32>>) -> Self {
        fn csr<T: Copy>(lists: impl Iterator<Item = Vec<T>> + Clone) -> (Vec<u32>, Vec<T>) {
            if lists.clone().all(|l| l.is_empty()) {
                return (Vec::new(), Vec::new());
            }
            let mut offsets = vec![0u32];
            let mut values = Vec::new();
            for list in lists {
                values.extend(list);
                offsets.push(values.len() as u32);
            }
            (offsets, values)
        }
        let (banned_offsets, banned) = csr(rows.iter().map(|r| r.banned_tokens.clone()));
        let (bias_offsets, bias_tokens) = csr(rows
            .iter()
            .map(|r| r.logit_bias.iter().map(|b| b.0).collect()));
        let (_, biases) = csr(rows
            .iter()
            .map(|r| r.logit_bias.iter().map(|b| b.1).collect()));
        let (prompt_offsets, prompt) = csr(rows.iter().map(|r| r.prompt_tokens.clone()));
        let (output_offsets, output) = csr(rows.iter().map(|r| r.output_tokens.clone()));
        let penalties = if rows.iter().all(|r| r.penalties.is_off()) {
            Vec::new()
        } else {
            rows.iter().map(|r| r.penalties).collect()
        };
        ProcessingBuf {
            bitmask,
            banned_offsets,
            banned,
            bias_offsets,
            bias_tokens,
            biases,
            prompt_offsets,
            prompt,
            output_offsets,
            output,
            penalties,
        }
    }

    pub fn view(&self) -> Processing<'_> {
        Processing {
            bitmask: self.bitmask.as_deref(),
            banned: TokenLists {
                offsets: &self.banned_offsets,
                tokens: &self.banned,
            },
            bias: BiasLists {
                offsets: &self.bias_offsets,
                tokens: &self.bias_tokens,
                biases: &self.biases,
            },
            prompt: TokenLists {
                offsets: &self.prompt_offsets,
                tokens: &self.prompt,
            },
            output: TokenLists {
                offsets: &self.output_offsets,
                tokens: &self.output,
            },
            penalties: &self.penalties,
        }
    }
}
