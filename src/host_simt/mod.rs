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

pub mod selftest;

/// The sampler kernels of `kernels/sampler.cu`, run on the CPU through the shim: every entry
/// point of the kernel table, found by its [`KernelKey`](crate::gpu::table::KernelKey), with the
/// same `SampleArgs` the GPU launcher passes.
pub mod sampler;

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
