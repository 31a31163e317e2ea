//! The batch-invariant projection of `kernels/projection.cu` (experiment 2), on the CPU:
//! [`invariant_dot`] replays the kernel's summation order bit for bit, [`exact_dot`] is the f64
//! reference, and [`error_bound`] bounds the distance between them.
//!
//! The order (the kernel's header says the same): the row is cut into chunks of
//! [`chunk_len`]`(dtype)` elements; chunk `c` belongs to lane `c % 32`; each lane's partial starts
//! at `+0.0` and takes `fma(hidden[k], weights[k], partial)` for its elements in increasing `k`;
//! the 32 partials are combined by the xor butterfly `p[l] = p[l] + p[l ^ o]`, `o = 16, 8, 4, 2,
//! 1`. Nothing in it depends on the batch size, the row's position or the launch grid.

use batchsample::dtype::{Dtype, Logit};
use batchsample::error::{Result, SampleError};
use batchsample::gpu::raw::constants as k;

/// Lanes of a warp: the partial sums of one logit.
pub const LANES: usize = 32;
/// Threads per block of `project_invariant_*` (`PROJ_WARPS` warps; the values are
/// `kernels/projection.cu`'s, through the core's generated constants).
pub const PROJECTION_THREADS: u32 = k::PROJ_WARPS * LANES as u32;
/// Vocab rows per block (`PROJ_WARPS * PROJ_VOCAB_PER_WARP`).
pub const PROJECTION_VOCAB_PER_BLOCK: usize = (k::PROJ_WARPS * k::PROJ_VOCAB_PER_WARP) as usize;
/// Batch rows per block (`PROJ_BATCH_TILE`).
pub const PROJECTION_BATCH_TILE: usize = k::PROJ_BATCH_TILE as usize;

/// Elements per chunk: one 16-byte load (4 f32, 8 f16 or bf16).
pub fn chunk_len(dtype: Dtype) -> usize {
    16 / dtype.size_bytes()
}

/// The launch grid `(batch tiles, vocab groups)` of `project_invariant_*`, or `None` when it
/// does not fit (grid y is at most 65535, so vocab at most 1,048,560).
pub fn projection_grid(batch: usize, vocab: usize) -> Option<(u32, u32)> {
    let x = u32::try_from(batch.div_ceil(PROJECTION_BATCH_TILE)).ok()?;
    let y = vocab.div_ceil(PROJECTION_VOCAB_PER_BLOCK);
    (y <= 65535).then_some((x, y as u32))
}

/// One logit as `project_invariant_*` computes it from widened rows `h` and `w` (same length),
/// with chunks of `chunk` elements.
pub fn invariant_dot(h: &[f32], w: &[f32], chunk: usize) -> f32 {
    debug_assert_eq!(h.len(), w.len());
    let mut partial = [0f32; LANES];
    // Chunks in index order visit each lane's chunks in increasing k; lanes are independent.
    for (c, (hc, wc)) in h.chunks(chunk).zip(w.chunks(chunk)).enumerate() {
        let p = &mut partial[c % LANES];
        for (&x, &y) in hc.iter().zip(wc) {
            *p = x.mul_add(y, *p);
        }
    }
    butterfly(partial)
}

/// The xor butterfly over the 32 lane partials; every lane ends with the same bits, lane 0's
/// are returned.
fn butterfly(mut p: [f32; LANES]) -> f32 {
    for o in [16, 8, 4, 2, 1] {
        let prev = p;
        for (l, x) in p.iter_mut().enumerate() {
            *x = prev[l] + prev[l ^ o];
        }
    }
    p[0]
}

/// `[batch, vocab]` logits of `hidden` (`[batch, d]`) times `weights` (`[vocab, d]`)
/// transposed, in the kernel's order; a [`SampleError::Shape`] when the lengths do not match.
pub fn invariant_project<T: Logit>(
    hidden: &[T],
    weights: &[T],
    batch: usize,
    vocab: usize,
    d: usize,
) -> Result<Vec<f32>> {
    check_shape(hidden.len(), batch, d, "hidden")?;
    check_shape(weights.len(), vocab, d, "weights")?;
    let widen = |x: &[T]| -> Vec<f32> { x.iter().map(|v| v.to_f32()).collect() };
    let (h, w) = (widen(hidden), widen(weights));
    let chunk = chunk_len(T::DTYPE);
    let row = |m: &[f32], i: usize| m[i * d..(i + 1) * d].to_vec();
    Ok((0..batch)
        .flat_map(|b| {
            let hr = row(&h, b);
            (0..vocab)
                .map(|v| invariant_dot(&hr, &w[v * d..(v + 1) * d], chunk))
                .collect::<Vec<f32>>()
        })
        .collect())
}

/// `len == rows * d`, else a shape error naming the matrix.
pub fn check_shape(len: usize, rows: usize, d: usize, what: &str) -> Result<()> {
    if rows.checked_mul(d) == Some(len) {
        Ok(())
    } else {
        Err(SampleError::Shape(format!(
            "{what} holds {len} elements, not {rows} rows of {d}"
        )))
    }
}

/// The dot product of two widened rows in f64: each product is exact (24 + 24 significant bits),
/// the sum is compensated (Neumaier), so the result is within a few f64 ulps of exact.
pub fn exact_dot(h: &[f32], w: &[f32]) -> f64 {
    let (mut s, mut c) = (0f64, 0f64);
    for (&x, &y) in h.iter().zip(w) {
        let p = x as f64 * y as f64;
        let t = s + p;
        c += if s.abs() >= p.abs() {
            (s - t) + p
        } else {
            (p - t) + s
        };
        s = t;
    }
    s + c
}

/// An a-priori bound on `|invariant_dot - exact|` (Higham, "Accuracy and Stability of Numerical
/// Algorithms", 3.1 and 4.2): each product goes through at most `n` roundings — the fma chain of
/// its lane plus the 5 butterfly additions — so the error is at most `gamma_n * sum |h_k w_k|`,
/// `gamma_n = n u / (1 - n u)`, `u = 2^-24`. A little is added for the reference's own rounding.
pub fn error_bound(h: &[f32], w: &[f32], chunk: usize) -> f64 {
    let chunks = h.len().div_ceil(chunk.max(1));
    let per_lane = chunks.div_ceil(LANES) * chunk;
    let n = (per_lane + 5) as f64;
    let u = f64::powi(2.0, -24);
    let gamma = n * u / (1.0 - n * u);
    let magnitude: f64 = h
        .iter()
        .zip(w)
        .map(|(&x, &y)| (x as f64 * y as f64).abs())
        .sum();
    gamma * magnitude * (1.0 + 1e-9) + f64::MIN_POSITIVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_twin_sums_exact_integers_exactly() {
        // Small integers: every order gives the exact sum.
        let h: Vec<f32> = (0..1001).map(|i| (i % 7) as f32 - 3.0).collect();
        let w: Vec<f32> = (0..1001).map(|i| (i % 5) as f32).collect();
        let exact = exact_dot(&h, &w);
        for chunk in [4, 8] {
            assert_eq!(invariant_dot(&h, &w, chunk) as f64, exact);
        }
        assert_eq!(invariant_dot(&[], &[], 4), 0.0);
    }

    #[test]
    fn projection_grid_fits_the_launch_limits() {
        assert_eq!(projection_grid(1, 1), Some((1, 1)));
        assert_eq!(projection_grid(9, 33), Some((2, 3)));
        assert_eq!(projection_grid(256, 128256), Some((32, 8016)));
        assert_eq!(projection_grid(1, 65535 * 16), Some((1, 65535)));
        assert_eq!(projection_grid(1, 65535 * 16 + 1), None);
    }
}
