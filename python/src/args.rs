//! The native functions' arguments, as the Python layer (python/batchsample/) hands them over:
//! each sampling parameter a Python number (every row) or a 1-D array (one per row), already of
//! its element type and on the logits' device; the processing inputs as CSR arrays.

use crate::errors::value_error;
use crate::tensor::{Device, Elem, Tensor};
use batchsample::processing::{BiasLists, Penalties, Processing, TokenLists};
use batchsample::{DrawMethod, Numerics, SamplingParams};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt};

/// What every call reads, imported: the logits (a verification's target logits), their element
/// type, the sampling parameters, the processing inputs, and the caller's stream.
pub struct Inputs {
    pub logits: Tensor,
    pub elem: Elem,
    pub fields: Fields,
    pub processing: ProcessingArgs,
    pub stream: usize,
}

impl Inputs {
    /// Imports the logits (named `name` in errors; uint16 read as bf16 bits where
    /// `u16_as_bf16`), the parameters' dict and the processing dict.
    pub fn import(
        logits: &Bound<'_, PyAny>,
        name: &'static str,
        u16_as_bf16: bool,
        params: &Bound<'_, PyDict>,
        processing: Option<&Bound<'_, PyDict>>,
        stream: usize,
    ) -> PyResult<Inputs> {
        let logits = Tensor::import(logits, name, stream)?;
        let elem = match logits.elem {
            Elem::F32 | Elem::F16 | Elem::Bf16 => logits.elem,
            Elem::U16 if u16_as_bf16 => Elem::Bf16,
            _ => {
                return Err(logits.error(format!(
                    "dtype {} (expected float32, float16 or bfloat16)",
                    logits.elem.describe()
                )))
            }
        };
        let processing = ProcessingArgs::parse(processing, logits.device, stream)?;
        Ok(Inputs {
            elem,
            fields: Fields::parse(params, stream)?,
            processing,
            stream,
            logits,
        })
    }
}

/// One parameter: the same value for every row, or an array of one per row.
pub enum Field<T> {
    Scalar(T),
    Array(Tensor),
}

impl<T: Copy> Field<T> {
    fn parse(
        obj: &Bound<'_, PyAny>,
        name: &'static str,
        elems: &[Elem],
        stream: usize,
    ) -> PyResult<Self>
    where
        T: for<'a, 'py> FromPyObject<'a, 'py>,
    {
        if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>() {
            return obj
                .extract::<T>()
                .map(Field::Scalar)
                .map_err(|_| value_error(format!("{name}: {obj} is out of range")));
        }
        let t = Tensor::import(obj, name, stream)?;
        t.expect_elem(elems)?;
        Ok(Field::Array(t))
    }

    /// The value of row `r` from a host array (checked: `[batch]`, on the CPU).
    fn host_value(&self, r: usize) -> T {
        match self {
            Field::Scalar(v) => *v,
            // SAFETY: checked by `Fields::check` (CPU, `[batch]`, an element of T's size).
            Field::Array(t) => unsafe { t.host::<T>(r + 1)[r] },
        }
    }

    fn array(&self) -> Option<&Tensor> {
        match self {
            Field::Array(t) => Some(t),
            Field::Scalar(_) => None,
        }
    }
}

/// The six sampling parameters of a call.
pub struct Fields {
    pub temperature: Field<f32>,
    /// int32 arrays are read as uint32 (PyTorch has no uint32 arithmetic before 2.3).
    pub top_k: Field<u32>,
    pub top_p: Field<f32>,
    pub min_p: Field<f32>,
    /// int64 arrays are read as uint64 (the bits of the seed).
    pub seed: Field<u64>,
    pub step: Field<u64>,
}

impl Fields {
    /// From the Python layer's dict of the six parameters (each a number or an array); a
    /// missing one takes its default (off; seed 0, step 0).
    pub fn parse(params: &Bound<'_, PyDict>, stream: usize) -> PyResult<Fields> {
        let floats = [Elem::F32];
        let ints = [Elem::I32, Elem::U32];
        let longs = [Elem::I64, Elem::U64];
        let d = SamplingParams::default();
        fn field<T: Copy + for<'a, 'py> FromPyObject<'a, 'py>>(
            params: &Bound<'_, PyDict>,
            name: &'static str,
            elems: &[Elem],
            default: T,
            stream: usize,
        ) -> PyResult<Field<T>> {
            match params.get_item(name)? {
                Some(v) if !v.is_none() => Field::parse(&v, name, elems, stream),
                _ => Ok(Field::Scalar(default)),
            }
        }
        Ok(Fields {
            temperature: field(params, "temperature", &floats, d.temperature, stream)?,
            top_k: field(params, "top_k", &ints, d.top_k, stream)?,
            top_p: field(params, "top_p", &floats, d.top_p, stream)?,
            min_p: field(params, "min_p", &floats, d.min_p, stream)?,
            seed: field(params, "seed", &longs, d.seed, stream)?,
            step: field(params, "step", &longs, d.step, stream)?,
        })
    }

    pub fn arrays(&self) -> [Option<&Tensor>; 6] {
        [
            self.temperature.array(),
            self.top_k.array(),
            self.top_p.array(),
            self.min_p.array(),
            self.seed.array(),
            self.step.array(),
        ]
    }

    /// Every array `[rows]`, contiguous, on `device`.
    pub fn check(&self, rows: usize, device: Device) -> PyResult<()> {
        for t in self.arrays().into_iter().flatten() {
            t.expect_vector(rows)?;
            t.expect_device(device)?;
        }
        Ok(())
    }

    /// The scalars, with the arrays' fields at their defaults (the GPU path's fallback values).
    pub fn scalars(&self) -> SamplingParams {
        let or = |f: &Field<f32>, d: f32| match f {
            Field::Scalar(v) => *v,
            Field::Array(_) => d,
        };
        let d = SamplingParams::default();
        SamplingParams {
            temperature: or(&self.temperature, d.temperature),
            top_k: match self.top_k {
                Field::Scalar(v) => v,
                Field::Array(_) => d.top_k,
            },
            top_p: or(&self.top_p, d.top_p),
            min_p: or(&self.min_p, d.min_p),
            seed: match self.seed {
                Field::Scalar(v) => v,
                Field::Array(_) => d.seed,
            },
            step: match self.step {
                Field::Scalar(v) => v,
                Field::Array(_) => d.step,
            },
        }
    }

    /// One [`SamplingParams`] a row from host arrays (after [`Fields::check`] on the CPU).
    pub fn host_rows(&self, rows: usize) -> Vec<SamplingParams> {
        (0..rows)
            .map(|r| SamplingParams {
                temperature: self.temperature.host_value(r),
                top_k: self.top_k.host_value(r),
                top_p: self.top_p.host_value(r),
                min_p: self.min_p.host_value(r),
                seed: self.seed.host_value(r),
                step: self.step.host_value(r),
            })
            .collect()
    }
}

pub fn parse_method(s: &str) -> PyResult<DrawMethod> {
    match s {
        "gumbel" => Ok(DrawMethod::Gumbel),
        "inverse-cdf" | "inverse_cdf" => Ok(DrawMethod::InverseCdf),
        other => Err(value_error(format!(
            "method: unknown '{other}' (expected 'gumbel' or 'inverse-cdf')"
        ))),
    }
}

pub fn parse_numerics(s: &str) -> PyResult<Numerics> {
    match s {
        "fast" => Ok(Numerics::Fast),
        "invariant" => Ok(Numerics::Invariant),
        other => Err(value_error(format!(
            "numerics: unknown '{other}' (expected 'fast' or 'invariant')"
        ))),
    }
}

/// A CSR list per row: `offsets` (`[rows + 1]`, uint32) into `tokens` (uint32).
pub struct Lists {
    pub offsets: Tensor,
    pub tokens: Tensor,
}

/// The logits-processing inputs of a call, each optional (see `batchsample.processing`).
#[derive(Default)]
pub struct ProcessingArgs {
    /// int32 `[rows, ceil(vocab / 32)]`: bit `t % 32` of word `t / 32` allows token `t`.
    pub bitmask: Option<Tensor>,
    pub banned: Option<Lists>,
    /// The bias tokens' lists and one float32 bias a token.
    pub bias: Option<(Lists, Tensor)>,
    pub prompt: Option<Lists>,
    pub output: Option<Lists>,
    /// float32 `[1 or rows, 3]`: repetition, frequency, presence.
    pub penalties: Option<Tensor>,
    /// The most list entries one row holds, where the Python layer knows it (sizes the GPU's
    /// per-row edit table; without it, every list's entries in all).
    pub max_row_entries: Option<usize>,
}

impl ProcessingArgs {
    /// From the Python layer's dict (absent keys: none), each array on `device`.
    pub fn parse(
        dict: Option<&Bound<'_, PyDict>>,
        device: Device,
        stream: usize,
    ) -> PyResult<ProcessingArgs> {
        let Some(dict) = dict else {
            return Ok(ProcessingArgs::default());
        };
        let get = |key: &'static str, elems: &[Elem]| -> PyResult<Option<Tensor>> {
            match dict.get_item(key)? {
                Some(v) if !v.is_none() => {
                    let t = Tensor::import(&v, key, stream)?;
                    t.expect_elem(elems)?;
                    t.expect_device(device)?;
                    t.expect_contiguous()?;
                    Ok(Some(t))
                }
                _ => Ok(None),
            }
        };
        let ints = [Elem::I32, Elem::U32];
        let lists = |name: &'static str,
                     offsets: &'static str,
                     tokens: &'static str|
         -> PyResult<Option<Lists>> {
            match (get(offsets, &ints)?, get(tokens, &ints)?) {
                (Some(offsets), Some(tokens)) => Ok(Some(Lists { offsets, tokens })),
                (None, None) => Ok(None),
                _ => Err(value_error(format!(
                    "{name}: offsets and tokens go together"
                ))),
            }
        };
        let bias = match (
            lists("logit_bias", "bias_offsets", "bias_tokens")?,
            get("bias_values", &[Elem::F32])?,
        ) {
            (Some(l), Some(v)) => Some((l, v)),
            (None, None) => None,
            _ => return Err(value_error("logit_bias: tokens and values go together")),
        };
        Ok(ProcessingArgs {
            bitmask: get("allowed_mask", &ints)?,
            banned: lists("banned_tokens", "banned_offsets", "banned_tokens")?,
            bias,
            prompt: lists("prompt_tokens", "prompt_offsets", "prompt_tokens")?,
            output: lists("output_tokens", "output_offsets", "output_tokens")?,
            penalties: get("penalties", &[Elem::F32])?,
            max_row_entries: match dict.get_item("max_row_entries")? {
                Some(v) if !v.is_none() => Some(v.extract()?),
                _ => None,
            },
        })
    }

    pub fn is_none(&self) -> bool {
        self.bitmask.is_none()
            && self.banned.is_none()
            && self.bias.is_none()
            && self.prompt.is_none()
            && self.output.is_none()
            && self.penalties.is_none()
    }

    /// What the GPU's per-row edit table must hold: the most entries one row's lists have
    /// (given), else every list's entries in all (no row holds more).
    pub fn row_entries_bound(&self) -> usize {
        if let Some(n) = self.max_row_entries {
            return n;
        }
        let len = |l: &Option<Lists>| l.as_ref().map_or(0, |l| l.tokens.len());
        len(&self.banned)
            + self.bias.as_ref().map_or(0, |(l, _)| l.tokens.len())
            + len(&self.prompt)
            + len(&self.output)
    }

    /// A host view (CPU arrays, contiguous: checked by `parse`). The library checks the rest
    /// (shapes against the batch, offsets, tokens, penalty values) and says what is wrong.
    pub fn host_view(&self) -> PyResult<Processing<'_>> {
        // SAFETY (all below): CPU arrays of 4-byte elements (checked by `parse`), contiguous,
        // `len()` elements each; i32 and u32 share every bit pattern, Penalties is three f32s
        // (#[repr(C)]).
        fn lists(l: &Option<Lists>) -> TokenLists<'_> {
            match l {
                Some(l) => TokenLists {
                    offsets: unsafe { l.offsets.host(l.offsets.len()) },
                    tokens: unsafe { l.tokens.host(l.tokens.len()) },
                },
                None => TokenLists::default(),
            }
        }
        let bias = match &self.bias {
            Some((l, v)) => BiasLists {
                offsets: unsafe { l.offsets.host(l.offsets.len()) },
                tokens: unsafe { l.tokens.host(l.tokens.len()) },
                biases: unsafe { v.host(v.len()) },
            },
            None => BiasLists::default(),
        };
        let penalties: &[Penalties] = match &self.penalties {
            Some(t) => {
                if t.shape.len() != 2 || t.shape[1] != 3 {
                    return Err(t.error(format!("shape {:?} (expected [rows, 3])", t.shape)));
                }
                unsafe { t.host(t.shape[0]) }
            }
            None => &[],
        };
        Ok(Processing {
            bitmask: self
                .bitmask
                .as_ref()
                .map(|t| unsafe { t.host::<i32>(t.len()) }),
            banned: lists(&self.banned),
            bias,
            prompt: lists(&self.prompt),
            output: lists(&self.output),
            penalties,
        })
    }
}
