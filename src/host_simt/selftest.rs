use super::{int, launch, HostLaunch, HostSimtError, Launch};
use half::{bf16, f16};
use std::ffi::c_int;

type R = Result<(), HostSimtError>;

extern "C" {
    fn host_launch_st_block_sum_smem(
        cfg: *const HostLaunch,
        input: *const f32,
        out: *mut f32,
        n: c_int,
    ) -> c_int;
    fn host_launch_st_block_sum_warp(
        cfg: *const HostLaunch,
        input: *const f32,
        out: *mut f32,
        n: c_int,
    ) -> c_int;
    fn host_launch_st_warp_allreduce_xor(
        cfg: *const HostLaunch,
        input: *const f32,
        out: *mut f32,
    ) -> c_int;
    fn host_launch_st_warp_scan(cfg: *const HostLaunch, input: *const i32, out: *mut i32) -> c_int;
    fn host_launch_st_shfl_types(
        cfg: *const HostLaunch,
        oi: *mut i32,
        ou: *mut u32,
        of: *mut f32,
        oll: *mut i64,
        oull: *mut u64,
        od: *mut f64,
    ) -> c_int;
    fn host_launch_st_shfl_width(cfg: *const HostLaunch, out: *mut i32) -> c_int;
    fn host_launch_st_vote(cfg: *const HostLaunch, pred: *const i32, out: *mut u32) -> c_int;
    fn host_launch_st_block_votes(cfg: *const HostLaunch, pred: *const i32, out: *mut i32)
        -> c_int;
    fn host_launch_st_histogram(
        cfg: *const HostLaunch,
        data: *const u32,
        n: c_int,
        hist: *mut u32,
        nbins: c_int,
    ) -> c_int;
    fn host_launch_st_atomics(
        cfg: *const HostLaunch,
        vals: *const i32,
        n: c_int,
        iout: *mut i32,
        uout: *mut u32,
        ullout: *mut u64,
        fsum: *mut f32,
    ) -> c_int;
    fn host_launch_st_dynamic_smem(
        cfg: *const HostLaunch,
        input: *const f32,
        out: *mut f32,
    ) -> c_int;
    fn host_launch_st_dynamic_views(cfg: *const HostLaunch, out: *mut f32) -> c_int;
    fn host_launch_st_poison(cfg: *const HostLaunch, out: *mut u32) -> c_int;
    fn host_launch_st_racy(cfg: *const HostLaunch, input: *const i32, out: *mut i32) -> c_int;
    fn host_launch_st_not_racy(cfg: *const HostLaunch, input: *const i32, out: *mut i32) -> c_int;
    fn host_launch_st_grid2d(cfg: *const HostLaunch, out: *mut u32) -> c_int;
    fn host_launch_st_convert(
        cfg: *const HostLaunch,
        h: *const f16,
        b: *const bf16,
        hf: *mut f32,
        bf: *mut f32,
        h2: *mut f16,
        b2: *mut bf16,
        n: c_int,
    ) -> c_int;
    fn host_launch_st_float4(
        cfg: *const HostLaunch,
        input: *const f32,
        out: *mut f32,
        vec: *mut u32,
        n4: c_int,
    ) -> c_int;
    fn host_launch_st_math(
        cfg: *const HostLaunch,
        x: *const f32,
        of: *mut f32,
        oi: *mut i32,
        ou: *mut u32,
    ) -> c_int;
    fn host_launch_st_scale_2(cfg: *const HostLaunch, input: *const f32, out: *mut f32) -> c_int;
    fn host_launch_st_scale_3(cfg: *const HostLaunch, input: *const f32, out: *mut f32) -> c_int;
    fn host_launch_st_spin(cfg: *const HostLaunch, out: *mut i32) -> c_int;
    fn host_launch_st_faulty(cfg: *const HostLaunch, mode: c_int, out: *mut i32) -> c_int;
}

fn one_d(cfg: &Launch) -> usize {
    assert_eq!(cfg.grid.1, 1, "this kernel uses a 1-D grid");
    cfg.grid.0 as usize
}

/// Block `b` sums row `b` of `input` (`rows x n`, rows = grid.x) into `out[b]`, through a
/// static `__shared__` tree reduction.
pub fn block_sum_smem(cfg: &Launch, input: &[f32], n: usize, out: &mut [f32]) -> R {
    let rows = one_d(cfg);
    assert!(input.len() >= rows * n && out.len() >= rows);
    launch(cfg, |c| unsafe {
        host_launch_st_block_sum_smem(c, input.as_ptr(), out.as_mut_ptr(), int(n))
    })
}

/// Same result as [`block_sum_smem`], through `__shfl_down_sync`/`__shfl_xor_sync`.
pub fn block_sum_warp(cfg: &Launch, input: &[f32], n: usize, out: &mut [f32]) -> R {
    let rows = one_d(cfg);
    assert!(input.len() >= rows * n && out.len() >= rows);
    launch(cfg, |c| unsafe {
        host_launch_st_block_sum_warp(c, input.as_ptr(), out.as_mut_ptr(), int(n))
    })
}

/// `out[t]` = sum of `input` over t's warp (block size a multiple of 32).
pub fn warp_allreduce_xor(cfg: &Launch, input: &[f32], out: &mut [f32]) -> R {
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    launch(cfg, |c| unsafe {
        host_launch_st_warp_allreduce_xor(c, input.as_ptr(), out.as_mut_ptr())
    })
}

/// Inclusive prefix sum of `input` within each warp (`__shfl_up_sync`).
pub fn warp_scan(cfg: &Launch, input: &[i32], out: &mut [i32]) -> R {
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    launch(cfg, |c| unsafe {
        host_launch_st_warp_scan(c, input.as_ptr(), out.as_mut_ptr())
    })
}

/// Per-thread outputs of `st_shfl_types`, one vector per shuffled type.
#[derive(Debug, Default)]
pub struct ShflTypes {
    pub i: Vec<i32>,
    pub u: Vec<u32>,
    pub f: Vec<f32>,
    pub ll: Vec<i64>,
    pub ull: Vec<u64>,
    pub d: Vec<f64>,
}

/// Each thread gets the value of lane `(lane + 1) % 32`, in six types.
pub fn shfl_types(cfg: &Launch) -> Result<ShflTypes, HostSimtError> {
    let t = cfg.threads();
    let mut o = ShflTypes {
        i: vec![0; t],
        u: vec![0; t],
        f: vec![0.0; t],
        ll: vec![0; t],
        ull: vec![0; t],
        d: vec![0.0; t],
    };
    launch(cfg, |c| unsafe {
        host_launch_st_shfl_types(
            c,
            o.i.as_mut_ptr(),
            o.u.as_mut_ptr(),
            o.f.as_mut_ptr(),
            o.ll.as_mut_ptr(),
            o.ull.as_mut_ptr(),
            o.d.as_mut_ptr(),
        )
    })?;
    Ok(o)
}

/// Six shuffle results per thread (segmented widths, out-of-range sources).
pub fn shfl_width(cfg: &Launch) -> Result<Vec<i32>, HostSimtError> {
    let mut out = vec![0; cfg.threads() * 6];
    launch(cfg, |c| unsafe {
        host_launch_st_shfl_width(c, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// Seven vote results per thread: ballot, any, all, popc, activemask, match_any, reduce_add.
pub fn vote(cfg: &Launch, pred: &[i32]) -> Result<Vec<u32>, HostSimtError> {
    assert!(pred.len() >= cfg.threads());
    let mut out = vec![0; cfg.threads() * 7];
    launch(cfg, |c| unsafe {
        host_launch_st_vote(c, pred.as_ptr(), out.as_mut_ptr())
    })?;
    Ok(out)
}

/// `__syncthreads_count`, `_and`, `_or` of `pred`, three per block.
pub fn block_votes(cfg: &Launch, pred: &[i32]) -> Result<Vec<i32>, HostSimtError> {
    assert!(pred.len() >= cfg.threads());
    let mut out = vec![0; one_d(cfg) * 3];
    launch(cfg, |c| unsafe {
        host_launch_st_block_votes(c, pred.as_ptr(), out.as_mut_ptr())
    })?;
    Ok(out)
}

/// Histogram of `data[i] % nbins` (nbins <= 256) through shared-memory atomics.
pub fn histogram(cfg: &Launch, data: &[u32], nbins: usize) -> Result<Vec<u32>, HostSimtError> {
    assert!((1..=256).contains(&nbins));
    one_d(cfg);
    let mut hist = vec![0; nbins];
    launch(cfg, |c| unsafe {
        host_launch_st_histogram(
            c,
            data.as_ptr(),
            int(data.len()),
            hist.as_mut_ptr(),
            int(nbins),
        )
    })?;
    Ok(hist)
}

/// Global atomics over `vals` into the caller's initial values (see selftest.cu).
pub fn atomics(
    cfg: &Launch,
    vals: &[i32],
    iout: &mut [i32; 4],
    uout: &mut [u32; 5],
    ullout: &mut [u64; 3],
    fsum: &mut f32,
) -> R {
    one_d(cfg);
    launch(cfg, |c| unsafe {
        host_launch_st_atomics(
            c,
            vals.as_ptr(),
            int(vals.len()),
            iout.as_mut_ptr(),
            uout.as_mut_ptr(),
            ullout.as_mut_ptr(),
            fsum,
        )
    })
}

/// Reverses each block's slice of `input` through dynamic shared memory.
pub fn dynamic_smem(cfg: &Launch, input: &[f32], out: &mut [f32]) -> R {
    assert!(cfg.dynamic_smem >= cfg.block as usize * 4);
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    launch(cfg, |c| unsafe {
        host_launch_st_dynamic_smem(c, input.as_ptr(), out.as_mut_ptr())
    })
}

/// Eight floats: 1, 2, 3, 4 (written as a float4) and four poisoned values.
pub fn dynamic_views(cfg: &Launch) -> Result<[f32; 8], HostSimtError> {
    assert!(cfg.dynamic_smem >= 32 && cfg.block >= 8);
    let mut out = [0.0; 8];
    launch(cfg, |c| unsafe {
        host_launch_st_dynamic_views(c, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// Five words per thread: see `st_poison`.
pub fn poison(cfg: &Launch) -> Result<Vec<u32>, HostSimtError> {
    assert!(cfg.block <= 1024 && cfg.dynamic_smem >= cfg.block as usize * 4);
    let mut out = vec![0; cfg.threads() * 5];
    launch(cfg, |c| unsafe {
        host_launch_st_poison(c, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// `out[t] = input[(t + 1) % block]` through shared memory without the barrier it needs.
pub fn racy(cfg: &Launch, input: &[i32], out: &mut [i32]) -> R {
    assert_eq!(cfg.blocks(), 1);
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    launch(cfg, |c| unsafe {
        host_launch_st_racy(c, input.as_ptr(), out.as_mut_ptr())
    })
}

/// [`racy`] with the barrier.
pub fn not_racy(cfg: &Launch, input: &[i32], out: &mut [i32]) -> R {
    assert_eq!(cfg.blocks(), 1);
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    launch(cfg, |c| unsafe {
        host_launch_st_not_racy(c, input.as_ptr(), out.as_mut_ptr())
    })
}

/// Three words per thread: block index, thread index and dimensions (see `st_grid2d`).
pub fn grid2d(cfg: &Launch) -> Result<Vec<u32>, HostSimtError> {
    let mut out = vec![0; cfg.threads() * 3];
    launch(cfg, |c| unsafe {
        host_launch_st_grid2d(c, out.as_mut_ptr())
    })?;
    Ok(out)
}

/// Widens `h` and `b` to f32 and narrows 3x those values back (round to nearest even).
pub fn convert(
    cfg: &Launch,
    h: &[f16],
    b: &[bf16],
    hf: &mut [f32],
    bf: &mut [f32],
    h2: &mut [f16],
    b2: &mut [bf16],
) -> R {
    let n = h.len();
    assert!(b.len() == n && hf.len() >= n && bf.len() >= n && h2.len() >= n && b2.len() >= n);
    launch(cfg, |c| unsafe {
        host_launch_st_convert(
            c,
            h.as_ptr(),
            b.as_ptr(),
            hf.as_mut_ptr(),
            bf.as_mut_ptr(),
            h2.as_mut_ptr(),
            b2.as_mut_ptr(),
            int(n),
        )
    })
}

/// `out[i]` = component sum of the i-th float4 of `input`; `vec`: 4 checksums per i.
pub fn float4(cfg: &Launch, input: &[f32], out: &mut [f32], vec: &mut [u32]) -> R {
    let n4 = input.len() / 4;
    assert!(out.len() >= n4 && vec.len() >= n4 * 4);
    assert_eq!(
        input.as_ptr() as usize % 16,
        0,
        "float4 loads need 16-byte alignment"
    );
    launch(cfg, |c| unsafe {
        host_launch_st_float4(
            c,
            input.as_ptr(),
            out.as_mut_ptr(),
            vec.as_mut_ptr(),
            int(n4),
        )
    })
}

/// Outputs of `st_math`: 16 floats, 16 ints, 8 unsigned.
pub type MathOut = ([f32; 16], [i32; 16], [u32; 8]);

/// Math and bit intrinsics on fixed inputs `x` (10 floats).
pub fn math(x: &[f32; 10]) -> Result<MathOut, HostSimtError> {
    let (mut of, mut oi, mut ou) = ([0.0; 16], [0; 16], [0; 8]);
    launch(&Launch::new((1, 1), 32), |c| unsafe {
        host_launch_st_math(
            c,
            x.as_ptr(),
            of.as_mut_ptr(),
            oi.as_mut_ptr(),
            ou.as_mut_ptr(),
        )
    })?;
    Ok((of, oi, ou))
}

/// `out[t] = input[t ^ 1] * SCALE` for the template kernel `st_scale<SCALE>`, SCALE in {2, 3}.
pub fn scale(cfg: &Launch, scale: u32, input: &[f32], out: &mut [f32]) -> R {
    assert!(input.len() >= cfg.threads() && out.len() >= cfg.threads());
    assert!(cfg.block % 32 == 0 && cfg.block <= 256);
    let f = match scale {
        2 => host_launch_st_scale_2,
        3 => host_launch_st_scale_3,
        _ => panic!("st_scale is exported for 2 and 3"),
    };
    launch(cfg, |c| unsafe { f(c, input.as_ptr(), out.as_mut_ptr()) })
}

/// Thread 0 spins (with `__nanosleep`) until the last thread sets a shared flag.
pub fn spin(cfg: &Launch) -> Result<i32, HostSimtError> {
    let mut out = [0];
    launch(cfg, |c| unsafe { host_launch_st_spin(c, out.as_mut_ptr()) })?;
    Ok(out[0])
}

/// Runs one of the deliberately broken kernels (`mode` as documented in selftest.cu).
pub fn faulty(cfg: &Launch, mode: i32) -> R {
    let mut out = vec![0; cfg.block as usize + 2];
    launch(cfg, |c| unsafe {
        host_launch_st_faulty(c, mode, out.as_mut_ptr())
    })
}
