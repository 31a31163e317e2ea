//! Files in and out: `[batch, vocab]` logits from `.npy` or safetensors, token arrays to `.npy`,
//! and per-row sampling parameters from JSON (with the seed each row gets when it names none).
//!
//! Every failure is a [`SampleError`]: [`SampleError::File`] for unreadable or malformed files,
//! [`SampleError::UnsupportedDtype`] for element types the sampler does not read,
//! [`SampleError::Shape`] for arrays or parameter lists of the wrong shape, and
//! [`SampleError::InvalidParam`] (naming row and field) for out-of-range parameters.

pub mod npy;
pub mod processing;
pub mod safetensors;
pub mod verify;

use batchsample::dtype::LogitsBuf;
use batchsample::error::{Result, SampleError};
use batchsample::params::SamplingParams;
use batchsample::processing::RowProcessing;
use std::path::Path;

/// The container a logits file was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Safetensors,
}

/// `[batch, vocab]` logits read from a file, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Logits {
    pub data: LogitsBuf,
    pub batch: usize,
    pub vocab: usize,
    pub format: Format,
    /// The safetensors tensor read (`None` for `.npy`).
    pub tensor: Option<String>,
}

/// Reads `[batch, vocab]` logits (a 1-D array is one row) from a `.npy` file (`<f4` or `<f2`, C
/// order, little-endian) or a safetensors file (F32, F16 or BF16; `tensor` names the tensor, and
/// may be left out when the file holds just one).
///
/// The format is recognised by the `.npy` magic or the file extension; other files are tried as
/// safetensors.
pub fn read_logits(path: impl AsRef<Path>, tensor: Option<&str>) -> Result<Logits> {
    let path = path.as_ref();
    let array = read_logits_array(path, tensor)?;
    let (batch, vocab) = logits_shape(path, &array.shape)?;
    Ok(Logits {
        data: array.data,
        batch,
        vocab,
        format: array.format,
        tensor: array.tensor,
    })
}

/// A logits array of any shape read from a file, row-major (see [`read_logits_array`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LogitsArray {
    pub data: LogitsBuf,
    pub shape: Vec<usize>,
    pub format: Format,
    /// The safetensors tensor read (`None` for `.npy`).
    pub tensor: Option<String>,
}

/// Reads a floating-point array of any shape as [`read_logits`] reads logits (the same formats,
/// dtypes and errors); the caller checks the shape.
pub fn read_logits_array(path: impl AsRef<Path>, tensor: Option<&str>) -> Result<LogitsArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| SampleError::file(path, e))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if npy::has_magic(&bytes) || ext.as_deref() == Some("npy") {
        if tensor.is_some() {
            return Err(SampleError::file(
                path,
                "is a .npy file, which holds one unnamed array: a tensor name applies to \
                 safetensors files only",
            ));
        }
        let array = npy::parse_logits(path, &bytes)?;
        let data = match array.data {
            npy::NpyData::F32(v) => LogitsBuf::F32(v),
            npy::NpyData::F16(v) => LogitsBuf::F16(v),
            npy::NpyData::I32(_) => unreachable!("parse_logits only returns float data"),
        };
        return Ok(LogitsArray {
            data,
            shape: array.shape,
            format: Format::Npy,
            tensor: None,
        });
    }
    let t = match safetensors::parse_logits(path, &bytes, tensor) {
        Ok(t) => t,
        Err(SampleError::File { message, .. }) if ext.as_deref() != Some("safetensors") => {
            return Err(SampleError::file(
                path,
                format!("neither a .npy file (no \\x93NUMPY magic) nor safetensors ({message})"),
            ))
        }
        Err(e) => return Err(e),
    };
    Ok(LogitsArray {
        data: t.data,
        shape: t.shape,
        format: Format::Safetensors,
        tensor: Some(t.name),
    })
}

/// `[vocab]` is one row, `[batch, vocab]` is `batch` rows; anything else, or an empty array, is
/// a shape error.
fn logits_shape(path: &Path, shape: &[usize]) -> Result<(usize, usize)> {
    let shape_err = |what: String| {
        SampleError::Shape(format!(
            "{}: logits must be [vocab] or [batch, vocab], {what}",
            path.display()
        ))
    };
    let (batch, vocab) = match *shape {
        [vocab] => (1, vocab),
        [batch, vocab] => (batch, vocab),
        _ => return Err(shape_err(format!("got shape {shape:?}"))),
    };
    if batch == 0 || vocab == 0 {
        return Err(shape_err(format!("got the empty shape {shape:?}")));
    }
    Ok((batch, vocab))
}

/// Writes sampled tokens as a `.npy` int32 array of `[draws, batch]` (failed rows hold -1).
pub fn write_tokens_npy(
    path: impl AsRef<Path>,
    draws: usize,
    batch: usize,
    tokens: &[i32],
) -> Result<()> {
    npy::write(path, &[draws, batch], tokens)
}

// The seed derivation is the library's, so the Python package and the CLI agree on it.
pub use batchsample::params::{row_seed, splitmix64, ROW_MIX};

/// `flags` for every one of `batch` rows, each row with the seed [`row_seed`] derives from
/// `flags.seed`.
pub fn uniform_row_params(flags: &SamplingParams, batch: usize) -> Vec<SamplingParams> {
    (0..batch)
        .map(|row| SamplingParams {
            seed: row_seed(flags.seed, row),
            ..*flags
        })
        .collect()
}

/// What `--params` (or the flags alone) asks of each row: its sampling parameters and its
/// logits processing.
#[derive(Clone, Debug, PartialEq)]
pub struct RowRequests {
    pub params: Vec<SamplingParams>,
    pub processing: Vec<RowProcessing>,
}

impl RowRequests {
    /// Every row with the flags' values (`shared` processing, the seed of [`row_seed`]).
    pub fn uniform(flags: &SamplingParams, shared: &RowProcessing, batch: usize) -> Self {
        RowRequests {
            params: uniform_row_params(flags, batch),
            processing: vec![shared.clone(); batch],
        }
    }
}

/// Per-row requests from JSON text: a list of `batch` objects with [`SamplingParams`]' fields
/// (`temperature`, `top_k`, `top_p`, `min_p`, `seed`, `step`) and the processing fields of
/// [`processing::PROCESSING_FIELDS`]. A field left out (or `null`) takes its value from `flags`
/// (or `shared`), except `seed`, which then comes from [`row_seed`]`(flags.seed, row)`.
/// Unknown fields, wrong types, a list of another length and out-of-range sampling parameters
/// are errors naming the row (and the field); processing values are checked against the
/// vocabulary by [`batchsample::processing::Processing::validate`].
pub fn row_requests_from_json(
    path: &Path,
    json: &str,
    flags: &SamplingParams,
    shared: &RowProcessing,
    batch: usize,
) -> Result<RowRequests> {
    use serde_json::Value;
    let err = |msg: String| SampleError::file(path, msg);
    let rows = match serde_json::from_str::<Value>(json) {
        Ok(Value::Array(rows)) => rows,
        Ok(other) => {
            return Err(err(format!(
                "expected a JSON list of parameter objects, got {}",
                json_kind(&other)
            )))
        }
        Err(e) => return Err(err(format!("invalid JSON: {e}"))),
    };
    if rows.len() != batch {
        return Err(SampleError::Shape(format!(
            "{}: {} parameter rows for a batch of {batch} logit rows",
            path.display(),
            rows.len()
        )));
    }
    let Value::Object(defaults) =
        serde_json::to_value(flags).expect("SamplingParams serialises to an object")
    else {
        unreachable!("SamplingParams serialises to an object")
    };
    let fields = || {
        let mut names: Vec<&str> = defaults.keys().map(String::as_str).collect();
        names.extend(processing::PROCESSING_FIELDS);
        names.join(", ")
    };
    let mut params = Vec::with_capacity(batch);
    let mut processings = Vec::with_capacity(batch);
    for (row, value) in rows.into_iter().enumerate() {
        let Value::Object(mut given) = value else {
            return Err(err(format!(
                "row {row}: expected an object with fields {}, got {}",
                fields(),
                json_kind(&value)
            )));
        };
        processings.push(processing::take_row_processing(
            path, row, &mut given, shared,
        )?);
        let mut merged = defaults.clone();
        merged.insert("seed".into(), Value::from(row_seed(flags.seed, row)));
        for (key, v) in given {
            if !defaults.contains_key(&key) {
                return Err(err(format!(
                    "row {row}: unknown field '{key}' (expected one of {})",
                    fields()
                )));
            }
            if v.is_null() {
                continue;
            }
            // Each field on its own first, so that a type error names it.
            let mut probe = defaults.clone();
            probe.insert(key.clone(), v.clone());
            if let Err(e) = serde_json::from_value::<SamplingParams>(Value::Object(probe)) {
                return Err(err(format!("row {row}: field {key}: {e}")));
            }
            merged.insert(key, v);
        }
        let p: SamplingParams = serde_json::from_value(Value::Object(merged))
            .map_err(|e| err(format!("row {row}: {e}")))?;
        params.push(p);
    }
    params
        .iter()
        .enumerate()
        .try_for_each(|(row, p)| p.validate(row))?;
    Ok(RowRequests {
        params,
        processing: processings,
    })
}

/// Reads per-row requests from a JSON file; see [`row_requests_from_json`].
pub fn read_row_requests(
    path: impl AsRef<Path>,
    flags: &SamplingParams,
    shared: &RowProcessing,
    batch: usize,
) -> Result<RowRequests> {
    let path = path.as_ref();
    let json = std::fs::read_to_string(path).map_err(|e| SampleError::file(path, e))?;
    row_requests_from_json(path, &json, flags, shared, batch)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn splitmix64_matches_the_reference() {
        // Successive outputs of the reference SplitMix64 generator seeded with 0 are
        // splitmix64(0), splitmix64(gamma), splitmix64(2 gamma), ...
        let gamma = 0x9E37_79B9_7F4A_7C15u64;
        let expected = [
            0xE220_A839_7B1D_CDAF_u64,
            0x6E78_9E6A_A1B9_65F4,
            0x06C4_5D18_8009_454F,
        ];
        for (i, &e) in expected.iter().enumerate() {
            assert_eq!(splitmix64(gamma.wrapping_mul(i as u64)), e, "output {i}");
        }
    }

    #[test]
    fn row_seeds_are_distinct_and_documented() {
        let seeds: std::collections::HashSet<u64> = (0..10_000).map(|r| row_seed(42, r)).collect();
        assert_eq!(seeds.len(), 10_000);
        assert_eq!(row_seed(7, 3), splitmix64(7 ^ 3u64.wrapping_mul(ROW_MIX)));
        assert_eq!(row_seed(7, 0), splitmix64(7));
        let rows = uniform_row_params(
            &SamplingParams {
                seed: 5,
                top_k: 3,
                ..Default::default()
            },
            3,
        );
        assert_eq!(
            rows[2],
            SamplingParams {
                seed: row_seed(5, 2),
                top_k: 3,
                ..Default::default()
            }
        );
    }

    fn params(json: &str, batch: usize) -> Result<Vec<SamplingParams>> {
        let flags = SamplingParams {
            temperature: 0.7,
            top_k: 5,
            seed: 99,
            step: 4,
            ..Default::default()
        };
        row_requests_from_json(
            Path::new("p.json"),
            json,
            &flags,
            &RowProcessing::default(),
            batch,
        )
        .map(|r| r.params)
    }

    #[test]
    fn missing_fields_take_the_flags() {
        let rows = params(
            r#"[{}, {"top_p": 0.5, "seed": 1}, {"temperature": 0, "seed": null, "step": 9}]"#,
            3,
        )
        .unwrap();
        let flags = SamplingParams {
            temperature: 0.7,
            top_k: 5,
            seed: 99,
            step: 4,
            ..Default::default()
        };
        assert_eq!(
            rows[0],
            SamplingParams {
                seed: row_seed(99, 0),
                ..flags
            }
        );
        assert_eq!(
            rows[1],
            SamplingParams {
                top_p: 0.5,
                seed: 1,
                ..flags
            }
        );
        assert_eq!(
            rows[2],
            SamplingParams {
                temperature: 0.0,
                seed: row_seed(99, 2),
                step: 9,
                ..flags
            }
        );
    }

    #[test]
    fn bad_parameter_files_name_row_and_field() {
        let cases = [
            (r#"[{}, {"top_p": 2}]"#, "row 1: invalid top_p"),
            (r#"[{}, {"top_q": 2}]"#, "row 1: unknown field 'top_q'"),
            (r#"[{"top_k": -1}, {}]"#, "row 0: field top_k"),
            (r#"[{"seed": "x"}, {}]"#, "row 0: field seed"),
            (r#"[{}, 3]"#, "row 1: expected an object"),
            (r#"{"top_k": 1}"#, "expected a JSON list"),
            (r#"[{}, {}"#, "invalid JSON"),
            (r#"[{}]"#, "1 parameter rows for a batch of 2"),
        ];
        for (json, needle) in cases {
            let e = params(json, 2).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert!(matches!(params("[{}]", 2), Err(SampleError::Shape(_))));
        assert!(matches!(
            params(r#"[{}, {"min_p": 1}]"#, 2),
            Err(SampleError::InvalidParam {
                row: 1,
                field: "min_p",
                ..
            })
        ));
    }

    #[test]
    fn reads_logits_of_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let xs = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];

        let f32_path = dir.path().join("a.npy");
        npy::write(&f32_path, &[2, 3], &xs).unwrap();
        let l = read_logits(&f32_path, None).unwrap();
        assert_eq!((l.batch, l.vocab, l.format), (2, 3, Format::Npy));
        assert_eq!(l.data, LogitsBuf::F32(xs.to_vec()));

        let f16_path = dir.path().join("no_extension");
        let h: Vec<f16> = xs.iter().map(|&x| f16::from_f32(x)).collect();
        npy::write(&f16_path, &[6], &h).unwrap();
        let l = read_logits(&f16_path, None).unwrap();
        assert_eq!((l.batch, l.vocab), (1, 6));
        assert!(read_logits(&f16_path, Some("x")).is_err());

        let st_path = dir.path().join("b.safetensors");
        let b = LogitsBuf::Bf16(xs.iter().map(|&x| bf16::from_f32(x)).collect());
        safetensors::write(&st_path, &[("logits", &[3, 2], &b)]).unwrap();
        let l = read_logits(&st_path, None).unwrap();
        assert_eq!((l.batch, l.vocab, l.format), (3, 2, Format::Safetensors));
        assert_eq!((l.data, l.tensor.as_deref()), (b, Some("logits")));

        let bad_shape = dir.path().join("c.npy");
        npy::write(&bad_shape, &[1, 2, 3], &xs).unwrap();
        assert!(matches!(
            read_logits(&bad_shape, None),
            Err(SampleError::Shape(_))
        ));
        let empty = dir.path().join("d.npy");
        npy::write::<f32>(&empty, &[0, 3], &[]).unwrap();
        assert!(matches!(
            read_logits(&empty, None),
            Err(SampleError::Shape(_))
        ));

        let ints = dir.path().join("e.npy");
        npy::write(&ints, &[2], &[1i32, 2]).unwrap();
        assert!(matches!(
            read_logits(&ints, None),
            Err(SampleError::UnsupportedDtype { .. })
        ));

        let garbage = dir.path().join("f.bin");
        std::fs::write(&garbage, b"definitely not logits").unwrap();
        let msg = read_logits(&garbage, None).unwrap_err().to_string();
        assert!(msg.contains("neither a .npy file"), "{msg}");

        let missing = read_logits(dir.path().join("nope.npy"), None).unwrap_err();
        assert!(matches!(missing, SampleError::File { .. }));
    }

    #[test]
    fn tokens_are_written_as_int32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        write_tokens_npy(&path, 2, 3, &[0, 1, -1, 2, 2, 2]).unwrap();
        let back = npy::read(&path).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.data, npy::NpyData::I32(vec![0, 1, -1, 2, 2, 2]));
    }
}
