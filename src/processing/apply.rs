//! Applying a row's processing to its logits, in the order and arithmetic of the module docs.
//! The reference and the invariant twin both sample from this f32 row, so that processing is
//! exact in one place and the kernels match it bit for bit.

use super::{is_allowed, RowLists};
use crate::dtype::Logit;

/// A row's processed logits, written into `out` (cleared first, reused across rows): the raw
/// logits widened to f32, then the bitmask, banned tokens, bias and penalties. The lists must
/// have passed [`super::Processing::validate`] (tokens below `row.len()`).
pub fn process_row<T: Logit>(row: &[T], lists: &RowLists, out: &mut Vec<f32>) {
    out.clear();
    out.extend(row.iter().map(|x| x.to_f32()));
    if let Some(mask) = lists.mask {
        for (i, x) in out.iter_mut().enumerate() {
            if !is_allowed(mask, i) {
                *x = f32::NEG_INFINITY;
            }
        }
    }
    for &t in lists.banned {
        out[t as usize] = f32::NEG_INFINITY;
    }
    for (&t, &b) in lists.bias_tokens.iter().zip(lists.biases) {
        out[t as usize] += b;
    }
    apply_penalties(out, lists);
}

/// Repetition over the distinct tokens of prompt ∪ output, then frequency and presence over the
/// output's distinct tokens with their counts. Each token's steps are in the documented order
/// whatever the lists' order: the result does not depend on it.
fn apply_penalties(out: &mut [f32], lists: &RowLists) {
    let p = lists.penalties;
    if p.repetition != 1.0 {
        let mut seen: Vec<u32> = lists.prompt.iter().chain(lists.output).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            out[t as usize] = repetition(out[t as usize], p.repetition);
        }
    }
    if p.frequency != 0.0 || p.presence != 0.0 {
        let mut output = lists.output.to_vec();
        output.sort_unstable();
        for run in output.chunk_by(|a, b| a == b) {
            let t = run[0] as usize;
            out[t] = frequency_presence(out[t], run.len(), p.frequency, p.presence);
        }
    }
}

/// `x > 0 ? x / r : x * r`, one f32 operation.
#[inline]
pub fn repetition(x: f32, r: f32) -> f32 {
    if x > 0.0 {
        x / r
    } else {
        x * r
    }
}

/// `x - f * c`, then `- q`, for a token the output holds `count >= 1` times: three f32 operations
/// rounded one by one (the count converted to f32 first), never an FMA.
#[inline]
pub fn frequency_presence(x: f32, count: usize, f: f32, q: f32) -> f32 {
    let x = x - f * count as f32;
    x - q
}
