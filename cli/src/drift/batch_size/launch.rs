//! Experiment 2's launches: the batch-invariant projection kernels (`kernels/projection.cu`, in
//! the crate's kernel image) and cuBLAS, as inherent methods of the types `gpu.rs` defines. Every
//! `unsafe` call of the experiment is here.

use super::gpu::{CublasHandle, ProjectionKernels};
use crate::drift::projection::{projection_grid, PROJECTION_THREADS};
use batchsample::dtype::Dtype;
use batchsample::error::{Result, SampleError};
use batchsample::gpu::raw::{device_info, load_sampler_module, open_context};
use batchsample::gpu::DeviceInfo;
use cudarc::cublas::{result as cublas, sys as cublas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg,
};
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// `(batch, vocab, d)` as the kernel's and cuBLAS's 32-bit sizes.
fn sizes(batch: usize, vocab: usize, d: usize) -> Result<(c_int, c_int, c_int)> {
    let int = |n: usize| c_int::try_from(n).ok();
    match (int(batch), int(vocab), int(d)) {
        (Some(b), Some(v), Some(k)) => Ok((b, v, k)),
        _ => Err(SampleError::Capacity(format!(
            "batch {batch}, vocab {vocab}, d {d}: each must be below 2^31"
        ))),
    }
}

impl ProjectionKernels {
    /// Opens device `ordinal` (the driver probed first: [`SampleError::NoDevice`], no panic)
    /// and loads `project_invariant_*` from the crate's kernel image.
    pub(crate) fn open(
        ordinal: usize,
    ) -> Result<(Arc<CudaContext>, DeviceInfo, ProjectionKernels)> {
        let ctx = open_context(ordinal)?;
        // SAFETY: every buffer of this context is used on one stream, in order, so cudarc's
        // cross-stream event tracking has nothing to order.
        unsafe { ctx.disable_event_tracking() };
        let info = device_info(&ctx)?;
        let module = load_sampler_module(&ctx, info.compute_capability)?;
        let kernels = ProjectionKernels {
            f32: module.load_function("project_invariant_f32")?,
            f16: module.load_function("project_invariant_f16")?,
            bf16: module.load_function("project_invariant_bf16")?,
        };
        Ok((ctx, info, kernels))
    }

    /// `project_invariant_{dtype}` (kernels/projection.cu): grid (batch tiles, vocab groups)
    /// of `PROJECTION_THREADS`-thread blocks.
    ///
    /// # Safety
    /// The caller guarantees: `hidden` holds `batch * d` and `weights` `vocab * d` elements
    /// of `dtype` (f16/bf16 as their 16-bit patterns), `logits` `batch * vocab` f32.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn launch<T>(
        &self,
        stream: &CudaStream,
        dtype: Dtype,
        hidden: &CudaView<'_, T>,  // [batch, d]
        weights: &CudaView<'_, T>, // [vocab, d]
        batch: usize,
        vocab: usize,
        d: usize,
        logits: &mut CudaViewMut<'_, f32>, // [batch, vocab]
    ) -> Result<()> {
        if batch == 0 || vocab == 0 {
            return Ok(());
        }
        let (b, v, k) = sizes(batch, vocab, d)?;
        let grid = projection_grid(batch, vocab).ok_or_else(|| {
            SampleError::Capacity(format!("vocab {vocab} exceeds the grid (1,048,560)"))
        })?;
        let cfg = LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (PROJECTION_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let f = match dtype {
            Dtype::F32 => &self.f32,
            Dtype::F16 => &self.f16,
            Dtype::Bf16 => &self.bf16,
        };
        let (b, v, k) = (b as u32, v as u32, k as u32);
        let mut l = stream.launch_builder(f);
        l.arg(hidden);
        l.arg(weights);
        l.arg(&b);
        l.arg(&v);
        l.arg(&k);
        l.arg(logits);
        l.launch(cfg)?;
        Ok(())
    }
}

impl CublasHandle {
    /// cuBLAS on `stream`. cudarc panics on the first call into a library it cannot load, so
    /// the library is probed first: [`SampleError::Cublas`] when it is missing.
    pub(crate) fn open(stream: &Arc<CudaStream>) -> Result<CublasHandle> {
        // SAFETY: only tries to dlopen cudarc's candidate names for libcublas.
        if !unsafe { cublas_sys::is_culib_present() } {
            return Err(SampleError::Cublas(
                "libcublas was not found (put the directory of libcublas.so.13 on \
                 LD_LIBRARY_PATH)"
                    .into(),
            ));
        }
        Ok(CublasHandle {
            blas: CudaBlas::new(stream.clone()).map_err(cublas_error)?,
            stream: stream.clone(),
        })
    }

    /// `logits[b, v] = sum_k hidden[b, k] weights[v, k]` as the column-major TN GEMM
    /// `C[vocab, batch] = W[d, vocab]^T H[d, batch]`: `cublasSgemm` for f32,
    /// `cublasGemmEx` (f32 output, `CUBLAS_COMPUTE_32F`) for f16/bf16; alpha 1, beta 0.
    ///
    /// # Safety
    /// As [`ProjectionKernels::launch`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn project<T>(
        &self,
        dtype: Dtype,
        hidden: &CudaView<'_, T>,  // [batch, d]
        weights: &CudaView<'_, T>, // [vocab, d]
        batch: usize,
        vocab: usize,
        d: usize,
        logits: &mut CudaViewMut<'_, f32>, // [batch, vocab]
    ) -> Result<()> {
        if batch == 0 || vocab == 0 {
            return Ok(());
        }
        let (n, m, k) = sizes(batch, vocab, d)?;
        let ld = k.max(1);
        let handle = *self.blas.handle();
        let (w, _w) = weights.device_ptr(&self.stream);
        let (h, _h) = hidden.device_ptr(&self.stream);
        let (c, _c) = logits.device_ptr_mut(&self.stream);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (op_t, op_n) = (
            cublas_sys::cublasOperation_t::CUBLAS_OP_T,
            cublas_sys::cublasOperation_t::CUBLAS_OP_N,
        );
        let input = match dtype {
            Dtype::F32 => {
                cublas::sgemm(
                    handle,
                    op_t,
                    op_n,
                    m,
                    n,
                    k,
                    &alpha,
                    w as *const f32,
                    ld,
                    h as *const f32,
                    ld,
                    &beta,
                    c as *mut f32,
                    m,
                )
                .map_err(cublas_error)?;
                return Ok(());
            }
            Dtype::F16 => cublas_sys::cudaDataType_t::CUDA_R_16F,
            Dtype::Bf16 => cublas_sys::cudaDataType_t::CUDA_R_16BF,
        };
        cublas::gemm_ex(
            handle,
            op_t,
            op_n,
            m,
            n,
            k,
            &alpha as *const f32 as *const c_void,
            w as *const c_void,
            input,
            ld,
            h as *const c_void,
            input,
            ld,
            &beta as *const f32 as *const c_void,
            c as *mut c_void,
            cublas_sys::cudaDataType_t::CUDA_R_32F,
            m,
            cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .map_err(cublas_error)
    }
}

/// A failed cuBLAS call as the crate's error (the core's `SampleError` has no cuBLAS type in it:
/// the core does not link cuBLAS).
fn cublas_error(e: cublas::CublasError) -> SampleError {
    SampleError::Cublas(format!("call failed with {e}"))
}

/// cuBLAS's version, for reports (results depend on it).
impl CublasHandle {
    /// cuBLAS's version number (`major * 10000 + minor * 100 + patch`), if it answers.
    pub(crate) fn version(&self) -> Option<i32> {
        let mut v = 0;
        // SAFETY: a live handle (owned by self.blas) and a valid out-pointer.
        unsafe { cudarc::cublas::sys::cublasGetVersion_v2(*self.blas.handle(), &mut v) }
            .result()
            .ok()?;
        Some(v)
    }
}
