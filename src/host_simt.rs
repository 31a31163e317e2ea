//! Host SIMT shim, Rust side (feature `host-simt`): runs the kernels' own CUDA source on the CPU.
//!
//! build.rs compiles every `kernels/*.cu` (and `tests/simt/selftest.cu`) with g++ against
//! `kernels/host/simt.h`; each kernel exported with `HOST_SIMT_EXPORT` in its `.cu` becomes an
//! `extern "C" fn host_launch_<name>(cfg: *const HostLaunch, <kernel args>) -> c_int`. This
//! module declares those functions and wraps them in safe functions that check the buffer sizes
//! the kernel's contract needs. Blocks run one after another; a block's threads run as fibers,
//! in the order that [`Schedule`] picks. See `kernels/host/README.md` for what is (not) emulated.
//!
//! Adding a kernel `foo(const float* x, float* y, int n)`:
//! 1. in `kernels/foo.cu`: `HOST_SIMT_EXPORT(foo, (const float* x, float* y, int n), (x, y, n))`
//!    inside `#ifdef BATCHSAMPLE_HOST_SIMT`;
//! 2. here: declare `fn host_launch_foo(cfg: *const HostLaunch, x: *const f32, y: *mut f32,
//!    n: c_int) -> c_int;` in an `extern "C"` block and wrap it like [`selftest::block_sum_smem`]:
//!    assert the sizes, then `launch(cfg, |c| unsafe { host_launch_foo(c, ...) })`.

use std::ffi::{c_char, c_int, CStr};
use std::fmt;

/// Launch configuration as the C side reads it (`HostLaunch` in `kernels/host/simt.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLaunch {
    pub grid_x: u32,
    pub grid_y: u32,
    pub block_x: u32,
    pub dynamic_smem: usize,
    /// 0 forward, 1 reverse, 2 seeded random.
    pub schedule: c_int,
    pub schedule_seed: u64,
}

const _: () = assert!(std::mem::size_of::<HostLaunch>() == 40);

/// Order in which the fibers of a block are resumed between meeting points (and blocks run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schedule {
    /// Threads in index order, blocks in order.
    #[default]
    Forward,
    /// Threads and blocks in reverse order.
    Reverse,
    /// A fresh seeded shuffle of the threads at every round, blocks shuffled once.
    Random(u64),
}

impl Schedule {
    /// Forward, reverse and one seeded random order: a kernel whose results differ between them
    /// depends on an order that the GPU does not promise (a missing `__syncthreads`, a race).
    pub fn all(seed: u64) -> [Schedule; 3] {
        [Schedule::Forward, Schedule::Reverse, Schedule::Random(seed)]
    }
}

/// Grid (x, y) of 1-D blocks of `block` threads, plus dynamic shared memory and a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32),
    pub block: u32,
    pub dynamic_smem: usize,
    pub schedule: Schedule,
}

impl Launch {
    pub fn new(grid: (u32, u32), block: u32) -> Self {
        Launch {
            grid,
            block,
            dynamic_smem: 0,
            schedule: Schedule::Forward,
        }
    }
    pub fn dynamic_smem(mut self, bytes: usize) -> Self {
        self.dynamic_smem = bytes;
        self
    }
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
    pub fn blocks(&self) -> usize {
        self.grid.0 as usize * self.grid.1 as usize
    }
    /// Total CUDA threads of the launch.
    pub fn threads(&self) -> usize {
        self.blocks() * self.block as usize
    }
    pub fn raw(&self) -> HostLaunch {
        let (schedule, schedule_seed) = match self.schedule {
            Schedule::Forward => (0, 0),
            Schedule::Reverse => (1, 0),
            Schedule::Random(seed) => (2, seed),
        };
        HostLaunch {
            grid_x: self.grid.0,
            grid_y: self.grid.1,
            block_x: self.block,
            dynamic_smem: self.dynamic_smem,
            schedule,
            schedule_seed,
        }
    }
}

/// Why a launch failed (the `HOST_SIMT_ERR_*` codes of simt.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A barrier or warp primitive that can never complete (it would hang on the GPU).
    Deadlock,
    /// `__trap()` or a failed `assert`.
    Trap,
    /// Invalid launch configuration.
    InvalidLaunch,
    /// SIGSEGV/SIGBUS in a kernel thread, fiber stack overflow included.
    MemoryFault,
    /// A warp primitive whose mask cannot be right (own lane missing, lanes that do not exist).
    WarpMisuse,
    /// A C++ exception escaped a kernel.
    Exception,
    Other(i32),
}

impl ErrorKind {
    fn from_code(code: c_int) -> Self {
        match code {
            1 => ErrorKind::Deadlock,
            2 => ErrorKind::Trap,
            3 => ErrorKind::InvalidLaunch,
            4 => ErrorKind::MemoryFault,
            5 => ErrorKind::WarpMisuse,
            6 => ErrorKind::Exception,
            c => ErrorKind::Other(c),
        }
    }
}

/// A failed host launch: the kind and the shim's message (kernel, block, thread, source site).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSimtError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for HostSimtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host-simt {:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for HostSimtError {}

extern "C" {
    fn host_simt_last_error() -> *const c_char;
}

/// Runs one `host_launch_*` call with `cfg` and turns its status into a `Result`.
pub fn launch(
    cfg: &Launch,
    call: impl FnOnce(*const HostLaunch) -> c_int,
) -> Result<(), HostSimtError> {
    let raw = cfg.raw();
    let rc = call(&raw);
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the runtime returns a NUL-terminated string owned by this OS thread, valid until
    // its next launch; it is copied at once.
    let message = unsafe { CStr::from_ptr(host_simt_last_error()) }
        .to_string_lossy()
        .into_owned();
    Err(HostSimtError {
        kind: ErrorKind::from_code(rc),
        message,
    })
}

fn int(n: usize) -> c_int {
    c_int::try_from(n).expect("size does not fit a C int")
}

/// Wrappers for the shim's own test kernels (`tests/simt/selftest.cu`).
/// The launcher's geometry, which the shim's launches follow: which family serves a row, how
/// many threads and splits a row gets. The shim's tests hold the kernels to it.
pub mod geometry {
    pub use crate::gpu::launch::{split_count, threads_for, SamplerKernel, CDF_STREAM_MAX_VOCAB};
    pub use crate::gpu::table::KernelKey;
}

pub mod selftest {
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
        fn host_launch_st_warp_scan(
            cfg: *const HostLaunch,
            input: *const i32,
            out: *mut i32,
        ) -> c_int;
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
        fn host_launch_st_block_votes(
            cfg: *const HostLaunch,
            pred: *const i32,
            out: *mut i32,
        ) -> c_int;
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
        fn host_launch_st_not_racy(
            cfg: *const HostLaunch,
            input: *const i32,
            out: *mut i32,
        ) -> c_int;
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
        fn host_launch_st_scale_2(
            cfg: *const HostLaunch,
            input: *const f32,
            out: *mut f32,
        ) -> c_int;
        fn host_launch_st_scale_3(
            cfg: *const HostLaunch,
            input: *const f32,
            out: *mut f32,
        ) -> c_int;
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
}

/// The sampler kernels of `kernels/sampler.cu`, run on the CPU through the shim: every entry
/// point of the kernel table, found by its [`KernelKey`](crate::gpu::table::KernelKey), with the
/// same `SampleArgs` the GPU launcher passes.
pub mod sampler {
    use super::{launch, HostLaunch, HostSimtError, Launch, Schedule};
    use crate::cpu::{batch_size, RowOutput, SampleOptions};
    use crate::dtype::Logit;
    use crate::gpu::args::{
        ParamFields as ParamFieldPtrs, ProcessingArgs, RowOutputs as RowOutputPtrs, SampleArgs,
        TokenListArgs, VerifyArgs,
    };
    use crate::gpu::launch::{SamplerKernel, MAX_SPLITS, SAMPLER_MAX_THREADS, SPLIT_PARTIAL_WORDS};
    use crate::gpu::table::{dtype_column, KernelKey};
    use crate::gpu::{decode_rows, MAX_TOP_N};
    use crate::params::{DrawMethod, Numerics, RowStatus, SamplingParams};
    use crate::processing::{bitmask_words, Processing, TokenLists};
    use crate::verify::{Drafts, VerifyOptions, VerifyOutput};
    use std::ffi::c_int;

    type Launcher = unsafe extern "C" fn(*const HostLaunch, *const SampleArgs) -> c_int;
    // `host_launch_<family>_<dtype>` for every family of kernels/sampler_table.cuh, and
    // `LAUNCHERS[family][dtype]`.
    include!(concat!(env!("OUT_DIR"), "/host_simt_entries.rs"));

    extern "C" {
        static host_simt_collect_fallbacks: u64;
    }

    /// Rows that the one-read top-k collection (kernels/collect.cuh) has handed to the two-read
    /// path since the process started, over every launch (launches run one at a time).
    pub fn collect_fallbacks() -> u64 {
        // SAFETY: a plain integer that only kernel launches write, under the shim's launch lock;
        // a read racing a launch on another thread sees an old or a new count, never a torn one
        // on x86-64 and aarch64.
        unsafe { std::ptr::read_volatile(std::ptr::addr_of!(host_simt_collect_fallbacks)) }
    }

    /// A row's parameters as the kernels take them: packed rows (one, or one per row), or one
    /// optional array per field with the scalars' values for the missing ones.
    #[derive(Clone, Copy, Debug)]
    pub enum ShimParams<'a> {
        Packed(&'a [SamplingParams]),
        Fields {
            temperature: Option<&'a [f32]>,
            top_k: Option<&'a [u32]>,
            top_p: Option<&'a [f32]>,
            min_p: Option<&'a [f32]>,
            seed: Option<&'a [u64]>,
            step: Option<&'a [u64]>,
            scalars: SamplingParams,
        },
    }

    /// One shim launch of any entry point: `batch` rows of `vocab` logits `row_stride` apart,
    /// the top-n pair `top_stride` slots a row, on a `(splits, batch)` grid when the key splits.
    #[derive(Clone, Copy, Debug)]
    pub struct ShimLaunch<'a, T> {
        pub key: KernelKey,
        pub logits: &'a [T],
        pub batch: usize,
        pub vocab: usize,
        pub row_stride: usize,
        pub params: ShimParams<'a>,
        pub top_stride: usize,
        pub threads: u32,
        pub splits: u32,
        pub schedule: Schedule,
        /// Logits processing ([`Processing::NONE`]: none); the launch sizes the workspace.
        pub processing: Processing<'a>,
        /// A speculative-verification launch: `batch` is the target rows, `params` one per
        /// request (or one for all).
        pub verify: Option<ShimVerify<'a>>,
        /// A scored launch (raw logprobs' second, `SampleArgs::scored_tokens`): the `[batch]`
        /// tokens an earlier launch wrote, which the token output starts as. A row with a
        /// negative token must come back untouched but for an emptied top-n (checked), and
        /// decodes as [`RowStatus::InvalidParams`]: the earlier launch's row is the caller's.
        pub scored: Option<&'a [i32]>,
    }

    /// The drafts of a verification launch and the request outputs' row length.
    #[derive(Clone, Copy, Debug)]
    pub struct ShimVerify<'a> {
        pub offsets: &'a [u32],
        pub drafts: &'a [u32],
        /// `[drafts, vocab]` draft distributions, or none: point masses.
        pub probs: Option<&'a [f32]>,
        /// At least `n_max + 1`.
        pub stride: usize,
    }

    /// What a shim launch wrote: the decoded rows, the raw top-n buffers (`[batch, top_stride]`,
    /// so a test sees the slots past `top_n` untouched) and the split arrival counters after the
    /// launch (the kernels must leave them at 0).
    pub struct ShimResult {
        pub rows: Vec<RowOutput>,
        pub top_tokens: Vec<i32>,
        pub arrivals: Vec<u32>,
        /// The processing workspace's touched bitmap after the launch (the kernels must leave it
        /// all zero).
        pub touched: Vec<u32>,
        /// A verification launch's request results (checked: padded with -1 and NaN past the
        /// emitted tokens, the ticket counters left at 0).
        pub verify: Option<Vec<VerifyOutput>>,
    }

    /// The kernels' processing arguments for `processing` (host addresses), with the workspace
    /// in `touched` (`[batch, ceil(vocab / 32)]`, zeroed) and `table` (`[batch, capacity]`
    /// 16-byte slots as four words each).
    fn processing_args(
        processing: &Processing,
        batch: usize,
        vocab: usize,
        touched: &mut [u32],
        table: &mut [u32],
        capacity: usize,
    ) -> ProcessingArgs {
        fn list(l: &TokenLists) -> TokenListArgs {
            TokenListArgs {
                offsets: if l.offsets.is_empty() {
                    0
                } else {
                    l.offsets.as_ptr() as u64
                },
                tokens: l.tokens.as_ptr() as u64,
                len: l.tokens.len() as u32,
                reserved: 0,
            }
        }
        let bias = TokenLists {
            offsets: processing.bias.offsets,
            tokens: processing.bias.tokens,
        };
        ProcessingArgs {
            bitmask: processing.bitmask.map_or(0, |m| m.as_ptr() as u64),
            bitmask_words: bitmask_words(vocab) as u32,
            penalties_stride: u32::from(processing.penalties.len() > 1 || batch == 1),
            penalties: if processing.penalties.is_empty() {
                0
            } else {
                processing.penalties.as_ptr() as u64
            },
            banned: list(&processing.banned),
            bias: list(&bias),
            bias_values: processing.bias.biases.as_ptr() as u64,
            prompt: list(&processing.prompt),
            output: list(&processing.output),
            touched: touched.as_mut_ptr() as u64,
            table: table.as_mut_ptr() as u64,
            table_capacity: capacity as u32,
            reserved: 0,
        }
    }

    /// The key of a dense launch of `kernel` for `opts` and `T`.
    fn key_of<T: Logit>(kernel: SamplerKernel, opts: &SampleOptions, split: bool) -> KernelKey {
        KernelKey {
            kernel,
            numerics: opts.numerics,
            draw: opts.method,
            dtype: T::DTYPE,
            split,
        }
    }

    /// Verifies `drafts` against `target` (`[drafts.target_rows(), vocab]`) with the
    /// general kernels of `opts.numerics` (`threads` per row block, under `schedule`): the
    /// kernels' speculative verification, one row block per target row.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_rows<T: Logit>(
        target: &[T],
        vocab: usize,
        drafts: &Drafts,
        params: &[SamplingParams],
        processing: &Processing,
        opts: &VerifyOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Result<Vec<VerifyOutput>, HostSimtError> {
        let sample_opts = SampleOptions {
            method: opts.method,
            numerics: opts.numerics,
            top_n: 0,
        };
        let launch_ = ShimLaunch {
            key: key_of::<T>(SamplerKernel::General, &sample_opts, false),
            logits: target,
            batch: drafts.target_rows(),
            vocab,
            row_stride: vocab,
            params: ShimParams::Packed(params),
            top_stride: 0,
            threads,
            splits: 1,
            schedule,
            processing: *processing,
            verify: Some(ShimVerify {
                offsets: drafts.offsets,
                drafts: drafts.tokens,
                probs: drafts.probs,
                stride: drafts.max_count() + 1,
            }),
            scored: None,
        };
        Ok(run(&launch_, &sample_opts)?
            .verify
            .expect("a verification launch"))
    }

    /// A dense launch: `[batch, vocab]` logits, packed params, top-n stride `top_n`.
    #[allow(clippy::too_many_arguments)]
    fn dense<T: Logit>(
        key: KernelKey,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        splits: u32,
        schedule: Schedule,
    ) -> Result<ShimResult, HostSimtError> {
        let batch = batch_size(logits.len(), vocab).expect("vocab divides the logits");
        run(
            &ShimLaunch {
                key,
                logits,
                batch,
                vocab,
                row_stride: vocab,
                params: ShimParams::Packed(params),
                top_stride: opts.top_n,
                threads,
                splits,
                schedule,
                processing: Processing::NONE,
                verify: None,
                scored: None,
            },
            opts,
        )
    }

    /// Runs `sample_rows_{dtype}` (or `sample_rows_invariant_{dtype}` for the invariant
    /// numerics) over a host batch with `threads` per row block (a power of two in
    /// [64, SAMPLER_MAX_THREADS]) under `schedule`, and decodes the outputs. Outputs start
    /// poisoned so an unwritten slot shows.
    pub fn sample_rows<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Result<Vec<RowOutput>, HostSimtError> {
        let key = key_of::<T>(SamplerKernel::General, opts, false);
        Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
    }

    /// [`sample_rows`] through the unfiltered kernels of `opts.method` (kernels/unfiltered.cuh):
    /// `sample_rows_unfiltered_{dtype}` for the Gumbel draw, `sample_rows_unfiltered_cdf_{dtype}`
    /// for the inverse CDF. They ignore `opts.numerics` (they have the fast numerics only).
    pub fn sample_rows_unfiltered<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Result<Vec<RowOutput>, HostSimtError> {
        let key = key_of::<T>(SamplerKernel::Unfiltered, opts, false);
        Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
    }

    /// [`sample_rows`] through the collected kernels (`sample_rows_collected_{dtype}`,
    /// kernels/collected.cuh): greedy rows and Gumbel rows with a small top-k. They have the
    /// fast numerics and the Gumbel draw only; the key asks for those whatever `opts` says.
    pub fn sample_rows_collected<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Result<Vec<RowOutput>, HostSimtError> {
        let key = KernelKey {
            numerics: Numerics::Fast,
            draw: DrawMethod::Gumbel,
            ..key_of::<T>(SamplerKernel::Collected, opts, false)
        };
        Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
    }

    /// Runs `sample_rows_split_{dtype}` on a `(splits, batch)` grid of `threads`-thread blocks
    /// under `schedule` (which also orders the blocks, so the combining block varies). Returns
    /// the decoded rows and the arrival counters after the launch (the kernel must leave them
    /// at 0).
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows_split<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        splits: u32,
        schedule: Schedule,
    ) -> Result<(Vec<RowOutput>, Vec<u32>), HostSimtError> {
        let key = KernelKey {
            numerics: Numerics::Fast,
            ..key_of::<T>(SamplerKernel::General, opts, true)
        };
        let r = dense(key, logits, vocab, params, opts, threads, splits, schedule)?;
        Ok((r.rows, r.arrivals))
    }

    /// [`sample_rows_split`] through the unfiltered split kernels of `opts.method`
    /// (`sample_rows_unfiltered_split_{dtype}`, `sample_rows_unfiltered_cdf_split_{dtype}`:
    /// kernels/unfiltered.cuh).
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows_unfiltered_split<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        opts: &SampleOptions,
        threads: u32,
        splits: u32,
        schedule: Schedule,
    ) -> Result<(Vec<RowOutput>, Vec<u32>), HostSimtError> {
        let key = key_of::<T>(SamplerKernel::Unfiltered, opts, true);
        let r = dense(key, logits, vocab, params, opts, threads, splits, schedule)?;
        Ok((r.rows, r.arrivals))
    }

    /// A launch of `kernel`'s family (split into `splits` slices when `splits > 1`: the fast
    /// numerics) with `processing`, over a dense batch with packed params and top-n stride
    /// `opts.top_n`. The processing's shapes must fit the batch; its values are the kernels' to
    /// check (a bad row is refused alone), so a test can pass what validation would reject.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows_processed<T: Logit>(
        kernel: SamplerKernel,
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        processing: &Processing,
        opts: &SampleOptions,
        threads: u32,
        splits: u32,
        schedule: Schedule,
    ) -> Result<Vec<RowOutput>, HostSimtError> {
        let split = splits > 1;
        let mut key = key_of::<T>(kernel, opts, split);
        if split || kernel != SamplerKernel::General {
            key.numerics = Numerics::Fast;
        }
        if kernel == SamplerKernel::Collected {
            key.draw = DrawMethod::Gumbel;
        }
        let batch = batch_size(logits.len(), vocab).expect("vocab divides the logits");
        let launch_ = ShimLaunch {
            key,
            logits,
            batch,
            vocab,
            row_stride: vocab,
            params: ShimParams::Packed(params),
            top_stride: opts.top_n,
            threads,
            splits,
            schedule,
            processing: *processing,
            verify: None,
            scored: None,
        };
        Ok(run(&launch_, opts)?.rows)
    }

    /// Raw logprobs as [`crate::gpu::GpuSampler::sample_processed_on`] computes them: a
    /// processed launch of the general kernels of `opts.numerics` without top-n, then a scored
    /// launch of the same kernels over the raw rows at temperature 1 with no filters, which
    /// reports each drawn token's logprob and the top-n; a row the first launch refused keeps
    /// its result.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows_raw_logprobs<T: Logit>(
        logits: &[T],
        vocab: usize,
        params: &[SamplingParams],
        processing: &Processing,
        opts: &SampleOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Result<Vec<RowOutput>, HostSimtError> {
        let draw_opts = SampleOptions { top_n: 0, ..*opts };
        let drawn = sample_rows_processed(
            SamplerKernel::General,
            logits,
            vocab,
            params,
            processing,
            &draw_opts,
            threads,
            1,
            schedule,
        )?;
        let tokens: Vec<i32> = drawn
            .iter()
            .map(|r| r.token.map_or(-1, |t| t as i32))
            .collect();
        let scored = run(
            &ShimLaunch {
                key: key_of::<T>(SamplerKernel::General, opts, false),
                logits,
                batch: drawn.len(),
                vocab,
                row_stride: vocab,
                params: ShimParams::Fields {
                    temperature: None,
                    top_k: None,
                    top_p: None,
                    min_p: None,
                    seed: None,
                    step: None,
                    scalars: SamplingParams::default(),
                },
                top_stride: opts.top_n,
                threads,
                splits: 1,
                schedule,
                processing: Processing::NONE,
                verify: None,
                scored: Some(&tokens),
            },
            opts,
        )?;
        Ok(drawn
            .into_iter()
            .zip(scored.rows)
            .map(|(first, raw)| if first.token.is_some() { raw } else { first })
            .collect())
    }

    /// Runs `launch` through the shim: the entry point its key names, outputs poisoned first
    /// (a slot the kernel must write and did not fails an assertion), split scratch and the
    /// processing's edit table poisoned too (a read of a slot no block wrote shows), and the
    /// touched bitmap checked all zero after the launch.
    pub fn run<T: Logit>(
        launch_: &ShimLaunch<'_, T>,
        opts: &SampleOptions,
    ) -> Result<ShimResult, HostSimtError> {
        let ShimLaunch {
            key,
            logits,
            batch,
            vocab,
            row_stride,
            params,
            top_stride,
            threads,
            splits,
            schedule,
            processing,
            verify,
            scored,
        } = *launch_;
        assert_eq!(key.dtype, T::DTYPE, "the key's dtype is the logits'");
        let family = key.family().expect("a family serves the key");
        let entry = LAUNCHERS[family][dtype_column(key.dtype)];
        assert!(row_stride >= vocab);
        assert!(batch == 0 || logits.len() >= (batch - 1) * row_stride + vocab);
        assert!(opts.top_n <= MAX_TOP_N && top_stride >= opts.top_n);
        assert!(threads.is_power_of_two() && (64..=SAMPLER_MAX_THREADS).contains(&threads));
        let splits = if key.split { splits } else { 1 };
        assert!((1..=MAX_SPLITS as u32).contains(&splits));
        let mut tokens = match scored {
            Some(t) => {
                assert_eq!(t.len(), batch, "a scored token a row");
                t.to_vec()
            }
            None => vec![i32::MIN; batch],
        };
        let mut logprobs = vec![f32::NAN; batch];
        let mut status = vec![u32::MAX; batch];
        let mut top_tokens = vec![i32::MIN; (batch * top_stride).max(1)];
        let mut top_logprobs = vec![f32::NAN; (batch * top_stride).max(1)];
        // u64 words: a slice's candidates are 8-byte values (SPLIT_PARTIAL_WORDS is even).
        const _: () = assert!(SPLIT_PARTIAL_WORDS % 2 == 0);
        let mut partials =
            vec![u64::MAX; (batch * splits as usize * SPLIT_PARTIAL_WORDS / 2).max(1)];
        let mut arrivals = vec![0u32; batch.max(1)];
        let mut args = SampleArgs {
            logits: logits.as_ptr() as u64,
            row_stride: row_stride as u64,
            vocab: u32::try_from(vocab).expect("vocab fits 32 bits"),
            method: match opts.method {
                DrawMethod::Gumbel => 0,
                DrawMethod::InverseCdf => 1,
            },
            out: RowOutputPtrs {
                tokens: tokens.as_mut_ptr() as u64,
                logprobs: logprobs.as_mut_ptr() as u64,
                status: status.as_mut_ptr() as u64,
                top_tokens: top_tokens.as_mut_ptr() as u64,
                top_logprobs: top_logprobs.as_mut_ptr() as u64,
                top_n: opts.top_n as u32,
                top_stride: top_stride as u32,
            },
            partials: partials.as_mut_ptr() as u64,
            arrivals: arrivals.as_mut_ptr() as u64,
            ..SampleArgs::default()
        };
        if scored.is_some() {
            args.scored_tokens = tokens.as_ptr() as u64;
        }
        // What memory safety needs (the kernels check each row's offsets and values
        // themselves): every array of the length the kernels index it by.
        let offsets_fit = |o: &[u32]| o.is_empty() || o.len() == batch + 1;
        assert!(
            [
                processing.banned.offsets,
                processing.bias.offsets,
                processing.prompt.offsets,
                processing.output.offsets,
            ]
            .iter()
            .all(|o| offsets_fit(o))
                && processing.bias.tokens.len() == processing.bias.biases.len()
                && processing
                    .bitmask
                    .is_none_or(|m| m.len() == batch * bitmask_words(vocab))
                && [0, 1, batch].contains(&processing.penalties.len()),
            "processing inputs of the batch's shape"
        );
        let capacity = processing.edit_table_capacity(batch);
        let mut touched = vec![0u32; (batch * bitmask_words(vocab)).max(1)];
        // Poisoned: each row clears the slots it uses.
        let mut table = vec![u32::MAX; (batch * capacity * 4).max(1)];
        args.proc = processing_args(
            &processing,
            batch,
            vocab,
            &mut touched,
            &mut table,
            capacity,
        );
        // A verification launch reads one parameter row per request.
        let param_rows = verify.map_or(batch, |v| v.offsets.len().saturating_sub(1));
        match params {
            ShimParams::Packed(p) => {
                assert!(p.len() == 1 || p.len() == param_rows, "1 or batch params");
                args.params = p.as_ptr() as u64;
                args.params_stride = u32::from(p.len() != 1 || param_rows == 1);
            }
            ShimParams::Fields {
                temperature,
                top_k,
                top_p,
                min_p,
                seed,
                step,
                scalars,
            } => {
                fn ptr<E>(field: Option<&[E]>, batch: usize) -> u64 {
                    field.map_or(0, |f| {
                        assert!(f.len() >= batch, "a field array holds batch rows");
                        f.as_ptr() as u64
                    })
                }
                args.scalars = scalars;
                args.fields = ParamFieldPtrs {
                    temperature: ptr(temperature, param_rows),
                    top_k: ptr(top_k, param_rows),
                    top_p: ptr(top_p, param_rows),
                    min_p: ptr(min_p, param_rows),
                    seed: ptr(seed, param_rows),
                    step: ptr(step, param_rows),
                };
            }
        }
        let mut requests = VerifyBuffers::new(verify, batch);
        if let Some(v) = verify {
            assert!(
                !key.split && key.kernel == SamplerKernel::General,
                "general kernels verify"
            );
            assert!(opts.top_n == 0, "verification launches report no top-n");
            args.verify = requests.args(v, vocab);
        }
        let grid = if key.split {
            (splits, batch as u32)
        } else {
            (batch as u32, 1)
        };
        let cfg = Launch::new(grid, threads).schedule(schedule);
        if batch > 0 {
            // SAFETY: `args` holds host addresses of buffers that hold what the kernel indexes
            // (asserted above): logits `batch` rows at `row_stride`, params 1 or batch (or batch
            // per field), outputs batch (batch * top_stride), partials batch * splits, arrivals
            // batch; f16/bf16 as their bits. They outlive the launch, which returns when done.
            launch(&cfg, |c| unsafe { entry(c, &args) })?;
        }
        let written = |ok: bool, what: &str| {
            assert!(ok, "the kernel left {what} unwritten");
        };
        // A scored launch of the general kernels leaves the rows it does not score (a negative
        // token) as they were, but for the top-n.
        let left = |r: usize| {
            scored.is_some_and(|t| t[r] < 0) && key.kernel == SamplerKernel::General && !key.split
        };
        for r in (0..batch).filter(|&r| left(r)) {
            assert!(
                tokens[r] == scored.unwrap_or_default()[r]
                    && logprobs[r].is_nan()
                    && status[r] == u32::MAX,
                "row {r}: a scored launch wrote a row it does not score"
            );
            tokens[r] = -1;
            status[r] = RowStatus::InvalidParams as u32;
        }
        written(status.iter().all(|&s| s != u32::MAX), "a status");
        assert!(
            touched.iter().all(|&w| w == 0),
            "the kernel left bits of the touched bitmap set"
        );
        written(tokens.iter().all(|&t| t != i32::MIN), "a token");
        if opts.top_n > 0 {
            written(
                (0..batch).all(|r| {
                    top_tokens[r * top_stride..r * top_stride + opts.top_n]
                        .iter()
                        .all(|&t| t != i32::MIN)
                }),
                "a top-n slot",
            );
        }
        let rows = decode_rows(
            &tokens,
            &logprobs,
            &status,
            &top_tokens,
            &top_logprobs,
            opts.top_n,
            top_stride,
        );
        Ok(ShimResult {
            rows,
            top_tokens,
            arrivals,
            touched,
            verify: verify.map(|_| requests.decode()),
        })
    }

    /// A verification launch's per-position and per-request buffers (host memory), poisoned.
    struct VerifyBuffers {
        positions: Vec<u64>,
        arrivals: Vec<u32>,
        accepted: Vec<i32>,
        tokens: Vec<i32>,
        logprobs: Vec<f32>,
        status: Vec<u32>,
        stride: usize,
        requests: usize,
    }

    impl VerifyBuffers {
        fn new(verify: Option<ShimVerify>, rows: usize) -> Self {
            let requests = verify.map_or(0, |v| v.offsets.len().saturating_sub(1));
            let stride = verify.map_or(1, |v| v.stride);
            VerifyBuffers {
                positions: vec![u64::MAX; rows.max(1)],
                arrivals: vec![0; requests.max(1)],
                accepted: vec![i32::MIN; requests.max(1)],
                tokens: vec![i32::MIN; (requests * stride).max(1)],
                logprobs: vec![f32::INFINITY; (requests * stride).max(1)],
                status: vec![u32::MAX; requests.max(1)],
                stride,
                requests,
            }
        }

        fn args(&mut self, v: ShimVerify, vocab: usize) -> VerifyArgs {
            let requests = v.offsets.len() - 1;
            assert_eq!(v.offsets[0], 0, "CSR offsets start at 0");
            assert!(
                v.offsets.windows(2).all(|w| w[0] <= w[1]),
                "CSR offsets never decrease"
            );
            assert_eq!(
                v.offsets[requests] as usize,
                v.drafts.len(),
                "one token a draft"
            );
            assert!(
                v.probs.is_none_or(|q| q.len() == v.drafts.len() * vocab),
                "a distribution row a draft"
            );
            let n_max = v.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
            assert!(
                v.stride > n_max as usize,
                "the stride holds n_max + 1 tokens"
            );
            VerifyArgs {
                offsets: v.offsets.as_ptr() as u64,
                drafts: v.drafts.as_ptr() as u64,
                draft_probs: v.probs.map_or(0, |q| q.as_ptr() as u64),
                requests: requests as u32,
                stride: v.stride as u32,
                drafts_len: v.drafts.len() as u32,
                rows: self.positions.len() as u32,
                positions: self.positions.as_mut_ptr() as u64,
                arrivals: self.arrivals.as_mut_ptr() as u64,
                accepted: self.accepted.as_mut_ptr() as u64,
                tokens: self.tokens.as_mut_ptr() as u64,
                logprobs: self.logprobs.as_mut_ptr() as u64,
                status: self.status.as_mut_ptr() as u64,
            }
        }

        /// The requests' results, checking what the kernels must leave.
        fn decode(&self) -> Vec<VerifyOutput> {
            assert!(
                self.arrivals.iter().all(|&a| a == 0),
                "ticket counters left at 0"
            );
            (0..self.requests)
                .map(|r| {
                    let status = RowStatus::from_code(self.status[r]).expect("a status code");
                    let row = r * self.stride..(r + 1) * self.stride;
                    let (tokens, logprobs) = (&self.tokens[row.clone()], &self.logprobs[row]);
                    let accepted = self.accepted[r];
                    let emitted = if status == RowStatus::Ok {
                        accepted as usize + 1
                    } else {
                        assert_eq!(accepted, 0, "a failed request accepts nothing");
                        0
                    };
                    // What the kernels must leave past the emitted tokens.
                    assert!(tokens[emitted..].iter().all(|&t| t == -1), "padding -1");
                    assert!(
                        logprobs[emitted..].iter().all(|l| l.is_nan()),
                        "padding NaN"
                    );
                    VerifyOutput::from_padded(self.status[r], accepted, tokens, logprobs)
                })
                .collect()
        }
    }
}

/// The split-row entry points (`sample_rows_split_*`, `sample_rows_unfiltered[_cdf]_split_*`),
/// run on the CPU: [`sampler`]'s launches on a `(splits, batch)` grid.
pub mod split {
    pub use super::sampler::{sample_rows_split, sample_rows_unfiltered_split};
}

/// `exact_math_probe` of `kernels/exact_math_probe.cu`: the kernels' exp and log, run on the CPU.
pub mod exact_math {
    use super::{launch, HostLaunch, HostSimtError, Launch};
    use std::ffi::{c_int, c_uint};

    extern "C" {
        fn host_launch_exact_math_probe(
            cfg: *const HostLaunch,
            x: *const f32,
            exp_out: *mut f32,
            log_out: *mut f32,
            n: c_uint,
        ) -> c_int;
    }

    /// `(exact_exp(x), exact_log(x))` for every `x`, as the kernel source computes them.
    pub fn probe(x: &[f32]) -> Result<(Vec<f32>, Vec<f32>), HostSimtError> {
        let n = u32::try_from(x.len()).expect("at most u32::MAX inputs");
        let mut exp = vec![f32::NAN; x.len()];
        let mut log = vec![f32::NAN; x.len()];
        // One block of 32 threads striding over the array: fibers switch only at barriers, so
        // each runs its whole share at once.
        let cfg = Launch::new((1, 1), 32);
        // SAFETY: x, exp and log each hold n floats, which is all the kernel touches.
        launch(&cfg, |c| unsafe {
            host_launch_exact_math_probe(c, x.as_ptr(), exp.as_mut_ptr(), log.as_mut_ptr(), n)
        })?;
        Ok((exp, log))
    }
}

/// The batch-invariant projection of `kernels/projection.cu`, run on the CPU through the shim.
pub mod projection {
    use super::{launch, HostLaunch, HostSimtError, Launch};
    use crate::dtype::{Dtype, Logit};
    use std::ffi::{c_int, c_uint, c_void};

    /// The three launchers share one C signature (`PROJECTION_PARAMS`).
    macro_rules! declare_launchers {
        ($($name:ident),*) => {
            extern "C" {
                $(fn $name(
                    cfg: *const HostLaunch,
                    hidden: *const c_void,  // [batch, d] f32, or f16/bf16 bits
                    weights: *const c_void, // [vocab, d], same type
                    batch: c_uint,
                    vocab: c_uint,
                    d: c_uint,
                    logits: *mut f32,       // [batch, vocab]
                ) -> c_int;)*
            }
        };
    }
    declare_launchers!(
        host_launch_project_invariant_f32,
        host_launch_project_invariant_f16,
        host_launch_project_invariant_bf16
    );

    /// `[batch, vocab]` logits of `project_invariant_{dtype}` over `hidden` (`[batch, d]`) and
    /// `weights` (`[vocab, d]`), launched as `cfg` says: the grid and block are the experiment's
    /// (batchsample-cli's `drift::projection`), which owns the kernel's launch geometry. The
    /// outputs start as NaN, so an unwritten one shows. Slices that are not 16-byte aligned take
    /// the kernel's element-load path.
    pub fn project<T: Logit>(
        hidden: &[T],
        weights: &[T],
        batch: usize,
        vocab: usize,
        d: usize,
        cfg: &Launch,
    ) -> Result<Vec<f32>, HostSimtError> {
        assert!(hidden.len() == batch * d && weights.len() == vocab * d);
        let size = |n: usize| c_uint::try_from(n).expect("size fits 32 bits");
        let mut logits = vec![f32::NAN; batch * vocab];
        if batch == 0 || vocab == 0 {
            return Ok(logits);
        }
        let entry = match T::DTYPE {
            Dtype::F32 => host_launch_project_invariant_f32,
            Dtype::F16 => host_launch_project_invariant_f16,
            Dtype::Bf16 => host_launch_project_invariant_bf16,
        };
        // SAFETY: hidden holds batch * d, weights vocab * d elements (f16/bf16 passed as bits),
        // logits batch * vocab.
        launch(cfg, |c| unsafe {
            entry(
                c,
                hidden.as_ptr().cast(),
                weights.as_ptr().cast(),
                size(batch),
                size(vocab),
                size(d),
                logits.as_mut_ptr(),
            )
        })?;
        Ok(logits)
    }
}
