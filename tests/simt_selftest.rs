//! Self-test of the host SIMT shim (kernels/host/): toy kernels from tests/simt/selftest.cu run
//! on the CPU through the `host-simt` feature.
#![cfg(feature = "host-simt")]

use batchsample::host_simt::{selftest as st, ErrorKind, HostSimtError, Launch, Schedule};
use half::{bf16, f16};
use std::time::Instant;

const SEED: u64 = 0x5eed_1234;

/// Small deterministic generator for test data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// Integer-valued rows: every summation order gives the exact same f32.
fn rows_data(rows: usize, n: usize) -> Vec<f32> {
    (0..rows * n)
        .map(|i| ((i * 7919) % 17) as f32 - 8.0)
        .collect()
}

fn row_sums(data: &[f32], rows: usize, n: usize) -> Vec<f32> {
    (0..rows)
        .map(|r| {
            data[r * n..(r + 1) * n]
                .iter()
                .map(|&x| x as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

#[test]
fn block_reductions_every_size_and_schedule() {
    let (rows, n) = (4, 3001);
    let data = rows_data(rows, n);
    let want = row_sums(&data, rows, n);
    for block in [32u32, 33, 64, 96, 128, 256, 500, 1024] {
        for sched in Schedule::all(SEED + block as u64) {
            let cfg = Launch::new((rows as u32, 1), block).schedule(sched);
            let mut out = vec![f32::NAN; rows];
            st::block_sum_smem(&cfg, &data, n, &mut out).unwrap();
            assert_eq!(
                out, want,
                "shared-memory reduction, block {block}, {sched:?}"
            );
            let mut out = vec![f32::NAN; rows];
            st::block_sum_warp(&cfg, &data, n, &mut out).unwrap();
            assert_eq!(
                out, want,
                "warp-shuffle reduction, block {block}, {sched:?}"
            );
        }
    }
}

#[test]
fn warp_xor_allreduce() {
    let cfg = Launch::new((3, 1), 96);
    let mut rng = Lcg(1);
    let input: Vec<f32> = (0..cfg.threads())
        .map(|_| (rng.next() % 100) as f32)
        .collect();
    for sched in Schedule::all(SEED) {
        let mut out = vec![0.0; cfg.threads()];
        st::warp_allreduce_xor(&cfg.schedule(sched), &input, &mut out).unwrap();
        for (w, chunk) in out.chunks(32).enumerate() {
            let want: f32 = input[w * 32..w * 32 + 32].iter().sum();
            assert!(
                chunk.iter().all(|&v| v == want),
                "warp {w}: {chunk:?} != {want}"
            );
        }
    }
}

#[test]
fn warp_scan_with_partial_warps() {
    for block in [32u32, 33, 50, 96] {
        let cfg = Launch::new((2, 1), block);
        let mut rng = Lcg(block as u64);
        let input: Vec<i32> = (0..cfg.threads())
            .map(|_| (rng.next() % 19) as i32 - 9)
            .collect();
        let mut out = vec![0; cfg.threads()];
        st::warp_scan(&cfg, &input, &mut out).unwrap();
        let mut want = vec![0; cfg.threads()];
        for b in 0..2 {
            for t in 0..block as usize {
                let g = b * block as usize + t;
                want[g] = input[g] + if t % 32 == 0 { 0 } else { want[g - 1] };
            }
        }
        assert_eq!(out, want, "block {block}");
    }
}

#[test]
fn shuffle_value_types() {
    let cfg = Launch::new((1, 1), 64);
    let o = st::shfl_types(&cfg).unwrap();
    for g in 0..64 {
        let src = ((g % 32 + 1) % 32) as i64;
        assert_eq!(o.i[g] as i64, -(src * 1000 + 7));
        assert_eq!(o.u[g], 0x8000_0000 + src as u32);
        assert_eq!(o.f[g], src as f32 + 0.5);
        assert_eq!(o.ll[g], -(1i64 << 40) - src);
        assert_eq!(o.ull[g], (1u64 << 63) + src as u64);
        assert_eq!(o.d[g], 1e20 + src as f64 + 0.25);
    }
}

#[test]
fn shuffle_widths_and_ranges() {
    let out = st::shfl_width(&Launch::new((1, 1), 64)).unwrap();
    for g in 0..64 {
        let l = (g % 32) as i32;
        let want = [
            l & !7,
            l ^ 1,
            if l % 8 == 0 { l } else { l - 1 },
            if l % 8 == 7 { l } else { l + 1 },
            3,
            if l + 3 <= 31 { l + 3 } else { l },
        ];
        assert_eq!(&out[g * 6..g * 6 + 6], &want, "lane {l}");
    }
}

#[test]
fn votes_ballot_popc_match_reduce() {
    // 48 threads: warp 1 has 16 lanes. Block 0 mixed, block 1 all set in warp 0.
    let cfg = Launch::new((2, 1), 48);
    let mut rng = Lcg(7);
    let pred: Vec<i32> = (0..96)
        .map(|g| {
            if (48..80).contains(&g) {
                1
            } else {
                (rng.next() % 2) as i32
            }
        })
        .collect();
    for sched in Schedule::all(SEED) {
        let out = st::vote(&cfg.schedule(sched), &pred).unwrap();
        for b in 0..2 {
            for w in 0..2 {
                let lanes = if w == 0 { 32 } else { 16 };
                let exist: u32 = if lanes == 32 { !0 } else { (1 << lanes) - 1 };
                let base = b * 48 + w * 32;
                let ballot = (0..lanes).fold(0u32, |m, l| m | ((pred[base + l] as u32) << l));
                for l in 0..lanes {
                    let g = base + l;
                    let same = (0..lanes)
                        .fold(0u32, |m, k| m | (((pred[base + k] == pred[g]) as u32) << k));
                    let want = [
                        ballot,
                        (ballot != 0) as u32,
                        (ballot == exist) as u32,
                        ballot.count_ones(),
                        exist,
                        same,
                        ballot.count_ones(),
                    ];
                    assert_eq!(&out[g * 7..g * 7 + 7], &want, "block {b} warp {w} lane {l}");
                }
            }
        }
    }
}

#[test]
fn syncthreads_count_and_or() {
    let cfg = Launch::new((3, 1), 100);
    let pred: Vec<i32> = (0..300)
        .map(|g| match g / 100 {
            0 => 1,
            1 => 0,
            _ => (g % 3 == 0) as i32,
        })
        .collect();
    let out = st::block_votes(&cfg, &pred).unwrap();
    assert_eq!(out, vec![100, 1, 1, 0, 0, 0, 33, 0, 1]);
}

#[test]
fn shared_memory_histogram_matches_serial_count() {
    let mut rng = Lcg(3);
    let data: Vec<u32> = (0..10_007).map(|_| rng.next()).collect();
    let nbins = 200;
    let mut want = vec![0u32; nbins];
    for &d in &data {
        want[d as usize % nbins] += 1;
    }
    for sched in Schedule::all(SEED) {
        let hist = st::histogram(&Launch::new((3, 1), 128).schedule(sched), &data, nbins).unwrap();
        assert_eq!(hist, want, "{sched:?}");
    }
}

#[test]
fn global_atomics_match_serial() {
    let mut rng = Lcg(11);
    let vals: Vec<i32> = (0..1000)
        .map(|_| (rng.next() % 2001) as i32 - 1000)
        .collect();
    let mut iout = [i32::MIN, i32::MAX, 0, 0];
    let mut uout = [0, u32::MAX, 0, u32::MAX, 0];
    let mut ullout = [0u64; 3];
    let mut fsum = 0.0f32;
    st::atomics(
        &Launch::new((4, 1), 256).schedule(Schedule::Random(SEED)),
        &vals,
        &mut iout,
        &mut uout,
        &mut ullout,
        &mut fsum,
    )
    .unwrap();
    let us: Vec<u32> = vals
        .iter()
        .map(|&v| (v as u32).wrapping_mul(2654435761))
        .collect();
    let sum: i32 = vals.iter().sum();
    assert_eq!(
        iout,
        [
            *vals.iter().max().unwrap(),
            *vals.iter().min().unwrap(),
            sum,
            -sum
        ]
    );
    assert_eq!(uout[0], *us.iter().max().unwrap());
    assert_eq!(uout[1], *us.iter().min().unwrap());
    assert_eq!(uout[2], vals.iter().fold(0, |m, &v| m | (1u32 << (v & 31))));
    assert_eq!(
        uout[3],
        vals.iter().fold(!0, |m, &v| m & !(1u32 << (v & 31)))
    );
    assert_eq!(uout[4], 7);
    assert_eq!(
        ullout[0],
        vals.iter()
            .map(|&v| (v as i64 * v as i64) as u64)
            .sum::<u64>()
    );
    assert_eq!(
        ullout[1],
        us.iter().map(|&u| (u as u64) << 20).max().unwrap()
    );
    assert_eq!(ullout[2], vals.len() as u64);
    assert_eq!(fsum, sum as f32);
}

#[test]
fn dynamic_shared_memory() {
    let cfg = Launch::new((2, 1), 128).dynamic_smem(128 * 4);
    let input: Vec<f32> = (0..256).map(|i| i as f32).collect();
    for sched in Schedule::all(SEED) {
        let mut out = vec![0.0; 256];
        st::dynamic_smem(&cfg.schedule(sched), &input, &mut out).unwrap();
        for (g, o) in out.iter().enumerate() {
            let (b, t) = (g / 128, g % 128);
            assert_eq!(*o, input[b * 128 + 127 - t]);
        }
    }
    let views = st::dynamic_views(&Launch::new((1, 1), 32).dynamic_smem(64)).unwrap();
    assert_eq!(&views[..4], &[1.0, 2.0, 3.0, 4.0]);
    assert!(
        views[4..].iter().all(|v| v.to_bits() == 0xffff_ffff),
        "{views:?}"
    );
}

#[test]
fn uninitialised_shared_memory_reads_poison_in_every_block() {
    let cfg = Launch::new((3, 1), 64).dynamic_smem(64 * 4);
    for sched in Schedule::all(SEED) {
        let out = st::poison(&cfg.schedule(sched)).unwrap();
        for g in 0..cfg.threads() {
            let b = (g / 64) as u32;
            let want = [0xffff_ffff, 0xffff_ffff, 0xffff_ffff, b + 64 * 1000, 1];
            assert_eq!(&out[g * 5..g * 5 + 5], &want, "thread {g} {sched:?}");
        }
    }
}

#[test]
fn missing_syncthreads_is_exposed_by_some_schedule() {
    let cfg = Launch::new((1, 1), 256);
    let input: Vec<i32> = (0..256).map(|i| i * 10 + 1).collect();
    let want: Vec<i32> = (0..256).map(|t| input[(t + 1) % 256]).collect();
    let mut exposed = Vec::new();
    for sched in Schedule::all(SEED) {
        let mut out = vec![0; 256];
        st::not_racy(&cfg.schedule(sched), &input, &mut out).unwrap();
        assert_eq!(out, want, "with the barrier, {sched:?}");
        st::racy(&cfg.schedule(sched), &input, &mut out).unwrap();
        let wrong = out.iter().zip(&want).filter(|(a, b)| a != b).count();
        let poisoned = out.iter().filter(|&&v| v == -1).count();
        eprintln!("racy kernel, {sched:?}: {wrong} of 256 wrong ({poisoned} read poison)");
        if wrong > 0 {
            exposed.push(sched);
        }
    }
    assert!(
        !exposed.is_empty(),
        "no schedule exposed the missing __syncthreads"
    );
    assert!(exposed.contains(&Schedule::Forward));
}

#[test]
fn two_dimensional_grid() {
    let cfg = Launch::new((3, 2), 40);
    for sched in Schedule::all(SEED) {
        let out = st::grid2d(&cfg.schedule(sched)).unwrap();
        for by in 0..2u32 {
            for bx in 0..3u32 {
                for t in 0..40u32 {
                    let g = ((by * 3 + bx) * 40 + t) as usize;
                    let want = [bx | (by << 16), t | (40 << 16), 3 | (2 << 16)];
                    assert_eq!(&out[g * 3..g * 3 + 3], &want);
                }
            }
        }
    }
}

#[test]
fn half_and_bfloat16_conversions() {
    let mut rng = Lcg(5);
    let mut bits: Vec<u16> = vec![
        0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x3555, 0x7bff, 0xfbff, 0x7c00, 0xfc00,
        0x7e00, 0x5a3f,
    ];
    bits.extend((0..500).map(|_| rng.next() as u16));
    let h: Vec<f16> = bits.iter().map(|&b| f16::from_bits(b)).collect();
    let b: Vec<bf16> = bits.iter().map(|&b| bf16::from_bits(b)).collect();
    let n = bits.len();
    let (mut hf, mut bf) = (vec![0.0; n], vec![0.0; n]);
    let (mut h2, mut b2) = (vec![f16::ZERO; n], vec![bf16::ZERO; n]);
    let cfg = Launch::new(((n as u32).div_ceil(128), 1), 128);
    st::convert(&cfg, &h, &b, &mut hf, &mut bf, &mut h2, &mut b2).unwrap();
    for i in 0..n {
        let (wh, wb) = (h[i].to_f32(), b[i].to_f32());
        assert!(
            hf[i] == wh || (hf[i].is_nan() && wh.is_nan()),
            "{:#06x}",
            bits[i]
        );
        assert!(
            bf[i] == wb || (bf[i].is_nan() && wb.is_nan()),
            "{:#06x}",
            bits[i]
        );
        let (wh2, wb2) = (f16::from_f32(wh * 3.0), bf16::from_f32(wb * 3.0));
        assert!(
            h2[i] == wh2 || (h2[i].is_nan() && wh2.is_nan()),
            "{:#06x}",
            bits[i]
        );
        assert!(
            b2[i] == wb2 || (b2[i].is_nan() && wb2.is_nan()),
            "{:#06x}",
            bits[i]
        );
    }
}

#[test]
fn float4_loads_and_vector_types() {
    let mut buf = vec![0.0f32; 404];
    let off = (16 - buf.as_ptr() as usize % 16) % 16 / 4;
    let input = &mut buf[off..off + 400];
    for (i, x) in input.iter_mut().enumerate() {
        *x = i as f32;
    }
    let (mut out, mut vec) = (vec![0.0; 100], vec![0u32; 400]);
    st::float4(&Launch::new((2, 1), 64), input, &mut out, &mut vec).unwrap();
    for i in 0..100usize {
        assert_eq!(out[i], (16 * i + 6) as f32);
        let iu = i as u32;
        let want = [
            4 * iu + 6,
            (6 - i as i32) as u32,
            iu * 7 + 6 + (i as u16) as u32,
            (((i as i16) as i32 - 6) as u32).wrapping_add(2),
        ];
        assert_eq!(&vec[i * 4..i * 4 + 4], &want, "i = {i}");
    }
}

#[test]
fn math_and_bit_intrinsics() {
    let x = [0.5f32, 2.0, 0.25, 0.125, 2.0, 3.0, 4.0, 1.5, -2.5, 16.0];
    let (of, oi, ou) = st::math(&x).unwrap();
    let close = |a: f32, b: f32| (a - b).abs() <= 2.0 * f32::EPSILON * b.abs();
    assert!(close(of[0], 0.5f32.exp()));
    assert!(close(of[1], 2.0f32.ln()));
    assert!(close(of[2], 0.25f32.ln_1p()));
    assert!(close(of[3], 0.125f32.exp_m1()));
    assert_eq!(
        &of[4..],
        &[
            10.0,
            1.5,
            1.5,
            2.5,
            4.0,
            -2.5,
            1.5,
            16.0 / 3.0,
            2.0,
            f32::INFINITY,
            1.0,
            1.0
        ]
    );
    assert_eq!(
        oi,
        [
            -1,
            2,
            2,
            8,
            40,
            31,
            32,
            63,
            5,
            0,
            1,
            1,
            0,
            0x3f80_0000,
            2,
            0
        ]
    );
    assert_eq!(ou, [0x8000_0000, 1, 5, 0x4433_2211, 3, 3, 3, 7]);
}

#[test]
fn template_kernels_with_dependent_shared_size() {
    let cfg = Launch::new((2, 1), 64);
    let input: Vec<f32> = (0..128).map(|i| i as f32).collect();
    for scale in [2u32, 3] {
        let mut out = vec![0.0; 128];
        st::scale(&cfg, scale, &input, &mut out).unwrap();
        for (g, o) in out.iter().enumerate() {
            assert_eq!(*o, input[g ^ 1] * scale as f32, "scale {scale} thread {g}");
        }
    }
}

#[test]
fn spin_wait_with_nanosleep_progresses() {
    for sched in Schedule::all(SEED) {
        assert_eq!(
            st::spin(&Launch::new((1, 1), 64).schedule(sched)).unwrap(),
            1
        );
    }
}

fn expect_error(block: u32, mode: i32, kind: ErrorKind, needles: &[&str]) -> HostSimtError {
    let err = st::faulty(&Launch::new((1, 1), block), mode).expect_err("launch must fail");
    eprintln!("mode {mode}: {err}");
    assert_eq!(err.kind, kind, "mode {mode}: {err}");
    for needle in needles {
        assert!(
            err.message.contains(needle),
            "mode {mode}: `{needle}` not in: {err}"
        );
    }
    // The shim is usable again right after.
    let data = rows_data(1, 100);
    let mut out = [0.0];
    st::block_sum_smem(&Launch::new((1, 1), 64), &data, 100, &mut out).unwrap();
    assert_eq!(out[0], row_sums(&data, 1, 100)[0]);
    err
}

#[test]
fn skipped_barrier_is_an_error_not_a_hang() {
    expect_error(
        64,
        0,
        ErrorKind::Deadlock,
        &["exited", "__syncthreads", "selftest.cu:"],
    );
    expect_error(
        64,
        1,
        ErrorKind::Deadlock,
        &["different barriers", "selftest.cu:"],
    );
}

#[test]
fn broken_warp_primitives_are_errors() {
    expect_error(
        32,
        2,
        ErrorKind::Deadlock,
        &["__shfl_xor_sync", "exited", "16-31"],
    );
    expect_error(
        64,
        3,
        ErrorKind::Deadlock,
        &["no thread can make progress", "__syncthreads"],
    );
    expect_error(
        33,
        4,
        ErrorKind::WarpMisuse,
        &["do not exist", "lanes 1-31"],
    );
    expect_error(
        32,
        9,
        ErrorKind::WarpMisuse,
        &["does not include its own lane"],
    );
}

#[test]
fn trap_and_assert_are_errors() {
    expect_error(32, 5, ErrorKind::Trap, &["__trap()", "thread 5 "]);
    expect_error(
        32,
        6,
        ErrorKind::Trap,
        &["assertion", "threadIdx.x != 7", "thread 7 "],
    );
}

#[test]
fn stack_overflow_and_bad_address_are_errors() {
    expect_error(
        32,
        7,
        ErrorKind::MemoryFault,
        &["stack overflow", "thread 0 "],
    );
    expect_error(
        32,
        8,
        ErrorKind::MemoryFault,
        &["invalid memory access", "thread 3 "],
    );
}

#[test]
fn endless_spin_is_reported_as_livelock() {
    expect_error(
        32,
        10,
        ErrorKind::Deadlock,
        &["livelock", "thread 0: runnable"],
    );
}

#[test]
fn invalid_launches_are_rejected() {
    let data = rows_data(1, 10);
    let mut out = [0.0];
    for cfg in [
        Launch::new((1, 1), 0),
        Launch::new((1, 1), 1025),
        Launch::new((0, 1), 32),
        Launch::new((1, 1), 32).dynamic_smem(300_000),
    ] {
        let err = st::block_sum_smem(&cfg, &data, 10, &mut out).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidLaunch, "{err}");
    }
}

#[test]
fn launches_from_several_threads_are_serialised() {
    let (rows, n) = (2, 1000);
    let data = rows_data(rows, n);
    let want = row_sums(&data, rows, n);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (data, want) = (&data, &want);
            s.spawn(move || {
                for k in 0..5 {
                    let cfg =
                        Launch::new((rows as u32, 1), 128).schedule(Schedule::Random(t * 10 + k));
                    let mut out = vec![0.0; rows];
                    st::block_sum_warp(&cfg, data, n, &mut out).unwrap();
                    assert_eq!(&out, want);
                }
            });
        }
    });
}

/// One launch over 4 rows x 32768 floats, the shared-memory and the shuffle reduction, at 256 and
/// 1024 threads per block (run with `--nocapture` to see the numbers).
#[test]
fn timing_block_reduce_4x32768() {
    let (rows, n) = (4, 32768);
    let data = rows_data(rows, n);
    let want = row_sums(&data, rows, n);
    for block in [256u32, 1024] {
        for (name, f) in [
            (
                "smem",
                st::block_sum_smem as fn(&Launch, &[f32], usize, &mut [f32]) -> _,
            ),
            ("shfl", st::block_sum_warp),
        ] {
            let cfg = Launch::new((rows as u32, 1), block);
            let mut out = vec![0.0; rows];
            let mut times = Vec::new();
            for _ in 0..7 {
                let t0 = Instant::now();
                f(&cfg, &data, n, &mut out).unwrap();
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                assert_eq!(out, want);
            }
            times.sort_by(f64::total_cmp);
            eprintln!(
                "host-simt timing: {name} reduction, 4 x 32768 floats, block {block}: \
                 median {:.2} ms, min {:.2} ms",
                times[3], times[0]
            );
        }
    }
}
