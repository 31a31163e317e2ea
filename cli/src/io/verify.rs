//! The inputs of `batchsample verify` (speculative-decoding verification, [`batchsample::verify`])
//! for a uniform `n` drafts per request: target logits `[batch, n + 1, vocab]` (`.npy` float32 /
//! float16 or safetensors F32 / F16 / BF16), draft tokens int32 `[batch, n]` and optional draft
//! probabilities `[batch, n, vocab]` (`.npy` float32 or float16), with their shapes checked
//! against each other; and each request's processing spread over its `n + 1` target rows.

use super::npy::{self, NpyData};
use super::read_logits_array;
use batchsample::dtype::LogitsBuf;
use batchsample::error::{Result, SampleError};
use batchsample::processing::RowProcessing;
use std::path::Path;

/// What `--draft-tokens` accepts, for error messages.
const TOKEN_DTYPES: &str = "<i4 (int32), little-endian";
/// What `--draft-probs` accepts, for error messages.
const PROB_DTYPES: &str = "<f4 (float32) or <f2 (float16), little-endian";

/// A batch of `batch` requests of `n` drafts each over a vocabulary of `vocab`, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyInputs {
    /// The target logits, `[batch * (n + 1), vocab]` row-major.
    pub target: LogitsBuf,
    pub batch: usize,
    pub n: usize,
    pub vocab: usize,
    /// The draft tokens, `[batch * n]` (checked non-negative; not checked against `vocab`: a
    /// token past it is the request's `invalid_draft` status).
    pub draft_tokens: Vec<u32>,
    /// The draft distributions, `[batch * n, vocab]`; `None` for point-mass drafts.
    pub draft_probs: Option<Vec<f32>>,
}

/// Reads and cross-checks the three files. A shape that does not fit the others is a
/// [`SampleError::Shape`] naming both files and both shapes; a negative draft token or a file of
/// the wrong element type is an error naming the file.
pub fn read_verify_inputs(
    target: &Path,
    tensor: Option<&str>,
    draft_tokens: &Path,
    draft_probs: Option<&Path>,
) -> Result<VerifyInputs> {
    let t = read_logits_array(target, tensor)?;
    let (batch, n, vocab) = match *t.shape.as_slice() {
        [b, m, v] if b > 0 && m > 0 && v > 0 => (b, m - 1, v),
        _ => {
            return Err(SampleError::Shape(format!(
                "{}: target logits must be [batch, n + 1, vocab] with no empty dimension, got \
                 shape {:?}",
                target.display(),
                t.shape
            )))
        }
    };
    let mismatch = |path: &Path, what: &str, shape: &[usize], need: String| {
        SampleError::Shape(format!(
            "{}: {what} of shape {shape:?} do not match the target logits {} of shape {:?} \
             (need {need})",
            path.display(),
            target.display(),
            t.shape
        ))
    };

    let tokens = npy::read(draft_tokens)?;
    let NpyData::I32(tokens_i32) = tokens.data else {
        return Err(SampleError::UnsupportedDtype {
            path: draft_tokens.into(),
            dtype: tokens.data.dtype().descr().into(),
            expected: TOKEN_DTYPES,
        });
    };
    if tokens.shape != [batch, n] {
        return Err(mismatch(
            draft_tokens,
            "draft tokens",
            &tokens.shape,
            format!("[batch, n] = [{batch}, {n}]"),
        ));
    }
    if let Some(i) = tokens_i32.iter().position(|&d| d < 0) {
        return Err(SampleError::file(
            draft_tokens,
            format!(
                "request {} draft {}: token {} is negative",
                i / n,
                i % n,
                tokens_i32[i]
            ),
        ));
    }
    let draft_tokens_u32 = tokens_i32.iter().map(|&d| d as u32).collect();

    let probs = match draft_probs {
        None => None,
        Some(path) => {
            let q = npy::read(path)?;
            let values = match q.data {
                NpyData::F32(v) => v,
                NpyData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
                NpyData::I32(_) => {
                    return Err(SampleError::UnsupportedDtype {
                        path: path.into(),
                        dtype: q.data.dtype().descr().into(),
                        expected: PROB_DTYPES,
                    })
                }
            };
            if q.shape != [batch, n, vocab] {
                return Err(mismatch(
                    path,
                    "draft probabilities",
                    &q.shape,
                    format!("[batch, n, vocab] = [{batch}, {n}, {vocab}]"),
                ));
            }
            Some(values)
        }
    };
    Ok(VerifyInputs {
        target: t.data,
        batch,
        n,
        vocab,
        draft_tokens: draft_tokens_u32,
        draft_probs: probs,
    })
}

/// Each request's processing over its `n + 1` target rows, as [`batchsample::verify`] wants it:
/// target position `j` (0-based) of request `r` gets `requests[r]` with the drafts
/// `d_1..d_j` appended to its output tokens (the history the penalties see at that position).
/// A request with a draft past the vocabulary keeps its own output tokens at every position: it
/// is not verified (its status is `invalid_draft`), and its lists stay valid.
pub fn target_row_processing(
    requests: &[RowProcessing],
    draft_tokens: &[u32],
    n: usize,
    vocab: usize,
) -> Vec<RowProcessing> {
    let mut rows = Vec::with_capacity(requests.len() * (n + 1));
    for (r, request) in requests.iter().enumerate() {
        let drafts = &draft_tokens[r * n..(r + 1) * n];
        let usable = drafts.iter().all(|&d| (d as usize) < vocab);
        for j in 0..=n {
            let mut row = request.clone();
            if usable {
                row.output_tokens.extend_from_slice(&drafts[..j]);
            }
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn write_inputs(
        dir: &Path,
        target_shape: &[usize],
        tokens: (&[usize], &[i32]),
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let target = dir.join("t.npy");
        let len: usize = target_shape.iter().product();
        npy::write(&target, target_shape, &vec![0.5f32; len]).unwrap();
        let drafts = dir.join("d.npy");
        npy::write(&drafts, tokens.0, tokens.1).unwrap();
        (target, drafts)
    }

    #[test]
    fn reads_matching_shapes_and_n_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (t, d) = write_inputs(dir.path(), &[2, 3, 5], (&[2, 2], &[1, 2, 3, 9]));
        let q = dir.path().join("q.npy");
        let probs: Vec<f16> = vec![f16::from_f32(0.25); 20];
        npy::write(&q, &[2, 2, 5], &probs).unwrap();
        let inputs = read_verify_inputs(&t, None, &d, Some(&q)).unwrap();
        assert_eq!((inputs.batch, inputs.n, inputs.vocab), (2, 2, 5));
        // A token past the vocabulary is read: it is a status, not an error.
        assert_eq!(inputs.draft_tokens, [1, 2, 3, 9]);
        assert_eq!(inputs.draft_probs, Some(vec![0.25; 20]));

        let (t, d) = write_inputs(dir.path(), &[3, 1, 4], (&[3, 0], &[]));
        let inputs = read_verify_inputs(&t, None, &d, None).unwrap();
        assert_eq!((inputs.batch, inputs.n, inputs.vocab), (3, 0, 4));
        assert!(inputs.draft_tokens.is_empty());
    }

    #[test]
    fn bad_inputs_name_the_file_and_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let err = |t: &Path, d: &Path, q: Option<&Path>| {
            let e = read_verify_inputs(t, None, d, q).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
            e
        };
        let (t, d) = write_inputs(p, &[2, 5], (&[2, 4], &[0; 8]));
        assert!(err(&t, &d, None).contains("[batch, n + 1, vocab]"));
        let (t, d) = write_inputs(p, &[2, 3, 5], (&[3, 2], &[0; 6]));
        let e = err(&t, &d, None);
        assert!(e.contains("[3, 2]") && e.contains("[2, 3, 5]"), "{e}");
        let (t, d) = write_inputs(p, &[2, 3, 5], (&[2, 2], &[0, 1, -4, 2]));
        let e = err(&t, &d, None);
        assert!(e.contains("d.npy") && e.contains("-4") && e.contains("request 1"));
        let (t, d) = write_inputs(p, &[2, 3, 5], (&[2, 2], &[0; 4]));
        let q = p.join("q.npy");
        npy::write(&q, &[2, 2, 4], &[0.25f32; 16]).unwrap();
        let e = err(&t, &d, Some(&q));
        assert!(e.contains("q.npy") && e.contains("[2, 2, 4]") && e.contains("[2, 2, 5]"));
        npy::write(&q, &[2, 2, 5], &[1i32; 20]).unwrap();
        assert!(err(&t, &d, Some(&q)).contains("unsupported dtype <i4"));
        npy::write(&d, &[2, 2], &[0.0f32; 4]).unwrap();
        assert!(err(&t, &d, None).contains("unsupported dtype <f4"));
    }

    #[test]
    fn processing_grows_the_output_by_the_drafts_before_each_position() {
        let request = RowProcessing {
            output_tokens: vec![7],
            ..Default::default()
        };
        let rows = target_row_processing(&[request.clone(), request], &[1, 2, 3, 99], 2, 10);
        let outputs: Vec<&[u32]> = rows.iter().map(|r| r.output_tokens.as_slice()).collect();
        assert_eq!(
            outputs,
            [&[7][..], &[7, 1], &[7, 1, 2], &[7], &[7], &[7]],
            "the second request's draft 99 is past the vocabulary"
        );
    }
}
