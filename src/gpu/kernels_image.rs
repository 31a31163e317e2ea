//! The compiled-in kernel image, as `build.rs` produced it (see `build/fatbin.rs`).
//!
//! * [`KernelImage::Fatbin`]: nvcc was found at build time; the fatbin holds SASS for sm_80,
//!   sm_89 and sm_90 plus compute_90 PTX. Load it with the driver as a binary module image.
//! * [`KernelImage::Source`]: built with `BATCHSAMPLE_FORCE_NVRTC=1` or without nvcc; compile
//!   `source` with NVRTC at run time. It `#include`s its `headers` by bare name: NVRTC needs them
//!   on an include path (see [`KernelImage::write_headers`]) plus `$CUDA/include` (and
//!   `$CUDA/include/cccl`). Use `--std=c++17`, the device's `compute_XY` arch and no fast math.

use std::path::Path;

/// Which form the kernels were compiled in; see the module docs.
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

/// How the image was built, for logs: `fatbin (<nvcc path>)` or `nvrtc-source (<reason>)`.
pub const BUILD_INFO: &str = env!("BATCHSAMPLE_KERNEL_BUILD");

#[cfg(batchsample_fatbin)]
static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

#[cfg(not(batchsample_fatbin))]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));
}

/// The kernel image compiled into this binary.
pub fn kernel_image() -> KernelImage {
    #[cfg(batchsample_fatbin)]
    {
        KernelImage::Fatbin(FATBIN)
    }
    #[cfg(not(batchsample_fatbin))]
    {
        KernelImage::Source {
            source: embedded::SOURCE,
            headers: embedded::HEADERS,
        }
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
