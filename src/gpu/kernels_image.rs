//! The compiled-in kernel images, as `build.rs` produced them (see `build/fatbin.rs`).
//!
//! * [`KernelImage::Fatbin`]: present when nvcc was found at build time; holds SASS for sm_80,
//!   sm_89 and sm_90 plus compute_90 PTX. Load it with the driver as a binary module image.
//! * [`KernelImage::Source`]: always present; CUDA C++ for NVRTC to compile at run time. It
//!   `#include`s its `headers` by bare name: NVRTC needs them on an include path (see
//!   [`KernelImage::write_headers`]) plus `$CUDA/include` (and `$CUDA/include/cccl`). Use
//!   `--std=c++17`, the device's `compute_XY` arch and no fast math.
//!
//! [`kernel_image`] picks the fatbin when there is one, the source otherwise;
//! `BATCHSAMPLE_KERNEL_IMAGE=source` at run time picks the source even when a fatbin is embedded
//! (one binary tests both paths on a GPU machine), `=fatbin` insists on the fatbin.

use std::path::Path;

/// Which form the kernels are in; see the module docs.
#[derive(Clone, Copy, Debug)]
pub enum KernelImage {
    /// An nvcc fatbin (starts with the magic `0xBA55ED50`, little-endian).
    Fatbin(&'static [u8]),
    /// CUDA C++ for NVRTC: the translation unit and the files it includes, as `(name, text)`.
    Source {
        source: &'static str,
        headers: &'static [(&'static str, &'static str)],
    },
}

/// How the crate was built, for logs: `fatbin (<nvcc path>)` or `nvrtc-source (<reason>)`.
pub const BUILD_INFO: &str = env!("BATCHSAMPLE_KERNEL_BUILD");

/// The run-time choice of image: unset or `auto`, `fatbin`, or `source` (alias `nvrtc`).
pub const IMAGE_ENV: &str = "BATCHSAMPLE_KERNEL_IMAGE";

#[cfg(batchsample_fatbin)]
static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));
}

/// The fatbin compiled into this binary, if nvcc built one.
pub fn embedded_fatbin() -> Option<&'static [u8]> {
    #[cfg(batchsample_fatbin)]
    {
        Some(FATBIN)
    }
    #[cfg(not(batchsample_fatbin))]
    {
        None
    }
}

/// The kernel sources compiled into this binary (every build has them).
pub fn embedded_source() -> KernelImage {
    KernelImage::Source {
        source: embedded::SOURCE,
        headers: embedded::HEADERS,
    }
}

/// The image to load, as [`IMAGE_ENV`] asks (see the module docs), and a description of it for
/// logs; `Err` names a value it does not know, or `fatbin` in a build without one.
pub fn kernel_image() -> Result<(KernelImage, &'static str), String> {
    choose_image(&std::env::var(IMAGE_ENV).unwrap_or_default())
}

/// [`kernel_image`] for a given value of [`IMAGE_ENV`] (`""` when unset).
pub fn choose_image(wanted: &str) -> Result<(KernelImage, &'static str), String> {
    match (wanted.trim(), embedded_fatbin()) {
        ("" | "auto", Some(bytes)) | ("fatbin", Some(bytes)) => {
            Ok((KernelImage::Fatbin(bytes), BUILD_INFO))
        }
        ("" | "auto", None) => Ok((embedded_source(), BUILD_INFO)),
        ("source" | "nvrtc", _) => Ok((
            embedded_source(),
            "nvrtc-source (BATCHSAMPLE_KERNEL_IMAGE=source)",
        )),
        ("fatbin", None) => Err(format!(
            "{IMAGE_ENV}=fatbin, but this build has no fatbin ({BUILD_INFO})"
        )),
        (other, _) => Err(format!(
            "{IMAGE_ENV}={other:?}: expected auto, fatbin or source"
        )),
    }
}

impl KernelImage {
    /// Writes the `headers` of a [`KernelImage::Source`] into `dir` (for NVRTC's include path);
    /// does nothing for a fatbin.
    pub fn write_headers(&self, dir: &Path) -> std::io::Result<()> {
        if let KernelImage::Source { headers, .. } = self {
            std::fs::create_dir_all(dir)?;
            for (name, text) in headers.iter() {
                std::fs::write(dir.join(name), text)?;
            }
        }
        Ok(())
    }
}
