//! Experiment 2's GPU backends: cuBLAS, and the batch-invariant kernel of
//! `kernels/projection.cu`, over the same device copies of the projection and the hidden pool.
//!
//! cuBLAS computes `logits = hidden W^T` as the column-major product
//! `C[vocab, batch] = W[d, vocab]^T H[d, batch]` (a "TN" GEMM, as `torch.nn.functional.linear`
//! issues it): `cublasSgemm` for f32 inputs, `cublasGemmEx` with f32 output and
//! `CUBLAS_COMPUTE_32F` for f16/bf16 inputs, default algorithm and math mode (no TF32).
//!
//! The context, the cuBLAS handle and every `unsafe` call are made in `launch.rs` (this folder),
//! as the methods of `ProjectionKernels` and `CublasHandle`, with the driver probe of
//! `src/gpu/device.rs`. Without a driver, opening
//! fails with [`SampleError::NoDevice`]; without libcublas, with [`SampleError::Cublas`]; neither
//! panics.

use super::{Backend, ProjectionInputs};
use crate::drift::batch_size::inputs::typed;
use batchsample::dtype::{Dtype, Logit};
use batchsample::error::{Result, SampleError};
use batchsample::gpu::DeviceInfo;
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits,
};
use std::sync::Arc;

/// An element type the GPU backends take: f32, f16 or bf16.
pub trait DeviceElement: Logit + DeviceRepr + ValidAsZeroBits {}
impl<T: Logit + DeviceRepr + ValidAsZeroBits> DeviceElement for T {}

/// `project_invariant_{f32,f16,bf16}`; loaded and launched by the methods in
/// `launch.rs` (this folder).
pub(crate) struct ProjectionKernels {
    pub(crate) f32: CudaFunction,
    pub(crate) f16: CudaFunction,
    pub(crate) bf16: CudaFunction,
}

/// A cuBLAS handle bound to the device's stream; opened and used by the methods in
/// `launch.rs` (this folder).
pub(crate) struct CublasHandle {
    pub(crate) blas: cudarc::cublas::CudaBlas,
    pub(crate) stream: Arc<CudaStream>,
}

/// One GPU, its stream, the projection kernels and (once [`GpuDevice::enable_cublas`] succeeded)
/// cuBLAS.
pub struct GpuDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    info: DeviceInfo,
    kernels: ProjectionKernels,
    cublas: Option<CublasHandle>,
}

impl GpuDevice {
    /// Opens device `ordinal`; [`SampleError::NoDevice`] when there is no driver or no GPU.
    pub fn open(ordinal: usize) -> Result<Self> {
        let (ctx, info, kernels) = ProjectionKernels::open(ordinal)?;
        // A stream of our own; every buffer is used on it in order.
        let stream = ctx.new_stream()?;
        Ok(GpuDevice {
            ctx,
            stream,
            info,
            kernels,
            cublas: None,
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// `NAME (sm_XY)` for reports.
    pub fn describe(&self) -> String {
        let (major, minor) = self.info.compute_capability;
        format!("{} (sm_{major}{minor})", self.info.name)
    }

    /// Loads cuBLAS (dlopened by name: `libcublas.so.13` etc. must be on the loader path);
    /// [`SampleError::Cublas`] when it is missing or fails to start.
    pub fn enable_cublas(&mut self) -> Result<()> {
        if self.cublas.is_none() {
            self.cublas = Some(CublasHandle::open(&self.stream)?);
        }
        Ok(())
    }

    /// Copies the projection to the device and sizes the batch buffers for `max_batch` rows.
    pub fn upload<T: DeviceElement>(
        &self,
        inputs: &ProjectionInputs,
        max_batch: usize,
    ) -> Result<GpuProjection<'_, T>> {
        let mismatch = || {
            SampleError::Shape(format!(
                "the inputs are {}, not {}",
                inputs.dtype.name(),
                T::DTYPE.name()
            ))
        };
        let weights = typed::<T>(&inputs.weights).ok_or_else(mismatch)?;
        let hidden = typed::<T>(&inputs.hidden).ok_or_else(mismatch)?;
        let (d, vocab) = (inputs.d, inputs.vocab);
        let max_batch = max_batch.max(1);
        if crate::drift::projection::projection_grid(max_batch, vocab).is_none()
            || i32::try_from(max_batch.max(vocab).max(d)).is_err()
        {
            return Err(SampleError::Capacity(format!(
                "vocab {vocab}, d {d}, batch {max_batch}: the projection kernel takes vocab up \
                 to 1,048,560 and cuBLAS sizes up to 2^31 - 1"
            )));
        }
        Ok(GpuProjection {
            device: self,
            pool: hidden.to_vec(),
            weights: self.stream.clone_htod(weights)?,
            batch_hidden: self.stream.alloc_zeros::<T>(max_batch * d.max(1))?,
            logits: self.stream.alloc_zeros::<f32>(max_batch * vocab)?,
            d,
            vocab,
            max_batch,
        })
    }

    /// The context the device's buffers live in.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
}

/// The projection and a hidden pool on the device, with batch buffers of `max_batch` rows.
pub struct GpuProjection<'a, T: DeviceRepr> {
    device: &'a GpuDevice,
    /// `[rows, d]` on the host: batches are gathered from it.
    pool: Vec<T>,
    weights: CudaSlice<T>,      // [vocab, d]
    batch_hidden: CudaSlice<T>, // [max_batch, d]
    logits: CudaSlice<f32>,     // [max_batch, vocab]
    d: usize,
    vocab: usize,
    max_batch: usize,
}

/// Which computation a [`GpuBackend`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuBackendKind {
    Cublas,
    Invariant,
}

impl GpuBackendKind {
    pub fn name(self) -> &'static str {
        match self {
            GpuBackendKind::Cublas => "cublas",
            GpuBackendKind::Invariant => "invariant",
        }
    }
}

impl std::str::FromStr for GpuBackendKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cublas" => Ok(GpuBackendKind::Cublas),
            "invariant" => Ok(GpuBackendKind::Invariant),
            other => Err(format!(
                "unknown backend '{other}' (expected cublas or invariant)"
            )),
        }
    }
}

impl<'a, T: DeviceElement> GpuProjection<'a, T> {
    /// A [`Backend`] running `kind` on these buffers.
    pub fn backend(&mut self, kind: GpuBackendKind) -> Result<GpuBackend<'_, 'a, T>> {
        if kind == GpuBackendKind::Cublas && self.device.cublas.is_none() {
            return Err(SampleError::Cublas(
                "not loaded (GpuDevice::enable_cublas was not called or failed)".into(),
            ));
        }
        Ok(GpuBackend { proj: self, kind })
    }

    /// Copies the pool rows `rows` into the batch buffer.
    fn gather(&mut self, rows: &[usize]) -> Result<()> {
        let d = self.d;
        let pool_rows = self.pool.len().checked_div(d).unwrap_or(0);
        if rows.is_empty() || rows.len() > self.max_batch || rows.iter().any(|&r| r >= pool_rows) {
            return Err(SampleError::Capacity(format!(
                "a batch of {} rows (buffers hold {}, the pool {pool_rows})",
                rows.len(),
                self.max_batch
            )));
        }
        let mut host = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            host.extend_from_slice(&self.pool[r * d..(r + 1) * d]);
        }
        let mut dst = self.batch_hidden.slice_mut(..host.len());
        self.device.stream.memcpy_htod(&host, &mut dst)?;
        Ok(())
    }

    /// Runs `kind` on the first `batch` rows of the batch buffer.
    fn run(&mut self, kind: GpuBackendKind, batch: usize) -> Result<()> {
        let dev = self.device;
        let (d, vocab) = (self.d, self.vocab);
        let hidden = self.batch_hidden.slice(..batch * d);
        let weights = self.weights.slice(..);
        let mut logits = self.logits.slice_mut(..batch * vocab);
        // SAFETY: hidden holds batch * d and weights vocab * d elements of T::DTYPE, logits
        // batch * vocab f32 (sliced above); upload() checked that the grid and cuBLAS's int
        // sizes fit.
        unsafe {
            match kind {
                GpuBackendKind::Invariant => dev.kernels.launch(
                    &dev.stream,
                    T::DTYPE,
                    &hidden,
                    &weights,
                    batch,
                    vocab,
                    d,
                    &mut logits,
                ),
                GpuBackendKind::Cublas => dev
                    .cublas
                    .as_ref()
                    .ok_or_else(|| SampleError::Cublas("not loaded".into()))?
                    .project(T::DTYPE, &hidden, &weights, batch, vocab, d, &mut logits),
            }
        }
    }
}

/// One backend over a [`GpuProjection`].
pub struct GpuBackend<'p, 'a, T: DeviceRepr> {
    proj: &'p mut GpuProjection<'a, T>,
    kind: GpuBackendKind,
}

impl<T: DeviceElement> Backend for GpuBackend<'_, '_, T> {
    fn name(&self) -> String {
        self.kind.name().into()
    }

    fn description(&self) -> String {
        let what = match (self.kind, T::DTYPE) {
            (GpuBackendKind::Cublas, Dtype::F32) => "sgemm (TN, default math mode)",
            (GpuBackendKind::Cublas, _) => "GemmEx (TN, f32 out, CUBLAS_COMPUTE_32F)",
            (GpuBackendKind::Invariant, _) => {
                "project_invariant (fixed order: 32 lane fma chains + xor butterfly, no split-K)"
            }
        };
        let what = match (self.kind, &self.proj.device.cublas) {
            (GpuBackendKind::Cublas, Some(h)) => match h.version() {
                Some(v) => format!("cuBLAS {}.{}.{} {what}", v / 10000, v / 100 % 100, v % 100),
                None => format!("cuBLAS {what}"),
            },
            _ => what.to_string(),
        };
        format!(
            "{what}, {} inputs, on {}",
            T::DTYPE.name(),
            self.proj.device.describe()
        )
    }

    fn batch_invariant(&self) -> bool {
        self.kind == GpuBackendKind::Invariant
    }

    fn project(&mut self, rows: &[usize], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.proj.vocab;
        if positions.iter().any(|&p| p >= rows.len()) {
            return Err(SampleError::Shape(format!(
                "positions {positions:?} in a batch of {}",
                rows.len()
            )));
        }
        self.proj.gather(rows)?;
        self.proj.run(self.kind, rows.len())?;
        let stream = &self.proj.device.stream;
        let out = positions
            .iter()
            .map(|&p| stream.clone_dtoh(&self.proj.logits.slice(p * vocab..(p + 1) * vocab)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        stream.synchronize()?;
        Ok(out)
    }

    fn time_ms(&mut self, batch: usize, iterations: usize) -> Result<Option<f64>> {
        let rows = self.proj.pool.len() / self.proj.d.max(1);
        let fill: Vec<usize> = (0..batch).map(|q| q % rows.max(1)).collect();
        self.proj.gather(&fill)?;
        // Two untimed runs: cuBLAS picks and loads its kernel on first use of a shape.
        for _ in 0..2 {
            self.proj.run(self.kind, batch)?;
        }
        let ctx = self.proj.device.context().clone();
        let stream = self.proj.device.stream.clone();
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = ctx.new_event(flags)?;
        let end = ctx.new_event(flags)?;
        start.record(&stream)?;
        for _ in 0..iterations.max(1) {
            self.proj.run(self.kind, batch)?;
        }
        end.record(&stream)?;
        let ms = start.elapsed_ms(&end)? as f64;
        Ok(Some(ms / iterations.max(1) as f64))
    }
}
