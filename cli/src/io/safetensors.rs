//! Logits in safetensors files (F32, F16 or BF16 tensors), through the `safetensors` crate.
//!
//! The tensor bytes sit at arbitrary offsets of the file image, so they are decoded element by
//! element with `from_le_bytes` (never cast in place: that would need alignment).

use ::safetensors::tensor::TensorView;
use ::safetensors::{Dtype as StDtype, SafeTensors};
use batchsample::dtype::LogitsBuf;
use batchsample::error::{Result, SampleError};
use half::{bf16, f16};
use std::path::Path;

const LOGIT_DTYPES: &str = "F32, F16 or BF16";

/// One tensor of logits read from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: LogitsBuf,
}

/// Decodes the logits tensor `name` of a safetensors file image, or its only tensor when `name`
/// is `None` (an error listing the names when there are several).
pub fn parse_logits(path: &Path, bytes: &[u8], name: Option<&str>) -> Result<Tensor> {
    let err = |msg: String| SampleError::file(path, msg);
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
    let mut names = st.names();
    names.sort_unstable();
    let listed = || {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = match (name, names.as_slice()) {
        (Some(n), _) => n,
        (None, []) => return Err(err("holds no tensors".into())),
        (None, [only]) => only,
        (None, many) => {
            return Err(err(format!(
                "holds {} tensors ({}); choose one with --tensor NAME",
                many.len(),
                listed()
            )))
        }
    };
    let view = st
        .tensor(name)
        .map_err(|_| err(format!("no tensor named '{name}' (it holds {})", listed())))?;
    let data = decode(&view).ok_or_else(|| SampleError::UnsupportedDtype {
        path: path.into(),
        dtype: format!("{} (tensor '{name}')", view.dtype()),
        expected: LOGIT_DTYPES,
    })?;
    Ok(Tensor {
        name: name.to_string(),
        shape: view.shape().to_vec(),
        data,
    })
}

/// Reads the logits tensor `name` (or the only tensor) of a safetensors file.
pub fn read_logits(path: impl AsRef<Path>, name: Option<&str>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| SampleError::file(path, e))?;
    parse_logits(path, &bytes, name)
}

fn decode(view: &TensorView<'_>) -> Option<LogitsBuf> {
    let bytes = view.data();
    Some(match view.dtype() {
        StDtype::F32 => LogitsBuf::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        StDtype::F16 => LogitsBuf::F16(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        StDtype::BF16 => LogitsBuf::Bf16(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        _ => return None,
    })
}

/// The little-endian bytes and safetensors dtype of a logits buffer.
fn encode(data: &LogitsBuf) -> (StDtype, Vec<u8>) {
    match data {
        LogitsBuf::F32(v) => (
            StDtype::F32,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        LogitsBuf::F16(v) => (
            StDtype::F16,
            v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        ),
        LogitsBuf::Bf16(v) => (
            StDtype::BF16,
            v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        ),
    }
}

/// Serialises named logits tensors `(name, shape, data)` as a safetensors file image.
pub fn to_bytes(tensors: &[(&str, &[usize], &LogitsBuf)]) -> Result<Vec<u8>> {
    let encoded: Vec<(&str, &[usize], StDtype, Vec<u8>)> = tensors
        .iter()
        .map(|&(name, shape, data)| {
            let (dtype, bytes) = encode(data);
            (name, shape, dtype, bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            TensorView::new(*dtype, shape.to_vec(), bytes)
                .map(|v| (*name, v))
                .map_err(|e| SampleError::Shape(format!("tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    ::safetensors::serialize(views, None)
        .map_err(|e| SampleError::Shape(format!("cannot serialise tensors: {e}")))
}

/// Writes named logits tensors `(name, shape, data)` to a safetensors file.
pub fn write(path: impl AsRef<Path>, tensors: &[(&str, &[usize], &LogitsBuf)]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(tensors)?;
    std::fs::write(path, bytes).map_err(|e| SampleError::file(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.safetensors")
    }

    #[test]
    fn round_trips_every_dtype() {
        let xs = [1.5f32, -2.0, f32::NEG_INFINITY, 0.25, 3.0, -7.5];
        let bufs = [
            LogitsBuf::F32(xs.to_vec()),
            LogitsBuf::F16(xs.iter().map(|&x| f16::from_f32(x)).collect()),
            LogitsBuf::Bf16(xs.iter().map(|&x| bf16::from_f32(x)).collect()),
        ];
        for buf in bufs {
            let bytes = to_bytes(&[("logits", &[2, 3], &buf)]).unwrap();
            let t = parse_logits(p(), &bytes, None).unwrap();
            assert_eq!(
                (t.name.as_str(), t.shape.as_slice()),
                ("logits", &[2usize, 3][..])
            );
            assert_eq!(t.data, buf);
            // Same answer when named.
            assert_eq!(parse_logits(p(), &bytes, Some("logits")).unwrap().data, buf);
        }
    }

    #[test]
    fn unaligned_data_decodes() {
        // A 2-byte tensor first pushes the f32 tensor off a 4-byte boundary inside the image
        // (the crate orders by dtype; whatever it does, decoding must not care).
        let a = LogitsBuf::Bf16(vec![bf16::from_f32(1.0)]);
        let b = LogitsBuf::F32(vec![1.0, 2.0, 3.0]);
        let bytes = to_bytes(&[("a", &[1], &a), ("b", &[3], &b)]).unwrap();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        let t = parse_logits(p(), &shifted[1..], Some("b")).unwrap();
        assert_eq!(t.data, b);
    }

    #[test]
    fn several_tensors_need_a_name() {
        let a = LogitsBuf::F32(vec![1.0, 2.0]);
        let bytes = to_bytes(&[("zeta", &[2], &a), ("alpha", &[1, 2], &a)]).unwrap();
        let msg = parse_logits(p(), &bytes, None).unwrap_err().to_string();
        assert!(
            msg.contains("'alpha', 'zeta'") && msg.contains("--tensor"),
            "{msg}"
        );
        let msg = parse_logits(p(), &bytes, Some("beta"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no tensor named 'beta'") && msg.contains("'alpha'"),
            "{msg}"
        );
        assert_eq!(
            parse_logits(p(), &bytes, Some("alpha")).unwrap().shape,
            vec![1, 2]
        );
        let empty = to_bytes(&[]).unwrap();
        let msg = parse_logits(p(), &empty, None).unwrap_err().to_string();
        assert!(msg.contains("no tensors"), "{msg}");
    }

    #[test]
    fn rejects_other_dtypes_and_garbage() {
        let ints = [1i32, 2, 3];
        let bytes: Vec<u8> = ints.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = TensorView::new(StDtype::I32, vec![3], &bytes).unwrap();
        let file = ::safetensors::serialize([("ids", view)], None).unwrap();
        match parse_logits(p(), &file, None).unwrap_err() {
            SampleError::UnsupportedDtype { dtype, .. } => {
                assert!(dtype.contains("I32"), "{dtype}")
            }
            other => panic!("{other}"),
        }

        for garbage in [&b""[..], b"garbage!garbage!", &file[..file.len() - 2]] {
            let msg = parse_logits(p(), garbage, None).unwrap_err().to_string();
            assert!(
                msg.starts_with("t.safetensors: not a valid safetensors file"),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
        }
    }
}
