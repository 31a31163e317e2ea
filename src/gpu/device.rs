//! Finding a GPU without panicking, and loading the kernel image onto it.

use super::kernels_image::{kernel_image, KernelImage, BUILD_INFO};
use crate::error::{Result, SampleError};
use cudarc::driver::{sys, CudaContext, CudaModule};
use std::sync::{Arc, Mutex};

/// What the sampler runs on.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub multiprocessors: i32,
    /// Which kernel image the sampler loads (`fatbin (...)` or `nvrtc-source (...)`; see
    /// `BATCHSAMPLE_KERNEL_IMAGE` in `gpu::kernels_image`).
    pub kernel_image: &'static str,
}

/// Opens device `ordinal`, or says why not as [`SampleError::NoDevice`]. cudarc panics when
/// libcuda is missing, so its presence is probed first.
pub fn open_context(ordinal: usize) -> Result<Arc<CudaContext>> {
    if !unsafe { sys::is_culib_present() } {
        return Err(SampleError::NoDevice(
            "the NVIDIA driver library libcuda.so.1 was not found".into(),
        ));
    }
    let count = CudaContext::device_count()
        .map_err(|e| SampleError::NoDevice(format!("the CUDA driver did not initialise: {e}")))?;
    if ordinal >= count.max(0) as usize {
        return Err(SampleError::NoDevice(format!(
            "device {ordinal} requested, {count} present"
        )));
    }
    CudaContext::new(ordinal).map_err(|e| SampleError::NoDevice(format!("device {ordinal}: {e}")))
}

/// Whether a usable GPU is present (never panics).
pub fn gpu_available() -> bool {
    open_context(0).is_ok()
}

pub fn device_info(ctx: &Arc<CudaContext>) -> Result<DeviceInfo> {
    use sys::CUdevice_attribute::*;
    Ok(DeviceInfo {
        ordinal: ctx.ordinal(),
        name: ctx.name()?,
        compute_capability: (
            ctx.attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            ctx.attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        ),
        multiprocessors: ctx.attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
        kernel_image: kernel_image().map_or(BUILD_INFO, |(_, what)| what),
    })
}

/// NVRTC's name for a compute capability (it takes only `'static` strings).
fn nvrtc_arch(cc: (i32, i32)) -> Option<&'static str> {
    Some(match cc {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// The PTX NVRTC made in this process, by target arch.
static NVRTC_PTX: Mutex<Vec<(Option<&'static str>, cudarc::nvrtc::Ptx)>> = Mutex::new(Vec::new());

/// Loads the compiled-in kernels: the fatbin as is, or the sources through NVRTC.
pub fn load_sampler_module(ctx: &Arc<CudaContext>, cc: (i32, i32)) -> Result<Arc<CudaModule>> {
    let (image, _) = kernel_image().map_err(SampleError::Compile)?;
    match image {
        KernelImage::Fatbin(bytes) => {
            Ok(ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bytes.to_vec()))?)
        }
        image @ KernelImage::Source { source, .. } => {
            let arch = nvrtc_arch(cc);
            // One compile per process and arch: NVRTC takes tens of seconds over every entry
            // point, and each sampler (each GPU test) loads the module again.
            let mut compiled = NVRTC_PTX.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, ptx)) = compiled.iter().find(|(a, _)| *a == arch) {
                return Ok(ctx.load_module(ptx.clone())?);
            }
            if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                return Err(SampleError::Compile(
                    "libnvrtc.so.13 was not found (add the CUDA toolkit's lib directory to \
                     LD_LIBRARY_PATH, or build with nvcc available for an ahead-of-time fatbin)"
                        .into(),
                ));
            }
            let dir = std::env::temp_dir().join(format!(
                "batchsample-kernels-{}-{}",
                std::process::id(),
                env!("CARGO_PKG_VERSION")
            ));
            image
                .write_headers(&dir)
                .map_err(|e| SampleError::file(&dir, e))?;
            let opts = cudarc::nvrtc::CompileOptions {
                include_paths: vec![dir.to_string_lossy().into_owned()],
                arch,
                options: vec!["--std=c++17".into()],
                ..Default::default()
            };
            let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts);
            let _ = std::fs::remove_dir_all(&dir);
            let ptx = ptx.map_err(|e| SampleError::Compile(e.to_string()))?;
            compiled.push((arch, ptx.clone()));
            Ok(ctx.load_module(ptx)?)
        }
    }
}
