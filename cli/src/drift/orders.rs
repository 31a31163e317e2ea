//! Summation orders a GPU uses, emulated on the CPU in f32 arithmetic. Each is a pure function of
//! its parameters: the "float atomics" order is only run-dependent because a run draws a fresh
//! arrival-order seed.
//!
//! Every order comes with a sum ([`Order::sum`]), a prefix sum for the inverse-CDF walk
//! ([`Order::prefix`]: the running sum in index order, built with that order's structure) and an
//! argmax with the same structure ([`Order::argmax`]: exact under any order, since "larger score,
//! ties to the lower index" is associative and commutative).

use crate::io::splitmix64;
use serde::Serialize;

/// Items each thread owns, contiguous, in one tile of the block prefix scan.
pub const ITEMS_PER_THREAD: usize = 4;

/// A reduction order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Order {
    /// Left to right, one accumulator.
    Sequential,
    /// A thread block: thread `t` sums `i = t, t + threads, ...` in order, then a shared-memory
    /// pairwise tree over the threads (`threads` a power of two).
    Block { threads: usize },
    /// The row cut in `splits` contiguous pieces, each summed left to right, the partials added
    /// in piece order.
    SplitRow { splits: usize },
    /// Fixed chunks of `chunk` items whose partials are merged in an order permuted by `seed`
    /// (fixed for a configuration, like a split-K merge schedule).
    SplitK { chunk: usize, seed: u64 },
    /// Chunk partials added in an arrival order drawn from `seed` (emulating `atomicAdd`: a new
    /// seed every run).
    Atomics { chunk: usize, seed: u64 },
}

impl Order {
    /// A short name: `sequential`, `block-256`, `split-row-4`, `split-k-256`, `atomics-256`.
    pub fn name(&self) -> String {
        match *self {
            Order::Sequential => "sequential".into(),
            Order::Block { threads } => format!("block-{threads}"),
            Order::SplitRow { splits } => format!("split-row-{splits}"),
            Order::SplitK { chunk, .. } => format!("split-k-{chunk}"),
            Order::Atomics { chunk, .. } => format!("atomics-{chunk}"),
        }
    }

    /// The same order with another seed (only atomics and split-K have one).
    pub fn with_seed(self, seed: u64) -> Order {
        match self {
            Order::SplitK { chunk, .. } => Order::SplitK { chunk, seed },
            Order::Atomics { chunk, .. } => Order::Atomics { chunk, seed },
            o => o,
        }
    }

    /// The sum of `w` in this order, in f32.
    pub fn sum(&self, w: &[f32]) -> f32 {
        match *self {
            Order::Sequential => seq(w),
            Order::Block { threads } => {
                let t = threads.max(1);
                let mut p: Vec<f32> = (0..t).map(|k| w.iter().skip(k).step_by(t).sum()).collect();
                tree(&mut p);
                p[0]
            }
            Order::SplitRow { splits } => seq(&pieces(w, piece_len(w.len(), splits))),
            Order::SplitK { chunk, seed } | Order::Atomics { chunk, seed } => {
                let partials = pieces(w, chunk.max(1));
                permutation(partials.len(), seed)
                    .iter()
                    .fold(0.0f32, |acc, &c| acc + partials[c])
            }
        }
    }

    /// The running sums `S_j = w_0 + ... + w_j` in index order, computed with this order's
    /// structure (so `S_last` need not equal [`Order::sum`]).
    pub fn prefix(&self, w: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; w.len()];
        match *self {
            Order::Sequential => running(w, 0.0, &mut out),
            Order::Block { threads } => {
                // Tiles of threads * ITEMS: each thread sums its ITEMS contiguous items, a
                // Hillis-Steele inclusive scan over the thread partials gives each thread its
                // exclusive offset, and the tile total is added to the carry.
                let t = threads.max(1);
                let tile = t * ITEMS_PER_THREAD;
                let mut carry = 0f32;
                for (w_tile, o_tile) in w.chunks(tile).zip(out.chunks_mut(tile)) {
                    let mut incl: Vec<f32> = (0..t)
                        .map(|k| {
                            w_tile
                                .iter()
                                .skip(k * ITEMS_PER_THREAD)
                                .take(ITEMS_PER_THREAD)
                                .sum()
                        })
                        .collect();
                    let mut d = 1;
                    while d < t {
                        let prev = incl.clone();
                        for k in d..t {
                            incl[k] = prev[k] + prev[k - d];
                        }
                        d *= 2;
                    }
                    for (k, (wk, ok)) in w_tile
                        .chunks(ITEMS_PER_THREAD)
                        .zip(o_tile.chunks_mut(ITEMS_PER_THREAD))
                        .enumerate()
                    {
                        let excl = if k == 0 { 0.0 } else { incl[k - 1] };
                        running(wk, carry + excl, ok);
                    }
                    carry += incl[t - 1];
                }
            }
            Order::SplitRow { splits } => {
                let len = piece_len(w.len(), splits);
                let mut carry = 0f32;
                for (wp, op) in w.chunks(len).zip(out.chunks_mut(len)) {
                    running(wp, carry, op);
                    carry += seq(wp);
                }
            }
            Order::SplitK { chunk, seed } | Order::Atomics { chunk, seed } => {
                // Chunk c's offset: the partials of the chunks before it, added in the order
                // they arrive.
                let chunk = chunk.max(1);
                let partials = pieces(w, chunk);
                let perm = permutation(partials.len(), seed);
                for (c, (wp, op)) in w.chunks(chunk).zip(out.chunks_mut(chunk)).enumerate() {
                    let carry = perm
                        .iter()
                        .filter(|&&j| j < c)
                        .fold(0.0f32, |acc, &j| acc + partials[j]);
                    running(wp, carry, op);
                }
            }
        }
        out
    }

    /// The index of the largest score (ties to the lower index), reduced with this order's
    /// structure; `None` when every score is `-inf` or the slice is empty.
    pub fn argmax(&self, scores: &[f64]) -> Option<usize> {
        let best_of = |idx: &mut dyn Iterator<Item = usize>| {
            idx.fold(None, |b: Option<usize>, i| better(scores, b, Some(i)))
        };
        let n = scores.len();
        match *self {
            Order::Sequential => best_of(&mut (0..n)),
            Order::Block { threads } => {
                let t = threads.max(1);
                let mut p: Vec<Option<usize>> =
                    (0..t).map(|k| best_of(&mut (k..n).step_by(t))).collect();
                let mut s = t / 2;
                while s > 0 {
                    for k in 0..s {
                        p[k] = better(scores, p[k], p[k + s]);
                    }
                    s /= 2;
                }
                p[0]
            }
            Order::SplitRow { splits } => {
                let len = piece_len(n, splits);
                (0..n.div_ceil(len))
                    .map(|s| best_of(&mut (s * len..((s + 1) * len).min(n))))
                    .fold(None, |b, c| better(scores, b, c))
            }
            Order::SplitK { chunk, seed } | Order::Atomics { chunk, seed } => {
                let chunk = chunk.max(1);
                permutation(n.div_ceil(chunk), seed)
                    .into_iter()
                    .map(|c| best_of(&mut (c * chunk..((c + 1) * chunk).min(n))))
                    .fold(None, |b, c| better(scores, b, c))
            }
        }
    }

    /// The a-priori bound on `|sum - exact|` (Higham, "Accuracy and Stability of Numerical
    /// Algorithms", 4.2): `gamma_h * sum |w_i|` with `h` the most additions any term goes
    /// through and `gamma_h = h u / (1 - h u)`, `u = 2^-24`.
    pub fn error_bound(&self, w: &[f32]) -> f64 {
        let n = w.len();
        let h = match *self {
            Order::Sequential => n,
            Order::Block { threads } => n.div_ceil(threads.max(1)) + log2_ceil(threads),
            Order::SplitRow { splits } => {
                let len = piece_len(n, splits);
                len + n.div_ceil(len)
            }
            Order::SplitK { chunk, .. } | Order::Atomics { chunk, .. } => {
                chunk + n.div_ceil(chunk.max(1))
            }
        } as f64;
        let u = f64::powi(2.0, -24);
        let gamma = h * u / (1.0 - h * u);
        gamma * w.iter().map(|&x| (x as f64).abs()).sum::<f64>()
    }
}

fn log2_ceil(n: usize) -> usize {
    n.max(1).next_power_of_two().trailing_zeros() as usize
}

/// Left-to-right f32 sum.
fn seq(w: &[f32]) -> f32 {
    w.iter().fold(0.0f32, |acc, &x| acc + x)
}

/// `out[j] = start + w_0 + ... + w_j`, left to right in f32.
fn running(w: &[f32], start: f32, out: &mut [f32]) {
    let mut acc = start;
    for (o, &x) in out.iter_mut().zip(w) {
        acc += x;
        *o = acc;
    }
}

/// A shared-memory tree: `p[k] += p[k + s]` for `s = len/2, len/4, ..., 1`.
fn tree(p: &mut [f32]) {
    let mut s = p.len() / 2;
    while s > 0 {
        for k in 0..s {
            p[k] += p[k + s];
        }
        s /= 2;
    }
}

/// The length of each of `splits` contiguous pieces covering `n` items.
fn piece_len(n: usize, splits: usize) -> usize {
    n.div_ceil(splits.max(1)).max(1)
}

/// Left-to-right sums of consecutive pieces of `len`.
fn pieces(w: &[f32], len: usize) -> Vec<f32> {
    w.chunks(len.max(1)).map(seq).collect()
}

/// A Fisher-Yates permutation of `0..n` driven by SplitMix64 from `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = splitmix64(state);
        let j = (state % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// The better of two candidates: the larger score, ties to the lower index.
fn better(scores: &[f64], a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (None, x) | (x, None) => x.filter(|&i| scores[i] > f64::NEG_INFINITY),
        (Some(i), Some(j)) => {
            let (si, sj) = (scores[i], scores[j]);
            Some(if sj > si || (sj == si && j < i) { j } else { i })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_orders_agree_on_exact_sums_and_argmax() {
        let w: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        let exact: f32 = (0..1000).map(|i| (i % 7) as f32).sum();
        let scores: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64).collect();
        for o in [
            Order::Sequential,
            Order::Block { threads: 128 },
            Order::SplitRow { splits: 8 },
            Order::SplitK { chunk: 64, seed: 3 },
            Order::Atomics { chunk: 64, seed: 9 },
        ] {
            assert_eq!(o.sum(&w), exact, "{}", o.name());
            assert_eq!(*o.prefix(&w).last().unwrap(), exact, "{}", o.name());
            assert_eq!(o.argmax(&scores), Order::Sequential.argmax(&scores));
        }
    }
}
