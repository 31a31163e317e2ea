//! Logits processing from the command line: a row's `--params` fields (`banned_tokens`,
//! `logit_bias`, `prompt_tokens`, `output_tokens` and the three penalties) over the values the
//! flags give every row, and the allowed-token bitmask from `.npy`.
//!
//! Here only the JSON's shape is checked (a list of token ids, a bias that is a number); what the
//! values mean — a token id below the vocabulary, a finite bias or `-inf`, `r > 0` — is
//! [`batchsample::processing::Processing::validate`]'s, which names the row and the field.

use super::npy::{self, NpyData};
use batchsample::error::{Result, SampleError};
use batchsample::processing::{bitmask_words, RowProcessing};
use serde_json::{Map, Value};
use std::path::Path;

/// The `--params` fields that set a row's processing (the rest are [`batchsample::SamplingParams`]').
pub const PROCESSING_FIELDS: [&str; 7] = [
    "banned_tokens",
    "logit_bias",
    "prompt_tokens",
    "output_tokens",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
];

/// Removes the processing fields from one row's JSON object and returns the row's processing:
/// `shared` (the flags' values) with the fields the row gives (a `null` field keeps the flag's).
pub fn take_row_processing(
    path: &Path,
    row: usize,
    object: &mut Map<String, Value>,
    shared: &RowProcessing,
) -> Result<RowProcessing> {
    let mut out = shared.clone();
    for field in PROCESSING_FIELDS {
        let Some(value) = object.remove(field) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let err = |what: &str| {
            SampleError::file(path, format!("row {row}: field {field}: expected {what}"))
        };
        match field {
            "banned_tokens" => out.banned_tokens = token_list(&value).ok_or_else(|| err(TOKENS))?,
            "prompt_tokens" => out.prompt_tokens = token_list(&value).ok_or_else(|| err(TOKENS))?,
            "output_tokens" => out.output_tokens = token_list(&value).ok_or_else(|| err(TOKENS))?,
            "logit_bias" => out.logit_bias = bias_list(&value).ok_or_else(|| err(BIASES))?,
            _ => {
                let x = number(&value).ok_or_else(|| err(NUMBER))?;
                match field {
                    "repetition_penalty" => out.penalties.repetition = x,
                    "frequency_penalty" => out.penalties.frequency = x,
                    _ => out.penalties.presence = x,
                }
            }
        }
    }
    Ok(out)
}

const TOKENS: &str = "a list of token ids (integers >= 0)";
const BIASES: &str =
    "an object {\"token\": bias} or a list of [token, bias] pairs (a bias is a number or \"-inf\")";
const NUMBER: &str = "a number";

fn token(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|t| u32::try_from(t).ok())
}

fn token_list(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?.iter().map(token).collect()
}

/// A JSON number, or a string that spells one ("-inf": JSON has no infinities).
fn number(v: &Value) -> Option<f32> {
    match v {
        Value::Number(n) => n.as_f64().map(|x| x as f32),
        Value::String(s) => s.trim().parse::<f32>().ok(),
        _ => None,
    }
}

/// OpenAI's `{"token": bias}` object (token ids as keys), or a list of `[token, bias]` pairs.
fn bias_list(v: &Value) -> Option<Vec<(u32, f32)>> {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, b)| Some((k.trim().parse::<u32>().ok()?, number(b)?)))
            .collect(),
        Value::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array()?.as_slice() {
                [t, b] => Some((token(t)?, number(b)?)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Reads an allowed-token bitmask: `int32 [batch, ceil(vocab / 32)]` (a 1-D array is one row).
pub fn read_bitmask(path: impl AsRef<Path>, batch: usize, vocab: usize) -> Result<Vec<i32>> {
    let path = path.as_ref();
    let array = npy::read(path)?;
    let words = bitmask_words(vocab);
    let NpyData::I32(mask) = array.data else {
        return Err(SampleError::file(
            path,
            format!(
                "a bitmask is int32 (<i4), got {} elements",
                array.data.dtype().descr()
            ),
        ));
    };
    let shape_ok = match array.shape.as_slice() {
        [b, w] => *b == batch && *w == words,
        [w] => batch == 1 && *w == words,
        _ => false,
    };
    if !shape_ok {
        return Err(SampleError::Shape(format!(
            "{}: a bitmask of shape {:?}; a batch of {batch} rows of vocab {vocab} needs \
             [{batch}, {words}] (ceil(vocab / 32) int32 words a row)",
            path.display(),
            array.shape
        )));
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use batchsample::processing::Penalties;

    fn take(json: &str, shared: &RowProcessing) -> Result<(RowProcessing, Map<String, Value>)> {
        let Value::Object(mut object) = serde_json::from_str(json).unwrap() else {
            panic!("not an object")
        };
        take_row_processing(Path::new("p.json"), 3, &mut object, shared).map(|p| (p, object))
    }

    #[test]
    fn every_field_is_read_and_removed() {
        let (p, rest) = take(
            r#"{"top_k": 5, "banned_tokens": [1, 2], "logit_bias": {"7": 1.5, "9": "-inf"},
                "prompt_tokens": [3], "output_tokens": [4, 4], "repetition_penalty": 1.2,
                "frequency_penalty": 0.5, "presence_penalty": -0.25}"#,
            &RowProcessing::default(),
        )
        .unwrap();
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["top_k"]);
        assert_eq!(
            p,
            RowProcessing {
                banned_tokens: vec![1, 2],
                logit_bias: vec![(7, 1.5), (9, f32::NEG_INFINITY)],
                prompt_tokens: vec![3],
                output_tokens: vec![4, 4],
                penalties: Penalties {
                    repetition: 1.2,
                    frequency: 0.5,
                    presence: -0.25
                },
            }
        );
    }

    #[test]
    fn pairs_are_bias_too_and_missing_or_null_fields_keep_the_shared_values() {
        let shared = RowProcessing {
            banned_tokens: vec![0],
            penalties: Penalties {
                repetition: 1.1,
                ..Penalties::OFF
            },
            ..Default::default()
        };
        let (p, _) = take(
            r#"{"logit_bias": [[5, -2], [6, "inf"]], "banned_tokens": null}"#,
            &shared,
        )
        .unwrap();
        assert_eq!(p.banned_tokens, [0]);
        assert_eq!(p.penalties.repetition, 1.1);
        // +inf is read; validation refuses it, naming the row and field.
        assert_eq!(p.logit_bias, [(5, -2.0), (6, f32::INFINITY)]);
    }

    #[test]
    fn malformed_fields_name_row_and_field() {
        for (json, field) in [
            (r#"{"banned_tokens": [-1]}"#, "banned_tokens"),
            (r#"{"prompt_tokens": [1.5]}"#, "prompt_tokens"),
            (r#"{"output_tokens": 3}"#, "output_tokens"),
            (r#"{"output_tokens": [4294967296]}"#, "output_tokens"),
            (r#"{"logit_bias": {"x": 1}}"#, "logit_bias"),
            (r#"{"logit_bias": [[1, 2, 3]]}"#, "logit_bias"),
            (r#"{"logit_bias": {"1": true}}"#, "logit_bias"),
            (r#"{"repetition_penalty": "strong"}"#, "repetition_penalty"),
        ] {
            let e = take(json, &RowProcessing::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("row 3") && e.contains(field), "{json}: {e}");
        }
    }
}
