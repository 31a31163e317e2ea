//! `batchsample._native`: the Python package's Rust side. The Python layer
//! (python/batchsample/__init__.py) normalises the arguments (scalars or per-row arrays of the
//! right element type on the logits' device, outputs allocated in the logits' framework, the
//! current CUDA stream) and calls these functions, which read and write the arrays in place
//! through DLPack: host arrays go through the library's CPU reference, CUDA arrays through its
//! kernels on the caller's stream.

mod args;
mod cpu;
mod errors;
mod gpu;
mod outputs;
mod tensor;

use args::{parse_method, parse_numerics, Inputs};
use batchsample::processing::LogprobsMode;
use batchsample::verify::VerifyOptions;
use batchsample::SampleOptions;
use cpu::DraftArgs;
use errors::value_error;
use outputs::{SampleOuts, VerifyOuts};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensor::{Device, Tensor};

/// Holds one device's kernels and workspaces across calls (opened at the first CUDA call;
/// host arrays need none), so that a decode loop allocates nothing after its first step of the
/// largest shape.
#[pyclass(module = "batchsample._native")]
struct Sampler {
    max_batch: usize,
    gpu: Option<gpu::GpuState>,
    last_logits_address: Option<usize>,
}

fn parse_logprobs(s: &str) -> PyResult<LogprobsMode> {
    match s {
        "processed" => Ok(LogprobsMode::Processed),
        "raw" => Ok(LogprobsMode::Raw),
        other => Err(value_error(format!(
            "logprobs: unknown '{other}' (expected 'processed' or 'raw')"
        ))),
    }
}

impl Sampler {
    /// The GPU state for `ordinal`, opened on first use.
    fn gpu(&mut self, ordinal: usize) -> PyResult<&mut gpu::GpuState> {
        if let Some(g) = &self.gpu {
            if g.ordinal() != ordinal {
                return Err(value_error(format!(
                    "logits on cuda:{ordinal} but this Sampler runs on cuda:{}: use one Sampler \
                     a device",
                    g.ordinal()
                )));
            }
        } else {
            self.gpu = Some(gpu::GpuState::open(ordinal, self.max_batch)?);
        }
        Ok(self.gpu.as_mut().expect("opened above"))
    }
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(signature = (max_batch = 0))]
    fn new(max_batch: usize) -> Self {
        Sampler {
            max_batch,
            gpu: None,
            last_logits_address: None,
        }
    }

    /// The CUDA device this sampler has opened, or None.
    #[getter]
    fn device(&self) -> Option<usize> {
        self.gpu.as_ref().map(|g| g.ordinal())
    }

    /// The address the last call read its logits from (diagnostics: equal to the input's
    /// own data pointer, since nothing is copied).
    #[getter]
    fn last_logits_address(&self) -> Option<usize> {
        self.last_logits_address
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        logits, tokens, logprobs, status, top_tokens, top_logprobs, *,
        params, top_n, method, numerics, processing, logprobs_mode, u16_as_bf16, stream
    ))]
    fn sample(
        &mut self,
        py: Python<'_>,
        logits: &Bound<'_, PyAny>,
        tokens: &Bound<'_, PyAny>,
        logprobs: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        top_tokens: Option<Bound<'_, PyAny>>,
        top_logprobs: Option<Bound<'_, PyAny>>,
        params: &Bound<'_, PyDict>,
        top_n: usize,
        method: &str,
        numerics: &str,
        processing: Option<Bound<'_, PyDict>>,
        logprobs_mode: &str,
        u16_as_bf16: bool,
        stream: usize,
    ) -> PyResult<()> {
        let inputs = Inputs::import(
            logits,
            "logits",
            u16_as_bf16,
            params,
            processing.as_ref(),
            stream,
        )?;
        let top = match (top_tokens, top_logprobs) {
            (Some(t), Some(l)) => Some((t, l)),
            _ => None,
        };
        let out = SampleOuts::parse(tokens, logprobs, status, top, stream)?;
        let opts = SampleOptions {
            method: parse_method(method)?,
            numerics: parse_numerics(numerics)?,
            top_n,
        };
        let mode = parse_logprobs(logprobs_mode)?;
        self.last_logits_address = Some(inputs.logits.addr);
        match inputs.logits.device {
            Device::Cpu => cpu::sample(py, &inputs, mode, &opts, &out),
            Device::Cuda(ordinal) => self.gpu(ordinal)?.sample(&inputs, mode, &opts, &out),
        }
    }

    /// The Rust side of `sample` alone, `iterations` times on CUDA arrays imported once:
    /// seconds a call, on the host (launches only; the caller synchronises around it). The
    /// Python benchmark (python/benches/call_overhead.py) sets it against a whole `sample`
    /// call from Python: the binding's overhead.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (logits, tokens, logprobs, status, *, params, iterations, stream))]
    fn time_rust_calls(
        &mut self,
        logits: &Bound<'_, PyAny>,
        tokens: &Bound<'_, PyAny>,
        logprobs: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        params: &Bound<'_, PyDict>,
        iterations: usize,
        stream: usize,
    ) -> PyResult<f64> {
        let inputs = Inputs::import(logits, "logits", false, params, None, stream)?;
        let Device::Cuda(ordinal) = inputs.logits.device else {
            return Err(inputs.logits.error("time_rust_calls times the CUDA path"));
        };
        let out = SampleOuts::parse(tokens, logprobs, status, None, stream)?;
        let opts = SampleOptions::default();
        let gpu = self.gpu(ordinal)?;
        gpu.sample(&inputs, LogprobsMode::Processed, &opts, &out)?; // warm-up
        let start = std::time::Instant::now();
        for _ in 0..iterations {
            gpu.sample(&inputs, LogprobsMode::Processed, &opts, &out)?;
        }
        Ok(start.elapsed().as_secs_f64() / iterations.max(1) as f64)
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        target, draft_offsets, draft_tokens, draft_probs, accepted, tokens, logprobs, status, *,
        params, method, numerics, processing, u16_as_bf16, stream
    ))]
    fn verify(
        &mut self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        draft_offsets: &Bound<'_, PyAny>,
        draft_tokens: &Bound<'_, PyAny>,
        draft_probs: Option<Bound<'_, PyAny>>,
        accepted: &Bound<'_, PyAny>,
        tokens: &Bound<'_, PyAny>,
        logprobs: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        params: &Bound<'_, PyDict>,
        method: &str,
        numerics: &str,
        processing: Option<Bound<'_, PyDict>>,
        u16_as_bf16: bool,
        stream: usize,
    ) -> PyResult<()> {
        let inputs = Inputs::import(
            target,
            "target_logits",
            u16_as_bf16,
            params,
            processing.as_ref(),
            stream,
        )?;
        let drafts = DraftArgs {
            offsets: Tensor::import(draft_offsets, "draft offsets", stream)?,
            tokens: Tensor::import(draft_tokens, "draft_tokens", stream)?,
            probs: match draft_probs {
                Some(p) => Some(Tensor::import(&p, "draft_probs", stream)?),
                None => None,
            },
        };
        let out = VerifyOuts::parse(accepted, tokens, logprobs, status, stream)?;
        let opts = VerifyOptions {
            method: parse_method(method)?,
            numerics: parse_numerics(numerics)?,
        };
        self.last_logits_address = Some(inputs.logits.addr);
        match inputs.logits.device {
            Device::Cpu => cpu::verify(py, &inputs, &drafts, &opts, &out),
            Device::Cuda(ordinal) => self.gpu(ordinal)?.verify(&inputs, &drafts, &opts, &out),
        }
    }
}

/// The reference's verdict on each row's token: a list of `(kind, why)`, `kind` one of `same`,
/// `explained` (float rounding at a top-p / min-p boundary or a near-tie) or `unexplained`.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (logits, tokens, *, params, method, u16_as_bf16))]
fn compare(
    py: Python<'_>,
    logits: &Bound<'_, PyAny>,
    tokens: &Bound<'_, PyAny>,
    params: &Bound<'_, PyDict>,
    method: &str,
    u16_as_bf16: bool,
) -> PyResult<Vec<(&'static str, String)>> {
    let inputs = Inputs::import(logits, "logits", u16_as_bf16, params, None, 0)?;
    if inputs.logits.device != Device::Cpu {
        let why = "compare reads host arrays (the Python layer copies CUDA ones)";
        return Err(inputs.logits.error(why));
    }
    let tokens = Tensor::import(tokens, "tokens", 0)?;
    cpu::compare(py, &inputs, &tokens, parse_method(method)?)
}

/// The seeds `batchsample sample --seed base` gives rows `0..rows`: the library's `row_seed`.
#[pyfunction]
fn row_seeds(base: u64, rows: usize) -> Vec<u64> {
    (0..rows)
        .map(|r| batchsample::params::row_seed(base, r))
        .collect()
}

/// Whether a CUDA driver and device are usable.
#[pyfunction]
fn gpu_available() -> bool {
    batchsample::gpu::gpu_available()
}

/// What `inspect` reports: address, shape, strides (elements), dtype, device.
type Seen = (usize, Vec<usize>, Vec<usize>, String, String);

/// The address, shape, strides (elements), dtype and device the package sees in `array`
/// (diagnostics: how an input is read, with no copy).
#[pyfunction]
fn inspect(array: &Bound<'_, PyAny>) -> PyResult<Seen> {
    let t = Tensor::import(array, "array", 0)?;
    let (shape, strides) = (t.shape.clone(), t.strides.clone());
    Ok((
        t.addr,
        shape,
        strides,
        t.elem.describe(),
        t.device.to_string(),
    ))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Sampler>()?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(row_seeds, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_available, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add("NoDeviceError", m.py().get_type::<errors::NoDeviceError>())?;
    m.add("MAX_TOP_N", batchsample::gpu::MAX_TOP_N)?;
    Ok(())
}
