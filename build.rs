//! Build script: turns `kernels/*.cu` into the kernel image that `src/gpu/kernels_image.rs`
//! embeds.
//!
//! * nvcc found (see `build/fatbin.rs` for the search order): an ahead-of-time fatbin for sm_80,
//!   sm_89 and sm_90 (+ compute_90 PTX), warnings and spills as errors. A failing compile fails
//!   the build with nvcc's log; there is no silent fallback.
//! * `BATCHSAMPLE_FORCE_NVRTC=1`, or no nvcc anywhere: the kernel sources are embedded as strings
//!   and compiled with NVRTC at run time.
//!
//! Writes only to `OUT_DIR`. Needs nothing but Rust (+ gcc) when nvcc is absent.

use std::env;
use std::path::PathBuf;

#[path = "build/fatbin.rs"]
mod fatbin;

// ---- host-SIMT shim: declare its module here ---------------------------------------------------
#[path = "build/host_simt.rs"]
mod host_simt;
// -------------------------------------------------------------------------------------------------

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    // Scans `kernels/` recursively and emits `rerun-if-changed` for the directory and every file.
    let kernels = fatbin::KernelSet::scan(&manifest_dir.join("kernels"));

    // The device image: fatbin (nvcc) or embedded sources (NVRTC).
    fatbin::build(&kernels, &manifest_dir, &out_dir);

    // ---- host-SIMT shim (feature `host-simt`): call it here --------------------------------------
    // `kernels.translation_units` are the top-level `kernels/*.cu` files (sorted, absolute paths);
    // `kernels/host/**` is already covered by the rerun-if-changed scan above.
    //
    if env::var_os("CARGO_FEATURE_HOST_SIMT").is_some() {
        host_simt::build(&kernels.translation_units, &out_dir);
    }
    // -------------------------------------------------------------------------------------------
}
