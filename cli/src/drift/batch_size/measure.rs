//! Experiment 2's analysis, independent of the backend: the f64 reference, the batch-size sweep
//! of one backend against its own batch 1, and the report that puts backends side by side.

use super::report::{BackendReport, BatchStats, Cost, Flip, PositionStats, Report};
use super::report::{RowReference, TwinCheck};
use super::{argmax, positions_in, ulp_diff, Backend, Config, ProjectionInputs};
use crate::drift::projection::{chunk_len, exact_dot, invariant_dot};
use crate::drift::{ulp_bin, ULP_BINS};
use batchsample::error::{Result, SampleError};
use rayon::prelude::*;

/// Rows whose f64 relative top-2 margin is below this count as near ties in the report.
pub const NEAR_TIE: f64 = 1e-3;

/// Every pool row's greedy token and top-2 margin under the f64 reference (exact products,
/// compensated sums).
pub fn reference(inputs: &ProjectionInputs) -> Vec<RowReference> {
    let (d, vocab) = (inputs.d, inputs.vocab);
    let weights = inputs.weights_f32();
    (0..inputs.rows)
        .map(|r| {
            let h = inputs.hidden_row(r);
            let logits: Vec<f64> = (0..vocab)
                .into_par_iter()
                .map(|v| exact_dot(&h, &weights[v * d..(v + 1) * d]))
                .collect();
            let best = |skip: Option<usize>| {
                (0..vocab)
                    .filter(|&v| Some(v) != skip)
                    .fold(None, |b: Option<usize>, v| match b {
                        Some(i) if logits[i] >= logits[v] => Some(i),
                        _ => Some(v),
                    })
                    .unwrap_or(0)
            };
            let top = best(None);
            let runner_up = best(Some(top));
            let margin = logits[top] - logits[runner_up];
            RowReference {
                row: r,
                top_token: top,
                top_logit: logits[top],
                runner_up,
                runner_up_logit: logits[runner_up],
                margin,
                relative_margin: margin / logits[top].abs().max(f64::MIN_POSITIVE),
            }
        })
        .collect()
}

/// One backend's sweep: its report and its batch-1 logits of every pool row.
pub struct Measured {
    pub report: BackendReport,
    pub batch_1: Vec<Vec<f32>>,
}

/// How one row at one position differs from its batch-1 logits.
struct RowDiff {
    differing: u64,
    max_ulp: u64,
    max_abs: f64,
    histogram: [u64; ULP_BINS.len()],
}

fn compare(base: &[f32], got: &[f32]) -> RowDiff {
    let mut diff = RowDiff {
        differing: 0,
        max_ulp: 0,
        max_abs: 0.0,
        histogram: [0; ULP_BINS.len()],
    };
    for (&a, &b) in base.iter().zip(got) {
        let ulp = ulp_diff(a, b);
        diff.differing += u64::from(a.to_bits() != b.to_bits());
        diff.max_ulp = diff.max_ulp.max(ulp);
        diff.max_abs = diff.max_abs.max((a as f64 - b as f64).abs());
        diff.histogram[ulp_bin(ulp)] += 1;
    }
    diff
}

/// `backend.project`, checked to return one `vocab`-long row per position.
fn project(
    backend: &mut dyn Backend,
    vocab: usize,
    batch: &[usize],
    at: &[usize],
) -> Result<Vec<Vec<f32>>> {
    let out = backend.project(batch, at)?;
    if out.len() != at.len() || out.iter().any(|r| r.len() != vocab) {
        return Err(SampleError::Shape(format!(
            "the backend returned {} rows for {} positions (each must hold {vocab} logits)",
            out.len(),
            at.len()
        )));
    }
    Ok(out)
}

/// Runs `backend` over every batch size and position of `config` (see the module docs for how
/// batches are filled) and compares each measured row with the same row at batch 1.
pub fn measure(
    backend: &mut dyn Backend,
    vocab: usize,
    reference: &[RowReference],
    config: &Config,
) -> Result<Measured> {
    config.validate()?;
    let rows = reference.len();
    if rows == 0 {
        return Err(SampleError::Shape(
            "experiment 2 needs at least one pool row".into(),
        ));
    }
    let mut batch_1 = Vec::with_capacity(rows);
    for r in 0..rows {
        batch_1.extend(project(backend, vocab, &[r], &[0])?);
    }
    let mut report = BackendReport {
        name: backend.name(),
        description: backend.description(),
        batch_invariant: backend.batch_invariant(),
        batch_1_matches_f64: (0..rows)
            .filter(|&r| argmax(&batch_1[r]) == reference[r].top_token)
            .count(),
        batches: Vec::new(),
        flips: Vec::new(),
    };
    for &b in &config.batches {
        let at = positions_in(&config.positions, b);
        let mut st = BatchStats {
            batch: b,
            ulp_histogram: vec![0; ULP_BINS.len()],
            per_position: at
                .iter()
                .map(|&p| PositionStats {
                    position: p,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        for j in 0..rows {
            let batch: Vec<usize> = (0..b).map(|q| (j + q) % rows).collect();
            let got = project(backend, vocab, &batch, &at)?;
            for (k, (&p, logits)) in at.iter().zip(&got).enumerate() {
                let r = batch[p];
                let base = &batch_1[r];
                let diff = compare(base, logits);
                let (t1, t) = (argmax(base), argmax(logits));
                let flipped = t1 != t;
                st.rows_compared += 1;
                st.logits_compared += vocab as u64;
                st.logits_differing += diff.differing;
                st.rows_differing += usize::from(diff.differing > 0);
                st.max_logits_differing_in_a_row =
                    st.max_logits_differing_in_a_row.max(diff.differing);
                st.max_ulp = st.max_ulp.max(diff.max_ulp);
                st.max_abs = st.max_abs.max(diff.max_abs);
                st.max_relative = st
                    .max_relative
                    .max(diff.max_abs / (base[t1] as f64).abs().max(f64::MIN_POSITIVE));
                st.ulp_histogram
                    .iter_mut()
                    .zip(diff.histogram)
                    .for_each(|(a, h)| *a += h);
                st.greedy_flips += usize::from(flipped);
                let ps = &mut st.per_position[k];
                ps.rows_compared += 1;
                ps.rows_differing += usize::from(diff.differing > 0);
                ps.logits_differing += diff.differing;
                ps.greedy_flips += usize::from(flipped);
                if flipped {
                    let rf = &reference[r];
                    report.flips.push(Flip {
                        batch: b,
                        position: p,
                        row: r,
                        batch_1_token: t1,
                        token: t,
                        f64_token: rf.top_token,
                        f64_margin: rf.margin,
                        f64_relative_margin: rf.relative_margin,
                        batch_1_gap: base[t1] as f64 - base[t] as f64,
                    });
                }
            }
        }
        st.flip_rate = st.greedy_flips as f64 / st.rows_compared.max(1) as f64;
        if config.iterations > 0 {
            st.time_ms = backend.time_ms(b, config.iterations)?;
        }
        report.batches.push(st);
    }
    Ok(Measured { report, batch_1 })
}

/// Compares `batch_1` (a backend's batch-1 logits of the first pool rows) with the CPU twin of
/// the invariant kernel, over the first `rows` of them.
pub fn twin_check(
    inputs: &ProjectionInputs,
    backend: &str,
    batch_1: &[Vec<f32>],
    rows: usize,
) -> TwinCheck {
    let (d, chunk) = (inputs.d, chunk_len(inputs.dtype));
    let weights = inputs.weights_f32();
    let rows = rows.min(batch_1.len()).min(inputs.rows);
    let mut check = TwinCheck {
        backend: backend.to_string(),
        rows,
        logits: 0,
        logits_differing: 0,
        max_ulp: 0,
    };
    for (r, got) in batch_1.iter().enumerate().take(rows) {
        let h = inputs.hidden_row(r);
        let twin: Vec<f32> = (0..inputs.vocab)
            .into_par_iter()
            .map(|v| invariant_dot(&h, &weights[v * d..(v + 1) * d], chunk))
            .collect();
        for (&a, &b) in twin.iter().zip(got) {
            check.logits += 1;
            check.logits_differing += u64::from(a.to_bits() != b.to_bits());
            check.max_ulp = check.max_ulp.max(ulp_diff(a, b));
        }
    }
    check
}

/// Puts the backends' sweeps side by side. The cost of invariance compares each batch-invariant
/// backend's time with the first backend that is not.
pub fn assemble(
    inputs: &ProjectionInputs,
    device: &str,
    config: &Config,
    reference: Vec<RowReference>,
    backends: Vec<BackendReport>,
    twin_check: Option<TwinCheck>,
) -> Report {
    let mut cost = Vec::new();
    if let Some(base) = backends.iter().find(|b| !b.batch_invariant) {
        for inv in backends.iter().filter(|b| b.batch_invariant) {
            for (bi, bb) in inv.batches.iter().zip(&base.batches) {
                if let (Some(i), Some(t)) = (bi.time_ms, bb.time_ms) {
                    cost.push(Cost {
                        batch: bi.batch,
                        invariant: inv.name.clone(),
                        baseline: base.name.clone(),
                        invariant_ms: i,
                        baseline_ms: t,
                        ratio: i / t.max(f64::MIN_POSITIVE),
                    });
                }
            }
        }
    }
    Report {
        note: format!(
            "Experiment 2: batch-size drift of projection logits at temperature 0, on {device}"
        ),
        device: device.to_string(),
        source: inputs.source.clone(),
        dtype: inputs.dtype,
        rows: inputs.rows,
        d: inputs.d,
        vocab: inputs.vocab,
        config: config.clone(),
        near_tie_rows: reference
            .iter()
            .filter(|r| r.relative_margin < NEAR_TIE)
            .count(),
        reference,
        backends,
        cost,
        twin_check,
    }
}
