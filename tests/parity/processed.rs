//! Processed batches for the kernels' tests (host shim and GPU): random per-row processing and
//! the logits the exact reference samples for them.

use super::batches::mixed_batch;
use batchsample::processing::{
    bitmask_words, process_row, Penalties, Processing, ProcessingBuf, RowProcessing,
};
use batchsample::{Logit, SamplingParams};
use rand::rngs::StdRng;
use rand::Rng;

/// A random row's processing: a few banned and biased tokens, a prompt and an output with
/// repeats, penalties on or off.
pub fn random_processing(g: &mut StdRng, vocab: usize) -> RowProcessing {
    let token = |g: &mut StdRng| g.random_range(0..vocab as u32);
    let mut logit_bias: Vec<(u32, f32)> = (0..g.random_range(0..5))
        .map(|_| {
            let b = [-3.0, 2.5, f32::NEG_INFINITY, 5.0, 0.0][g.random_range(0..5)];
            (token(g), b)
        })
        .collect();
    logit_bias.sort_by_key(|b| b.0);
    logit_bias.dedup_by_key(|b| b.0);
    let penalties = if g.random_bool(0.3) {
        Penalties::OFF
    } else {
        Penalties {
            repetition: [1.0, 1.2, 0.8][g.random_range(0..3)],
            frequency: [0.0, 0.5, -0.3][g.random_range(0..3)],
            presence: [0.0, 0.5][g.random_range(0..2)],
        }
    };
    // Outputs drawn from a few tokens, so that they repeat.
    let hot: Vec<u32> = (0..8).map(|_| token(g)).collect();
    RowProcessing {
        banned_tokens: (0..g.random_range(0..4)).map(|_| token(g)).collect(),
        logit_bias,
        prompt_tokens: (0..g.random_range(0..20)).map(|_| token(g)).collect(),
        output_tokens: (0..g.random_range(0..30))
            .map(|_| hot[g.random_range(0..hot.len())])
            .collect(),
        penalties,
    }
}

/// A bitmask allowing about `allowed` of each row's tokens.
pub fn random_mask(g: &mut StdRng, batch: usize, vocab: usize, allowed: f64) -> Vec<i32> {
    let words = bitmask_words(vocab);
    (0..batch * words)
        .map(|_| (0..32).fold(0i32, |w, j| w | (i32::from(g.random_bool(allowed)) << j)))
        .collect()
}

/// What the exact reference samples for a processed batch: each row processed on the CPU (an
/// exact f32 step, the same bits the kernels compute) and then sampled as an unprocessed row, or
/// the raw row where it holds a NaN or +inf (which fails the row whatever processing does).
pub fn reference_logits<T: Logit>(logits: &[T], vocab: usize, processing: &Processing) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    let mut row_out = Vec::new();
    for (r, row) in logits.chunks(vocab).enumerate() {
        if row.iter().any(|x| {
            let x = x.to_f32();
            x.is_nan() || x == f32::INFINITY
        }) {
            out.extend(row.iter().map(|x| x.to_f32()));
        } else {
            process_row(row, &processing.row(r, vocab), &mut row_out);
            out.extend_from_slice(&row_out);
        }
    }
    out
}

/// A mixed batch (parameters of every kind, ties, masks, failing rows) with processing on every
/// row, and a bitmask when `masked`.
pub fn processed_batch(
    g: &mut StdRng,
    batch: usize,
    vocab: usize,
    masked: bool,
) -> (Vec<f32>, Vec<SamplingParams>, ProcessingBuf) {
    let (logits, params) = mixed_batch(g, batch, vocab);
    let rows: Vec<RowProcessing> = (0..batch).map(|_| random_processing(g, vocab)).collect();
    let mask = masked.then(|| random_mask(g, batch, vocab, 0.7));
    (logits, params, ProcessingBuf::from_rows(&rows, mask))
}
