//! The batch-invariant projection of `kernels/projection.cu` (experiment 2) without a GPU: the
//! kernel's own source run through the host SIMT shim equals its CPU twin bit for bit (f32, f16,
//! bf16; ragged d and vocab; 16-byte and element loads; every thread schedule), a row's logits do
//! not change with the batch size or its position in the batch, and the twin stays within its
//! stated error bound of the f64 reference.

use batchsample::Dtype;
use batchsample_cli::drift::projection::{
    chunk_len, error_bound, exact_dot, invariant_dot, invariant_project,
};
use batchsample_cli::io::splitmix64;
use half::bf16;

/// A uniform in [0, 1) from a counter.
fn unit(seed: u64, i: usize) -> f64 {
    (splitmix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 11) as f64
        / (1u64 << 53) as f64
}

/// Values of both signs over several decades, so that the summation order shows in the bits.
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let m = unit(seed, 2 * i) * 2.0 - 1.0;
            let e = (unit(seed, 2 * i + 1) * 12.0).floor() as i32 - 6;
            (m * 2f64.powi(e)) as f32
        })
        .collect()
}

// The crate's dev-dependency on batchsample turns on `host-simt`, so the shim is always here.
mod shim {
    use super::*;
    use batchsample::host_simt::{HostSimtError, Launch, Schedule};
    use batchsample::Logit;
    use batchsample_cli::drift::projection::{projection_grid, PROJECTION_THREADS};
    use half::f16;

    /// The shim's projection under `schedule`, on the experiment's launch geometry.
    fn project<T: Logit>(
        hidden: &[T],
        weights: &[T],
        batch: usize,
        vocab: usize,
        d: usize,
        schedule: Schedule,
    ) -> Result<Vec<f32>, HostSimtError> {
        let grid = projection_grid(batch, vocab).expect("vocab fits the grid");
        let cfg = Launch::new(grid, PROJECTION_THREADS).schedule(schedule);
        batchsample::host_simt::projection::project(hidden, weights, batch, vocab, d, &cfg)
    }

    fn convert<T: Logit>(v: &[f32]) -> Vec<T> {
        v.iter()
            .map(|&x| match T::DTYPE {
                Dtype::F32 => bytemuck::cast(x),
                Dtype::F16 => bytemuck::cast(f16::from_f32(x)),
                Dtype::Bf16 => bytemuck::cast(bf16::from_f32(x)),
            })
            .collect()
    }

    /// `data` copied into a buffer at an offset that makes it 16-byte aligned (`misaligned` false)
    /// or not (true): returns the buffer and the offset of the copy.
    fn placed<T: Logit>(data: &[T], misaligned: bool) -> (Vec<T>, usize) {
        let per = 16 / std::mem::size_of::<T>();
        let mut buf = vec![
            data.first()
                .copied()
                .unwrap_or_else(bytemuck::Zeroable::zeroed);
            data.len() + 2 * per
        ];
        let base = buf.as_ptr() as usize;
        let mut off = (0..per)
            .find(|&o| (base + o * std::mem::size_of::<T>()) % 16 == 0)
            .expect("an aligned offset");
        if misaligned {
            off += 1;
        }
        buf[off..off + data.len()].copy_from_slice(data);
        (buf, off)
    }

    fn shim_matches_twin<T: Logit>(batch: usize, vocab: usize, d: usize, seed: u64) -> usize {
        let h: Vec<T> = convert(&values(batch * d, seed));
        let w: Vec<T> = convert(&values(vocab * d, seed ^ 0xabc));
        let twin = invariant_project(&h, &w, batch, vocab, d).unwrap();
        for misaligned in [false, true] {
            let (hb, ho) = placed(&h, misaligned);
            let (wb, wo) = placed(&w, misaligned);
            let got = project(
                &hb[ho..ho + h.len()],
                &wb[wo..wo + w.len()],
                batch,
                vocab,
                d,
                Schedule::Forward,
            )
            .unwrap_or_else(|e| panic!("{:?} {batch}x{vocab}x{d}: {e}", T::DTYPE));
            for (i, (a, b)) in twin.iter().zip(&got).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{:?} batch {batch} vocab {vocab} d {d} misaligned {misaligned}: logit \
                     [{}, {}] twin {a} shim {b}",
                    T::DTYPE,
                    i / vocab,
                    i % vocab
                );
            }
        }
        // How many logits a plain sequential f32 sum would get wrong: the equality above only
        // means something if the order shows in the bits.
        let hf: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
        let wf: Vec<f32> = w.iter().map(|x| x.to_f32()).collect();
        let mut differ = 0;
        for b in 0..batch {
            for v in 0..vocab {
                let seq = hf[b * d..(b + 1) * d]
                    .iter()
                    .zip(&wf[v * d..(v + 1) * d])
                    .fold(0f32, |acc, (&x, &y)| x.mul_add(y, acc));
                differ += usize::from(seq.to_bits() != twin[b * vocab + v].to_bits());
            }
        }
        differ
    }

    #[test]
    fn shim_projection_equals_the_twin_bit_for_bit() {
        let shapes = [
            (1, 1, 1),
            (1, 2, 3),
            (3, 17, 7),
            (8, 16, 32),
            (9, 33, 40),
            (2, 50, 1029),
            (13, 20, 256),
            (17, 35, 300),
            (2, 19, 4096),
        ];
        let mut differ = 0;
        for (i, &(batch, vocab, d)) in shapes.iter().enumerate() {
            let seed = 0x9e0 + i as u64;
            differ += shim_matches_twin::<f32>(batch, vocab, d, seed);
            differ += shim_matches_twin::<bf16>(batch, vocab, d, seed);
            differ += shim_matches_twin::<f16>(batch, vocab, d, seed);
        }
        assert!(
            differ > 100,
            "only {differ} logits depend on the order: a vacuous check"
        );
    }

    #[test]
    fn shim_projection_agrees_under_every_schedule() {
        let (batch, vocab, d) = (11, 37, 203);
        let h: Vec<bf16> = convert(&values(batch * d, 1));
        let w: Vec<bf16> = convert(&values(vocab * d, 2));
        let runs: Vec<Vec<u32>> = Schedule::all(0x5c4e)
            .iter()
            .map(|&s| {
                project(&h, &w, batch, vocab, d, s)
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            })
            .collect();
        assert!(runs.iter().all(|r| *r == runs[0]));
    }

    /// Row `r` of the pool placed at the first, middle and last position of batches of 1, 2, 7
    /// and 33 rows (the others other pool rows): its logits never change.
    fn batch_invariance<T: Logit>() {
        let (pool, vocab, d) = (40, 45, 264);
        let h: Vec<T> = convert(&values(pool * d, 7));
        let w: Vec<T> = convert(&values(vocab * d, 8));
        for r in [0usize, 5, 39] {
            let alone =
                project(&h[r * d..(r + 1) * d], &w, 1, vocab, d, Schedule::Forward).unwrap();
            for batch in [1usize, 2, 7, 33] {
                for pos in [0, batch / 2, batch - 1] {
                    let rows: Vec<usize> = (0..batch)
                        .map(|q| if q == pos { r } else { (r + 1 + q) % pool })
                        .collect();
                    let hb: Vec<T> = rows
                        .iter()
                        .flat_map(|&q| h[q * d..(q + 1) * d].iter().copied())
                        .collect();
                    let got = project(&hb, &w, batch, vocab, d, Schedule::Reverse).unwrap();
                    let row = &got[pos * vocab..(pos + 1) * vocab];
                    let same = row
                        .iter()
                        .zip(&alone)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{:?}: row {r} at {pos} of {batch} changed", T::DTYPE);
                }
            }
        }
    }

    #[test]
    fn shim_projection_is_batch_invariant() {
        batch_invariance::<f32>();
        batch_invariance::<bf16>();
    }
}

#[test]
fn twin_is_within_its_bound_of_f64() {
    let mut worst = 0f64;
    for (i, &d) in [1usize, 7, 33, 128, 1000, 4096, 5003].iter().enumerate() {
        for dtype in [Dtype::F32, Dtype::Bf16] {
            let chunk = chunk_len(dtype);
            for row in 0..20u64 {
                let seed = (i as u64) << 32 | row;
                let round = |v: Vec<f32>| -> Vec<f32> {
                    match dtype {
                        Dtype::Bf16 => v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
                        _ => v,
                    }
                };
                let h = round(values(d, seed));
                let w = round(values(d, seed ^ 0xfeed));
                let twin = invariant_dot(&h, &w, chunk) as f64;
                let exact = exact_dot(&h, &w);
                let bound = error_bound(&h, &w, chunk);
                assert!(
                    (twin - exact).abs() <= bound,
                    "d {d} {dtype:?}: |{twin} - {exact}| > {bound}"
                );
                let magnitude: f64 = h.iter().zip(&w).map(|(&x, &y)| (x * y).abs() as f64).sum();
                if magnitude > 0.0 {
                    worst = worst.max((twin - exact).abs() / magnitude);
                }
            }
        }
    }
    // The bound at d = 5003 is gamma_45 ~ 2.7e-6 of sum |h w|; the errors seen are far below it.
    assert!(worst < 3e-6, "{worst}");
}

#[test]
fn twin_shapes_are_checked() {
    let h = vec![1f32; 6];
    assert!(invariant_project(&h, &h, 2, 2, 3).is_ok());
    assert!(invariant_project(&h, &h, 3, 2, 3).is_err());
}
