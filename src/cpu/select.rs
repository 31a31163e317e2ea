//! Ordering of tokens and selection of the best `n` of a row, in the order every filter uses:
//! larger logit first, equal logits by lower token index (`-0.0` equals `0.0`).

use crate::dtype::Logit;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A finite token of a row: its logit (widened exactly to f32) and index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub logit: f32,
    pub token: u32,
}

impl Candidate {
    /// `Less` when `self` ranks before `other` (higher logit, then lower index).
    #[inline]
    pub fn rank_cmp(&self, other: &Candidate) -> Ordering {
        other
            .logit
            .partial_cmp(&self.logit)
            .expect("candidates are never NaN")
            .then(self.token.cmp(&other.token))
    }
}

/// Heap entry whose maximum is the worst-ranked kept candidate.
struct Worst(Candidate);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

/// The first `n` finite tokens of `row` in rank order (fewer if the row has fewer finite tokens).
/// Rows must hold no NaN (callers scan for it first).
pub fn top_sorted<T: Logit>(row: &[T], n: usize) -> Vec<Candidate> {
    if n == 0 {
        return Vec::new();
    }
    let all = row.iter().enumerate().map(|(i, x)| Candidate {
        logit: x.to_f32(),
        token: i as u32,
    });
    let mut out: Vec<Candidate> = if n.saturating_mul(16) >= row.len() {
        all.filter(|c| c.logit != f32::NEG_INFINITY).collect()
    } else {
        // One pass with a heap of the n best so far: a later token with an equal logit ranks
        // after every kept one, so only strictly larger logits can enter. Once the heap is full
        // its floor is finite and `-inf` fails `> floor`: only the filling needs the -inf test
        // (masked rows interleave -inf unpredictably, so the full pass tests one thing).
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(n + 1);
        let mut floor = f32::NEG_INFINITY;
        for c in all {
            if heap.len() < n {
                if c.logit == f32::NEG_INFINITY {
                    continue;
                }
                heap.push(Worst(c));
                if heap.len() == n {
                    floor = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.logit);
                }
            } else if c.logit > floor {
                heap.pop();
                heap.push(Worst(c));
                floor = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.logit);
            }
        }
        heap.into_iter().map(|w| w.0).collect()
    };
    out.sort_unstable_by(Candidate::rank_cmp);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_rank_by_lower_index_and_negative_zero_equals_zero() {
        let row = [1.0f32, 3.0, -0.0, 3.0, 0.0, f32::NEG_INFINITY, 1.0];
        let tokens: Vec<u32> = top_sorted(&row, 10).iter().map(|c| c.token).collect();
        assert_eq!(tokens, vec![1, 3, 0, 6, 2, 4]);
        let big: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        let top: Vec<u32> = top_sorted(&big, 3).iter().map(|c| c.token).collect();
        assert_eq!(top, vec![6, 13, 20]);
    }
}
