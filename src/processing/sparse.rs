//! The sparse steps of processing (banned tokens, bias, penalties): work in proportion to the
//! lists, not the vocabulary. A per-thread scratch indexed by token (kept zeroed between rows)
//! counts the output's repeats and marks each edited token once, so no list is sorted; the
//! tokens edited are returned, each once, for the scan's correction.

use super::apply::{frequency_presence, repetition};
use super::RowLists;
use std::cell::RefCell;

/// Per token: how often the output holds it, and what this row has done to it.
#[derive(Default)]
struct Scratch {
    output_count: Vec<u32>,
    flags: Vec<u8>,
    edited: Vec<u32>,
}

/// The token is in `edited`.
const EDITED: u8 = 1;
/// The token is in the prompt or the output (repetition applies).
const HISTORY: u8 = 2;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    fn mark(&mut self, t: u32, flag: u8) {
        let f = &mut self.flags[t as usize];
        if *f & EDITED == 0 {
            self.edited.push(t);
        }
        *f |= EDITED | flag;
    }
}

/// Applies the banned tokens, the bias and the penalties to `out` (in the documented order for
/// each token), then calls `with_edited` with every token they touched, once each, in no
/// particular order. The lists must have passed validation (tokens below `out.len()`).
pub(super) fn apply_sparse<R>(
    out: &mut [f32],
    lists: &RowLists,
    with_edited: impl FnOnce(&[f32], &[u32]) -> R,
) -> R {
    SCRATCH.with_borrow_mut(|s| {
        if s.flags.len() < out.len() {
            s.flags.resize(out.len(), 0);
            s.output_count.resize(out.len(), 0);
        }
        for &t in lists.banned {
            out[t as usize] = f32::NEG_INFINITY;
            s.mark(t, 0);
        }
        for (&t, &b) in lists.bias_tokens.iter().zip(lists.biases) {
            out[t as usize] += b;
            s.mark(t, 0);
        }
        let p = lists.penalties;
        let frequency_presence_on = p.frequency != 0.0 || p.presence != 0.0;
        if p.repetition != 1.0 {
            for &t in lists.prompt {
                s.mark(t, HISTORY);
            }
        }
        if !p.is_off() {
            for &t in lists.output {
                s.mark(t, HISTORY);
                s.output_count[t as usize] += 1;
            }
        }
        if !p.is_off() {
            for &t in &s.edited {
                let (t, flags) = (t as usize, s.flags[t as usize]);
                if flags & HISTORY == 0 {
                    continue;
                }
                let mut x = out[t];
                if p.repetition != 1.0 {
                    x = repetition(x, p.repetition);
                }
                let count = s.output_count[t] as usize;
                if frequency_presence_on && count > 0 {
                    x = frequency_presence(x, count, p.frequency, p.presence);
                }
                out[t] = x;
            }
        }
        let result = with_edited(out, &s.edited);
        let Scratch {
            output_count,
            flags,
            edited,
        } = s;
        for &t in edited.iter() {
            output_count[t as usize] = 0;
            flags[t as usize] = 0;
        }
        edited.clear();
        result
    })
}
