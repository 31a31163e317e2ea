//! Arrays from Python without a copy: any DLPack producer (PyTorch, NumPy, CuPy, JAX) is imported
//! through dlpark and kept alive while the Rust side reads or writes its memory in place.

use crate::errors::value_error;
use dlpark::ffi::{DLDataTypeCode, DLDevice, DLDeviceType};
use dlpark::python::consumer::{stream, DlpackStream, ImportRequest, ImportedDlpack, StreamArg};
use dlpark::DlpackFlags;
use pyo3::prelude::*;
use std::ffi::c_void;

/// Where an array's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The element types the package reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    Bf16,
    I32,
    U32,
    I64,
    U64,
    /// 16-bit integers: bf16 logits from a NumPy array, which has no bf16 of its own (the Python
    /// layer views `ml_dtypes.bfloat16` arrays as uint16 and says so).
    U16,
    /// Anything else, described as `float64`, `int8`, `bool`, ...
    Other(&'static str, u8),
}

impl Elem {
    pub fn name(self) -> &'static str {
        match self {
            Elem::F32 => "float32",
            Elem::F16 => "float16",
            Elem::Bf16 => "bfloat16",
            Elem::I32 => "int32",
            Elem::U32 => "uint32",
            Elem::I64 => "int64",
            Elem::U64 => "uint64",
            Elem::U16 => "uint16",
            Elem::Other(kind, _) => kind,
        }
    }

    /// The dtype as NumPy and PyTorch name it (`float64`, `int8`, ...).
    pub fn describe(self) -> String {
        match self {
            Elem::Other(kind, bits) => format!("{kind}{bits}"),
            known => known.name().to_string(),
        }
    }
}

/// One imported array: its address (data pointer plus byte offset), element type, shape and
/// strides in elements. The DLPack owner stays inside, so the memory lives as long as this.
pub struct Tensor {
    _owner: ImportedDlpack,
    pub name: &'static str,
    pub addr: usize,
    pub elem: Elem,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub device: Device,
    pub read_only: bool,
}

/// The consumer stream of an import: the caller's CUDA stream, or none (CPU).
struct CudaStreamArg(usize);

// SAFETY: the value is the caller's current stream of the array's device (the Python layer
// passes `torch.cuda.current_stream(device).cuda_stream`), live for the call.
unsafe impl DlpackStream for CudaStreamArg {
    fn as_python_arg(&self, _py: Python<'_>, _device: DLDevice) -> PyResult<StreamArg> {
        Ok(stream::cuda(self.0 as *mut c_void))
    }

    unsafe fn wait_for_producer(&self, _device: DLDevice, producer: *mut c_void) -> PyResult<bool> {
        // The usual case (a tensor made on the current stream) needs no ordering; any other
        // producer stream goes through `__dlpack__(stream=...)`, where the producer orders it.
        Ok(producer as usize == self.0)
    }
}

impl Tensor {
    /// Imports `obj` (named `name` in errors) for work on `stream` (a `CUstream` as an integer;
    /// ignored for CPU arrays).
    pub fn import(obj: &Bound<'_, PyAny>, name: &'static str, stream: usize) -> PyResult<Tensor> {
        let request = ImportRequest::new(obj.as_borrowed())
            .map_err(|e| value_error(format!("{name}: not a DLPack array ({e})")))?;
        let cuda = matches!(request.device(), Ok(d) if d.device_type == DLDeviceType::CUDA);
        let consumer = CudaStreamArg(stream);
        let owner = request
            .import(cuda.then_some(&consumer as &dyn DlpackStream), None)
            .map_err(|e| value_error(format!("{name}: DLPack import failed ({e})")))?;
        let read_only = owner.flags().contains(DlpackFlags::READ_ONLY);
        let view = owner
            .validate()
            .map_err(|e| value_error(format!("{name}: invalid DLPack tensor ({e})")))?;
        let device = match view.device().device_type {
            DLDeviceType::CPU | DLDeviceType::CUDAHOST => Device::Cpu,
            DLDeviceType::CUDA => Device::Cuda(view.device().device_id as usize),
            other => {
                return Err(value_error(format!(
                    "{name}: arrays on DLPack device type {} are not supported (CPU or CUDA)",
                    other.0
                )))
            }
        };
        let dtype = view.dtype();
        let elem = match (dtype.code, dtype.bits, dtype.lanes) {
            (DLDataTypeCode::FLOAT, 32, 1) => Elem::F32,
            (DLDataTypeCode::FLOAT, 16, 1) => Elem::F16,
            (DLDataTypeCode::BFLOAT, 16, 1) => Elem::Bf16,
            (DLDataTypeCode::INT, 32, 1) => Elem::I32,
            (DLDataTypeCode::UINT, 32, 1) => Elem::U32,
            (DLDataTypeCode::INT, 64, 1) => Elem::I64,
            (DLDataTypeCode::UINT, 64, 1) => Elem::U64,
            (DLDataTypeCode::UINT | DLDataTypeCode::INT, 16, 1) => Elem::U16,
            (code, bits, _) => Elem::Other(
                match code {
                    DLDataTypeCode::INT => "int",
                    DLDataTypeCode::UINT => "uint",
                    DLDataTypeCode::FLOAT => "float",
                    DLDataTypeCode::BFLOAT => "bfloat",
                    DLDataTypeCode::BOOL => "bool",
                    DLDataTypeCode::COMPLEX => "complex",
                    _ => "dtype code ",
                },
                bits,
            ),
        };
        let shape: Vec<usize> = view.shape().iter().map(|&d| d as usize).collect();
        let strides = view
            .strides_or_compact()
            .map_err(|e| value_error(format!("{name}: invalid strides ({e})")))?;
        if strides.iter().any(|&s| s < 0) {
            return Err(value_error(format!(
                "{name}: negative strides are not supported"
            )));
        }
        let strides = strides.iter().map(|&s| s as usize).collect();
        let addr = view.data_ptr() as usize + view.byte_offset() as usize;
        Ok(Tensor {
            _owner: owner,
            name,
            addr,
            elem,
            shape,
            strides,
            device,
            read_only,
        })
    }

    /// Elements in all.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// A ValueError naming this array.
    pub fn error(&self, what: impl std::fmt::Display) -> PyErr {
        value_error(format!("{}: {what}", self.name))
    }

    pub fn expect_elem(&self, allowed: &[Elem]) -> PyResult<Elem> {
        if allowed.contains(&self.elem) {
            return Ok(self.elem);
        }
        let names: Vec<&str> = allowed.iter().map(|e| e.name()).collect();
        Err(self.error(format!(
            "dtype {} (expected {})",
            self.elem.describe(),
            names.join(" or ")
        )))
    }

    /// A 1-D array of `len` elements, contiguous.
    pub fn expect_vector(&self, len: usize) -> PyResult<()> {
        if self.shape != [len] {
            return Err(self.error(format!("shape {:?} (expected [{len}])", self.shape)));
        }
        self.expect_contiguous()
    }

    /// Contiguous, any shape: `len()` elements back to back.
    pub fn expect_contiguous(&self) -> PyResult<()> {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d > 1 && s != expected {
                return Err(self.error("not contiguous"));
            }
            expected *= d;
        }
        Ok(())
    }

    /// `[rows, cols]` with unit column stride: returns the row stride in elements.
    pub fn expect_rows(&self) -> PyResult<(usize, usize, usize)> {
        let [rows, cols] = self.shape[..] else {
            return Err(self.error(format!("shape {:?} (expected 2-D)", self.shape)));
        };
        if rows == 0 {
            return Ok((0, cols, cols));
        }
        if cols > 1 && self.strides[1] != 1 {
            return Err(self.error("rows must be contiguous (column stride 1)"));
        }
        let row_stride = if rows > 1 { self.strides[0] } else { cols };
        if rows > 1 && row_stride < cols {
            return Err(self.error("rows overlap (row stride below the row length)"));
        }
        Ok((rows, cols, row_stride))
    }

    pub fn expect_device(&self, device: Device) -> PyResult<()> {
        if self.device != device {
            return Err(self.error(format!("on {} but the logits are on {device}", self.device)));
        }
        Ok(())
    }

    pub fn expect_writable(&self) -> PyResult<()> {
        if self.read_only {
            return Err(self.error("read-only"));
        }
        Ok(())
    }

    /// The first `span` elements from the address, as host memory.
    ///
    /// # Safety
    /// A CPU array whose element type is `T`'s size and whose memory holds `span` elements from
    /// its address (the shape and strides checked), not written while the slice lives.
    pub unsafe fn host<T>(&self, span: usize) -> &[T] {
        debug_assert_eq!(self.device, Device::Cpu);
        if span == 0 {
            return &[];
        }
        std::slice::from_raw_parts(self.addr as *const T, span)
    }

    /// [`Tensor::host`], writable.
    ///
    /// # Safety
    /// As for [`Tensor::host`], and nothing else reads or writes the memory while it lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn host_mut<T>(&self, span: usize) -> &mut [T] {
        debug_assert_eq!(self.device, Device::Cpu);
        if span == 0 {
            return &mut [];
        }
        std::slice::from_raw_parts_mut(self.addr as *mut T, span)
    }
}
