//! The output arrays a call writes in place (allocated by the Python layer in the logits'
//! framework and device, or passed by the caller as `out=`).

use crate::errors::value_error;
use crate::tensor::{Device, Elem, Tensor};
use pyo3::prelude::*;

/// A sampling call's outputs: int32 tokens, float32 logprobs, int32 status (`[rows]` each), and
/// with `top_n > 0` the `[rows, top_n]` top-n pair.
pub struct SampleOuts {
    pub tokens: Tensor,
    pub logprobs: Tensor,
    pub status: Tensor,
    pub top: Option<(Tensor, Tensor)>,
}

impl SampleOuts {
    pub fn parse(
        tokens: &Bound<'_, PyAny>,
        logprobs: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        top: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
        stream: usize,
    ) -> PyResult<SampleOuts> {
        Ok(SampleOuts {
            tokens: Tensor::import(tokens, "out tokens", stream)?,
            logprobs: Tensor::import(logprobs, "out logprobs", stream)?,
            status: Tensor::import(status, "out status", stream)?,
            top: match top {
                Some((t, l)) => Some((
                    Tensor::import(&t, "out top_tokens", stream)?,
                    Tensor::import(&l, "out top_logprobs", stream)?,
                )),
                None => None,
            },
        })
    }

    /// Shapes, element types, device and writability for `rows` rows and `top_n`.
    pub fn check(&self, rows: usize, top_n: usize, device: Device) -> PyResult<()> {
        let vector = |t: &Tensor, elems: &[Elem]| -> PyResult<()> {
            t.expect_elem(elems)?;
            t.expect_vector(rows)?;
            t.expect_device(device)?;
            t.expect_writable()
        };
        vector(&self.tokens, &[Elem::I32])?;
        vector(&self.logprobs, &[Elem::F32])?;
        vector(&self.status, &[Elem::I32, Elem::U32])?;
        match (&self.top, top_n) {
            (None, 0) => Ok(()),
            (Some((t, l)), n) if n > 0 => {
                for (x, elem) in [(t, Elem::I32), (l, Elem::F32)] {
                    x.expect_elem(&[elem])?;
                    if x.shape != [rows, n] {
                        return Err(
                            x.error(format!("shape {:?} (expected [{rows}, {n}])", x.shape))
                        );
                    }
                    x.expect_contiguous()?;
                    x.expect_device(device)?;
                    x.expect_writable()?;
                }
                Ok(())
            }
            _ => Err(value_error(
                "top-n outputs are given exactly when top_n > 0",
            )),
        }
    }
}

/// A verification call's outputs: int32 `accepted` and status (`[requests]`), int32 tokens and
/// float32 logprobs (`[requests, width]`, width at least the most drafts a request has + 1).
pub struct VerifyOuts {
    pub accepted: Tensor,
    pub tokens: Tensor,
    pub logprobs: Tensor,
    pub status: Tensor,
}

impl VerifyOuts {
    pub fn parse(
        accepted: &Bound<'_, PyAny>,
        tokens: &Bound<'_, PyAny>,
        logprobs: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        stream: usize,
    ) -> PyResult<VerifyOuts> {
        Ok(VerifyOuts {
            accepted: Tensor::import(accepted, "out accepted", stream)?,
            tokens: Tensor::import(tokens, "out tokens", stream)?,
            logprobs: Tensor::import(logprobs, "out logprobs", stream)?,
            status: Tensor::import(status, "out status", stream)?,
        })
    }

    /// Checks every array for `requests` and returns the row width of tokens and logprobs.
    pub fn check(&self, requests: usize, device: Device) -> PyResult<usize> {
        for (t, elems) in [
            (&self.accepted, &[Elem::I32][..]),
            (&self.status, &[Elem::I32, Elem::U32][..]),
        ] {
            t.expect_elem(elems)?;
            t.expect_vector(requests)?;
        }
        let width = self.tokens.shape.get(1).copied().unwrap_or(0);
        for (t, elem) in [(&self.tokens, Elem::I32), (&self.logprobs, Elem::F32)] {
            t.expect_elem(&[elem])?;
            if t.shape != [requests, width] || width == 0 {
                return Err(t.error(format!(
                    "shape {:?} (expected [{requests}, max drafts + 1])",
                    t.shape
                )));
            }
            t.expect_contiguous()?;
        }
        for t in [&self.accepted, &self.tokens, &self.logprobs, &self.status] {
            t.expect_device(device)?;
            t.expect_writable()?;
        }
        Ok(width)
    }
}
