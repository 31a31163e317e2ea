//! Build script: turns `kernels/*.cu` into the kernel image that `src/gpu/kernels_image.rs`
//! embeds, and (feature `host-simt`) the same source into the host SIMT shim's library.
//!
//! * The kernel sources are always embedded as strings, for NVRTC at run time.
//! * nvcc found (see `build/fatbin.rs` for the search order): an ahead-of-time fatbin for sm_80,
//!   sm_89 and sm_90 (+ compute_90 PTX), warnings and spills as errors. A failing compile fails
//!   the build with nvcc's log; there is no silent fallback.
//! * `BATCHSAMPLE_FORCE_NVRTC=1`, or no nvcc anywhere: the sources only.
//! * Always: the Rust side of the kernel table (`build/table.rs`), from the same header the
//!   kernels' entry points come from; the shared constants, the launch structs' layout and the
//!   row rules (`build/constants.rs`, `layout.rs`, `rules.rs`), from the kernels' headers.
//!
//! nvcc and the shim's g++ run at the same time (minutes, single-threaded for long stretches),
//! and what they produce is cached by content (`build/cache.rs`), so `cargo test`, `cargo
//! clippy` and `cargo build --release` of the same kernels compile them once. Writes to
//! `OUT_DIR` and that cache only. Needs nothing but Rust (+ gcc) when nvcc is absent.

use std::env;
use std::path::PathBuf;

#[path = "build/cache.rs"]
mod cache;
#[path = "build/constants.rs"]
mod constants;
#[path = "build/fatbin.rs"]
mod fatbin;
#[path = "build/host_simt.rs"]
mod host_simt;
#[path = "build/layout.rs"]
mod layout;
#[path = "build/rules.rs"]
mod rules;
#[path = "build/table.rs"]
mod table;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    // Scans `kernels/` recursively and emits `rerun-if-changed` for the directory and every file.
    let kernels = fatbin::KernelSet::scan(&manifest_dir.join("kernels"));
    let cache = cache::Cache::open(&out_dir);
    // The Rust side of the kernel table (kernels/sampler_table.cuh), before anything compiles.
    table::write(&manifest_dir.join("kernels"), &out_dir);
    // The constants the Rust side shares with the kernels, from the kernels' source.
    constants::write(&manifest_dir.join("kernels"), &out_dir);
    // The launch structs' Rust twins and layout checks, from kernels/args.cuh and params.cuh.
    layout::write(&manifest_dir.join("kernels"), &out_dir);
    // Which rows each family can serve, from kernels/row_rules.cuh.
    rules::write(&manifest_dir.join("kernels"), &out_dir);

    std::thread::scope(|s| {
        // The device image: embedded sources, and the fatbin when nvcc is there.
        let image = s.spawn(|| fatbin::build(&kernels, &manifest_dir, &out_dir, cache.as_ref()));
        // The host-SIMT shim (feature `host-simt`) from the top-level `kernels/*.cu`;
        // `kernels/host/**` is already covered by the rerun-if-changed scan above.
        if env::var_os("CARGO_FEATURE_HOST_SIMT").is_some() {
            host_simt::build(&kernels.translation_units, &out_dir, cache.as_ref());
        }
        if let Err(panic) = image.join() {
            std::panic::resume_unwind(panic);
        }
    });
}
