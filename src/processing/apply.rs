//! Applying a row's processing to its logits, in the order and arithmetic of the module docs.
//! The reference and the invariant twin both sample from this f32 row, so that processing is
//! exact in one place and the kernels match it bit for bit.

use super::sparse::apply_sparse;
use super::{is_allowed, RowLists};
use crate::cpu::scan::{scan_row, RowScan, RowScanner};
use crate::dtype::Logit;
use crate::params::RowStatus;

/// A row's processed logits, written into `out` (cleared first, reused across rows): the raw
/// logits widened to f32, then the bitmask, banned tokens, bias and penalties. The lists must
/// have passed [`super::Processing::validate`] (tokens below `row.len()`).
pub fn process_row<T: Logit>(row: &[T], lists: &RowLists, out: &mut Vec<f32>) {
    // The status matters to samplers only; `out` is written in full either way.
    let _ = process_row_scanned(row, lists, out);
}

/// [`process_row`], returning what [`scan_row`] of the processed row would, computed in the
/// same pass: the dense steps (widening, bitmask) are scanned chunk by chunk as they are
/// written, and the sparse edits (banned, bias, penalties) then correct the scan token by token
/// (a full rescan only when an edit lowers the row's maximum). A raw NaN or `+inf` is
/// [`RowStatus::NonFiniteLogit`] whatever masks it, as are a NaN or `+inf` that the edits make.
pub fn process_row_scanned<T: Logit>(
    row: &[T],
    lists: &RowLists,
    out: &mut Vec<f32>,
) -> Result<RowScan, RowStatus> {
    const CHUNK: usize = RowScanner::CHUNK;
    const WORDS: usize = CHUNK / 32;
    out.clear();
    out.resize(row.len(), 0.0);
    // Without a mask the dense values are the raw ones, and their scan sees any NaN or +inf.
    let mut raw_bad = false;
    let mut dense = RowScanner::new();
    for (c, (dst, src)) in out.chunks_mut(CHUNK).zip(row.chunks(CHUNK)).enumerate() {
        match lists.mask {
            None => dst.iter_mut().zip(src).for_each(|(d, x)| *d = x.to_f32()),
            Some(mask) => raw_bad |= widen_masked(dst, src, &mask[c * WORDS..]),
        }
        dense.chunk(c * CHUNK, dst);
    }
    let raw_bad = raw_bad || dense.bad;
    let dense_value = |t: usize| match lists.mask {
        Some(mask) if !is_allowed(mask, t) => f32::NEG_INFINITY,
        _ => row[t].to_f32(),
    };
    apply_sparse(out, lists, |out, edited| {
        if raw_bad {
            return Err(RowStatus::NonFiniteLogit);
        }
        correct_scan(dense.scan, out, dense_value, edited)
    })
}

/// The scan of `out` from the scan of its dense values (`dense_value`) and the tokens edited
/// since (each once, in any order).
fn correct_scan(
    dense: RowScan,
    out: &[f32],
    dense_value: impl Fn(usize) -> f32,
    edited: &[u32],
) -> Result<RowScan, RowStatus> {
    let mut scan = dense;
    for &t in edited {
        let (old, new) = (dense_value(t as usize), out[t as usize]);
        if new.is_nan() || new == f32::INFINITY {
            return Err(RowStatus::NonFiniteLogit);
        }
        scan.finite =
            scan.finite + (new != f32::NEG_INFINITY) as usize - (old != f32::NEG_INFINITY) as usize;
        if t == dense.argmax && dense.finite > 0 && new < old {
            // Where the maximum is now takes the whole row.
            return scan_row(out);
        }
    }
    if scan.finite == 0 {
        return Err(RowStatus::NoFiniteLogit);
    }
    for &t in edited {
        let x = out[t as usize];
        if x > scan.max || (x == scan.max && t < scan.argmax) {
            scan.max = x;
            scan.argmax = t;
        }
    }
    Ok(scan)
}

/// Lane `j` of entry `b`: all ones where bit `j` of `b` is set (the token is allowed), zero
/// where it is clear. A byte of the mask selects eight tokens' keep-masks at once.
const BYTE_KEEP: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            table[b][j] = ((b as u32 >> j) & 1).wrapping_neg();
            j += 1;
        }
        b += 1;
    }
    table
};

/// Writes `src` widened to f32 into `dst`, `-inf` wherever the mask's bit is clear, and returns
/// whether `src` holds a NaN or `+inf` (masked or not). Eight tokens a mask byte and without a
/// branch: a grammar's mask interleaves allowed and disallowed tokens unpredictably, and the
/// eight-lane body vectorises.
fn widen_masked<T: Logit>(dst: &mut [f32], src: &[T], mask: &[i32]) -> bool {
    let neg_inf = f32::NEG_INFINITY.to_bits();
    let mut bad = [false; 8];
    let mut group = |g: usize, d: &mut [f32], x: &[T]| {
        let byte = (mask[g / 4] as u32 >> (8 * (g % 4))) & 0xff;
        let keep = &BYTE_KEEP[byte as usize];
        for j in 0..d.len().min(8) {
            let x = x[j].to_f32();
            bad[j] |= x.is_nan() | (x == f32::INFINITY);
            d[j] = f32::from_bits((x.to_bits() & keep[j]) | (neg_inf & !keep[j]));
        }
    };
    let mut dst_groups = dst.chunks_exact_mut(8);
    let mut src_groups = src.chunks_exact(8);
    let mut g = 0;
    for (d, x) in (&mut dst_groups).zip(&mut src_groups) {
        group(g, d, x);
        g += 1;
    }
    let tail = dst_groups.into_remainder();
    if !tail.is_empty() {
        group(g, tail, src_groups.remainder());
    }
    bad.contains(&true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processing::{bitmask_words, Penalties, ProcessingBuf, RowProcessing};

    /// A small deterministic stream for the cases below.
    fn hash(x: u64) -> u64 {
        let z = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (z ^ (z >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (z >> 32)
    }

    /// The scan that comes with the processed row is `scan_row` of it, on rows built to break a
    /// shortcut: ties of the maximum, `-inf`, NaN and `+inf` (raw, masked or made by an edit),
    /// edits of the argmax up and down, rows every edit empties, partial last chunks.
    #[test]
    fn the_processed_rows_scan_is_scan_row_of_it() {
        const VALUES: [f32; 7] = [-1.0, 0.0, 0.5, 2.0, 2.0, f32::NEG_INFINITY, 1e38];
        let mut out = Vec::new();
        for case in 0..4000u64 {
            let h = |k: u64| hash(case * 64 + k);
            let vocab = 1 + (h(0) % 150) as usize;
            let mut row: Vec<f32> = (0..vocab)
                .map(|i| VALUES[(h(100 + i as u64) % 7) as usize])
                .collect();
            match h(1) % 16 {
                0 => row[(h(2) % vocab as u64) as usize] = f32::NAN,
                1 => row[(h(2) % vocab as u64) as usize] = f32::INFINITY,
                _ => {}
            }
            let token = |k: u64| (h(k) % vocab as u64) as u32;
            let pick = |base: u64, n: u64| (0..h(base) % n).map(|k| token(base + 1 + k)).collect();
            let mut bias: Vec<(u32, f32)> = (0..h(10) % 4)
                .map(|k| {
                    (
                        token(11 + k),
                        [3.0, -3.0, f32::NEG_INFINITY, 1e38][(h(20 + k) % 4) as usize],
                    )
                })
                .collect();
            bias.sort_by_key(|b| b.0);
            bias.dedup_by_key(|b| b.0);
            let spec = RowProcessing {
                banned_tokens: pick(30, 3),
                logit_bias: bias,
                prompt_tokens: pick(40, 4),
                output_tokens: pick(50, 6),
                penalties: Penalties {
                    repetition: [1.0, 1.5, 0.5][(h(60) % 3) as usize],
                    frequency: [0.0, 0.7, -3e38][(h(61) % 3) as usize],
                    presence: [0.0, 0.3][(h(62) % 2) as usize],
                },
            };
            let mask = (h(63) % 2 == 0).then(|| {
                (0..bitmask_words(vocab))
                    .map(|w| (h(70 + w as u64) | h(80 + w as u64)) as i32)
                    .collect()
            });
            let buf = ProcessingBuf::from_rows(std::slice::from_ref(&spec), mask);
            let lists = buf.view().row(0, vocab);
            let got = process_row_scanned(&row, &lists, &mut out);
            let want = match scan_row(&row) {
                Err(RowStatus::NonFiniteLogit) => Err(RowStatus::NonFiniteLogit),
                _ => scan_row(&out),
            };
            assert_eq!(got, want, "case {case}: row {row:?} {spec:?} -> {out:?}");
        }
    }
}
