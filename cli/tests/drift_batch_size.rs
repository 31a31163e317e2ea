//! Experiment 2 (batch-size drift) without a GPU: the analysis against CPU backends whose results
//! do or do not depend on the batch size, the synthetic inputs, the report's JSON and figure, and
//! the command line (which needs a GPU and says so without one, but can `--replot` a report).

use batchsample::{Dtype, Result};
use batchsample_cli::drift::batch_size::inputs::{self, ProjectionInputs, SyntheticSpec};
use batchsample_cli::drift::batch_size::{self, plot, Backend, Config, Position, Report};
use batchsample_cli::drift::projection::{chunk_len, exact_dot, invariant_dot};
use batchsample_cli::drift::ULP_BINS;
use std::process::Command;

/// How a CPU backend computes one logit.
#[derive(Clone, Copy)]
enum Rounding {
    /// The invariant kernel's order (its CPU twin): never depends on the batch.
    Twin,
    /// A split-K sum: `1 + batch % 4` contiguous pieces, each an f32 fma chain, the pieces added
    /// in order — the batch size picks the split, as cuBLAS's heuristics do.
    SplitK,
    /// The exact value rounded to `6 + batch % 5` significant bits: large, batch-dependent
    /// errors, so that near ties flip.
    Coarse,
}

struct CpuBackend<'a> {
    inputs: &'a ProjectionInputs,
    weights: Vec<f32>,
    rounding: Rounding,
    projections: usize,
}

impl<'a> CpuBackend<'a> {
    fn new(inputs: &'a ProjectionInputs, rounding: Rounding) -> Self {
        CpuBackend {
            inputs,
            weights: inputs.weights_f32().into_owned(),
            rounding,
            projections: 0,
        }
    }

    fn logit(&self, h: &[f32], v: usize, batch: usize) -> f32 {
        let d = self.inputs.d;
        let w = &self.weights[v * d..(v + 1) * d];
        match self.rounding {
            Rounding::Twin => invariant_dot(h, w, chunk_len(self.inputs.dtype)),
            Rounding::SplitK => {
                let piece = d.div_ceil(1 + batch % 4);
                h.chunks(piece)
                    .zip(w.chunks(piece))
                    .map(|(hc, wc)| hc.iter().zip(wc).fold(0f32, |a, (&x, &y)| x.mul_add(y, a)))
                    .fold(0f32, |a, p| a + p)
            }
            Rounding::Coarse => {
                let x = exact_dot(h, w);
                let bits = 6 + (batch % 5) as i32;
                let step = 2f64.powi(x.abs().max(1e-30).log2().floor() as i32 - bits);
                ((x / step).round() * step) as f32
            }
        }
    }
}

impl Backend for CpuBackend<'_> {
    fn name(&self) -> String {
        match self.rounding {
            Rounding::Twin => "twin".into(),
            Rounding::SplitK => "split-k".into(),
            Rounding::Coarse => "coarse".into(),
        }
    }
    fn description(&self) -> String {
        "CPU test backend".into()
    }
    fn batch_invariant(&self) -> bool {
        matches!(self.rounding, Rounding::Twin)
    }
    fn project(&mut self, rows: &[usize], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.projections += 1;
        Ok(positions
            .iter()
            .map(|&p| {
                let h = self.inputs.hidden_row(rows[p]);
                (0..self.inputs.vocab)
                    .map(|v| self.logit(&h, v, rows.len()))
                    .collect()
            })
            .collect())
    }
    fn time_ms(&mut self, batch: usize, _iterations: usize) -> Result<Option<f64>> {
        let per_row = if self.batch_invariant() { 0.2 } else { 0.1 };
        Ok(Some(1.0 + per_row * batch as f64))
    }
}

fn small_inputs(dtype: Dtype) -> ProjectionInputs {
    inputs::synthetic(&SyntheticSpec {
        rows: 12,
        d: 200,
        vocab: 300,
        dtype,
        near_ties: 1.0,
        seed: 7,
    })
    .unwrap()
}

fn config() -> Config {
    Config {
        batches: vec![1, 2, 3, 4, 5, 8, 13],
        positions: vec![Position::First, Position::Middle, Position::Last],
        iterations: 3,
    }
}

fn run(inputs: &ProjectionInputs, backends: &mut [CpuBackend<'_>]) -> Report {
    let config = config();
    let reference = batch_size::reference(inputs);
    let mut reports = Vec::new();
    let mut twin = None;
    for b in backends.iter_mut() {
        let m = batch_size::measure(b, inputs.vocab, &reference, &config).unwrap();
        if b.batch_invariant() {
            twin = Some(batch_size::twin_check(inputs, &b.name(), &m.batch_1, 3));
        }
        reports.push(m.report);
    }
    batch_size::assemble(
        inputs,
        "CPU (test backends)",
        &config,
        reference,
        reports,
        twin,
    )
}

fn check_counts(rep: &Report) {
    for b in &rep.backends {
        for st in &b.batches {
            let positions = batch_size::positions_in(&rep.config.positions, st.batch).len();
            assert_eq!(
                st.rows_compared,
                rep.rows * positions,
                "{} b{}",
                b.name,
                st.batch
            );
            assert_eq!(st.logits_compared, (st.rows_compared * rep.vocab) as u64);
            assert_eq!(st.ulp_histogram.len(), ULP_BINS.len());
            assert_eq!(st.ulp_histogram.iter().sum::<u64>(), st.logits_compared);
            assert_eq!(st.per_position.len(), positions);
            let sum = |f: fn(&batch_size::PositionStats) -> u64| -> u64 {
                st.per_position.iter().map(f).sum()
            };
            assert_eq!(sum(|p| p.rows_compared as u64), st.rows_compared as u64);
            assert_eq!(sum(|p| p.logits_differing), st.logits_differing);
            assert_eq!(sum(|p| p.greedy_flips as u64), st.greedy_flips as u64);
        }
        let flips: usize = b.batches.iter().map(|st| st.greedy_flips).sum();
        assert_eq!(flips, b.flips.len(), "{}", b.name);
    }
}

#[test]
fn experiment_2_invariant_backend_never_drifts_and_split_k_does() {
    let inputs = small_inputs(Dtype::F32);
    let rep = run(
        &inputs,
        &mut [
            CpuBackend::new(&inputs, Rounding::SplitK),
            CpuBackend::new(&inputs, Rounding::Twin),
        ],
    );
    check_counts(&rep);
    let (split, twin) = (&rep.backends[0], &rep.backends[1]);
    for st in &twin.batches {
        assert_eq!(st.logits_differing, 0, "twin at batch {}", st.batch);
        assert_eq!(st.greedy_flips, 0);
    }
    for st in &split.batches {
        // Batch sizes with batch 1's split (1 + b % 4 == 2) give its bits exactly.
        if st.batch % 4 == 1 {
            assert_eq!(st.logits_differing, 0, "split-k at batch {}", st.batch);
        } else {
            assert!(st.logits_differing > 0, "split-k at batch {}", st.batch);
            assert!(st.max_ulp > 0 && st.max_abs > 0.0);
        }
    }
    let t = rep.twin_check.as_ref().unwrap();
    assert_eq!((t.backend.as_str(), t.rows), ("twin", 3));
    assert_eq!(t.logits_differing, 0);
    // Cost of invariance: the test backends' times are 1 + 0.2 b and 1 + 0.1 b.
    assert_eq!(rep.cost.len(), config().batches.len());
    for c in &rep.cost {
        let b = c.batch as f64;
        assert!((c.ratio - (1.0 + 0.2 * b) / (1.0 + 0.1 * b)).abs() < 1e-12);
    }
}

#[test]
fn experiment_2_every_flip_is_within_the_logit_change() {
    let inputs = small_inputs(Dtype::Bf16);
    let rep = run(&inputs, &mut [CpuBackend::new(&inputs, Rounding::Coarse)]);
    check_counts(&rep);
    let b = &rep.backends[0];
    assert!(
        !b.flips.is_empty(),
        "no flip at all: the check below is vacuous"
    );
    for f in &b.flips {
        let st = b.batches.iter().find(|s| s.batch == f.batch).unwrap();
        // Two logits swapped order: each moved by at most max_abs.
        assert!(
            f.batch_1_gap <= 2.0 * st.max_abs,
            "{f:?} vs max |d| {}",
            st.max_abs
        );
        let rf = &rep.reference[f.row];
        assert_eq!((f.f64_token, f.f64_margin), (rf.top_token, rf.margin));
        assert!(f.batch_1_token != f.token);
    }
    // Batch 1 measured again equals batch 1: the backend is deterministic.
    assert_eq!(b.batches[0].batch, 1);
    assert_eq!(b.batches[0].logits_differing, 0);
}

#[test]
fn experiment_2_batches_cover_every_pool_row_at_every_position() {
    struct Recorder(Vec<(Vec<usize>, Vec<usize>)>);
    impl Backend for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }
        fn description(&self) -> String {
            String::new()
        }
        fn batch_invariant(&self) -> bool {
            true
        }
        fn project(&mut self, rows: &[usize], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
            self.0.push((rows.to_vec(), positions.to_vec()));
            Ok(positions.iter().map(|&p| vec![rows[p] as f32; 4]).collect())
        }
        fn time_ms(&mut self, _: usize, _: usize) -> Result<Option<f64>> {
            Ok(None)
        }
    }
    let reference = batch_size::reference(
        &inputs::synthetic(&SyntheticSpec {
            rows: 5,
            d: 3,
            vocab: 4,
            dtype: Dtype::F32,
            near_ties: 0.0,
            seed: 1,
        })
        .unwrap(),
    );
    let config = Config {
        batches: vec![1, 3, 8],
        positions: vec![Position::First, Position::Last, Position::Index(4)],
        iterations: 0,
    };
    let mut rec = Recorder(Vec::new());
    let m = batch_size::measure(&mut rec, 4, &reference, &config).unwrap();
    // 5 batch-1 baselines, then 5 batches per size.
    assert_eq!(rec.0.len(), 5 + 3 * 5);
    for &b in &config.batches {
        let calls: Vec<_> = rec.0[5..].iter().filter(|(r, _)| r.len() == b).collect();
        assert_eq!(calls.len(), 5);
        let want = batch_size::positions_in(&config.positions, b);
        for p in &want {
            let mut seen: Vec<usize> = calls.iter().map(|(r, _)| r[*p]).collect();
            seen.sort_unstable();
            assert_eq!(seen, vec![0, 1, 2, 3, 4], "batch {b} position {p}");
        }
        assert!(calls.iter().all(|(_, ps)| *ps == want));
    }
    assert!(m.report.batches.iter().all(|s| s.time_ms.is_none()));
}

#[test]
fn experiment_2_positions_and_batches_parse() {
    assert_eq!(
        batch_size::parse_batches("1-4, 8,3,16-16").unwrap(),
        vec![1, 2, 3, 4, 8, 16]
    );
    assert_eq!(
        batch_size::parse_batches("1-16,24,32,48,64,96,128,192,256").unwrap(),
        batch_size::default_batches()
    );
    for bad in ["", "0", "5-2", "x", "1-", "65537"] {
        assert!(batch_size::parse_batches(bad).is_err(), "{bad:?}");
    }
    let p = [
        Position::Last,
        Position::First,
        Position::Middle,
        Position::Index(6),
    ];
    assert_eq!(batch_size::positions_in(&p, 1), vec![0]);
    assert_eq!(batch_size::positions_in(&p, 2), vec![0, 1]);
    assert_eq!(batch_size::positions_in(&p, 7), vec![0, 3, 6]);
    assert_eq!(batch_size::positions_in(&p, 10), vec![0, 5, 6, 9]);
    assert_eq!("middle".parse::<Position>(), Ok(Position::Middle));
    assert_eq!("12".parse::<Position>(), Ok(Position::Index(12)));
    assert!("centre".parse::<Position>().is_err());
    assert_eq!(batch_size::ulp_diff(-0.0, 0.0), 0);
    assert_eq!(
        batch_size::ulp_diff(f32::MIN_POSITIVE, -f32::MIN_POSITIVE),
        2 << 23
    );
    assert_eq!(batch_size::ulp_diff(1.0, 1.0 + f32::EPSILON), 1);
    assert_eq!(batch_size::argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
}

#[test]
fn experiment_2_synthetic_inputs_are_seeded_lm_like_and_have_near_ties() {
    let spec = SyntheticSpec {
        rows: 16,
        d: 256,
        vocab: 2000,
        dtype: Dtype::F32,
        near_ties: 0.5,
        seed: 3,
    };
    let a = inputs::synthetic(&spec).unwrap();
    let b = inputs::synthetic(&spec).unwrap();
    assert_eq!(a.hidden, b.hidden);
    assert_eq!(a.weights, b.weights);
    let reference = batch_size::reference(&a);
    let near = reference
        .iter()
        .filter(|r| r.relative_margin < 1e-3)
        .count();
    assert!((3..=14).contains(&near), "{near} near ties of 16");
    // The top logit stands well above the bulk, as in a language model.
    for r in &reference {
        assert!(r.top_logit > 8.0, "{r:?}");
    }
    let bf = inputs::synthetic(&SyntheticSpec {
        dtype: Dtype::Bf16,
        ..spec
    })
    .unwrap();
    assert_eq!(bf.weights.dtype(), Dtype::Bf16);
    assert!(inputs::synthetic(&SyntheticSpec {
        near_ties: 1.5,
        ..spec
    })
    .is_err());
    assert!(inputs::synthetic(&SyntheticSpec { vocab: 1, ..spec }).is_err());
}

#[test]
fn experiment_2_inputs_load_from_npy_and_safetensors() {
    use batchsample::LogitsBuf;
    use batchsample_cli::io::{npy, safetensors};
    let dir = tempfile::tempdir().unwrap();
    let src = small_inputs(Dtype::F32);
    let (hp, wp) = (dir.path().join("h.npy"), dir.path().join("w.safetensors"));
    let LogitsBuf::F32(h) = &src.hidden else {
        panic!()
    };
    npy::write(&hp, &[src.rows, src.d], h).unwrap();
    let wb = LogitsBuf::Bf16(
        src.weights
            .to_f32_vec()
            .iter()
            .map(|&x| half::bf16::from_f32(x))
            .collect(),
    );
    safetensors::write(&wp, &[("lm_head.weight", &[src.vocab, src.d], &wb)]).unwrap();
    let spec = inputs::FileSpec {
        hidden: &hp,
        hidden_tensor: None,
        weights: &wp,
        weights_tensor: Some("lm_head.weight"),
        dtype: Dtype::Bf16,
        rows: Some(5),
    };
    let got = inputs::load(&spec).unwrap();
    assert_eq!((got.rows, got.d, got.vocab), (5, src.d, src.vocab));
    assert_eq!(got.weights, wb);
    // Inner dimensions that differ are a shape error.
    npy::write(&hp, &[2, 3], &[0f32; 6]).unwrap();
    assert!(inputs::load(&spec).is_err());
}

#[test]
fn experiment_2_report_round_trips_and_draws() {
    let inputs = small_inputs(Dtype::F32);
    let rep = run(
        &inputs,
        &mut [
            CpuBackend::new(&inputs, Rounding::Coarse),
            CpuBackend::new(&inputs, Rounding::Twin),
        ],
    );
    let json = serde_json::to_string_pretty(&rep).unwrap();
    // serde_json may move a float's last digit on the way back: compare what is shown.
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(batch_size::summary(&back), batch_size::summary(&rep));
    assert_eq!(back.backends[0].flips.len(), rep.backends[0].flips.len());
    let text = batch_size::summary(&rep);
    assert!(text.starts_with("Experiment 2"), "{text}");
    assert!(text.contains("coarse") && text.contains("twin") && text.contains("cost of"));
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("e2.svg");
    plot::write_svg(&svg, &rep).unwrap();
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains(plot::TITLE));
    assert!(svg.contains("CPU (test backends)"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchsample"))
}

fn one_line_exit_2(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err:?}");
    assert!(
        err.starts_with("batchsample: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn cli_batch_size_without_a_gpu_says_it_needs_one() {
    if batchsample::gpu::gpu_available() {
        println!("SKIP: a GPU is present (cli/tests/gpu_drift.rs and scripts/gpu-check run it)");
        return;
    }
    let err = one_line_exit_2(&["drift", "batch-size", "--vocab", "64", "--d", "16"]);
    assert!(err.contains("needs a GPU"), "{err}");
    assert!(err.contains("libcuda") || err.contains("device"), "{err}");
}

#[test]
fn cli_batch_size_bad_arguments_exit_2_in_one_line() {
    for args in [
        vec!["drift", "batch-size", "--batches", "0"],
        vec!["drift", "batch-size", "--batches", "8-2"],
        vec!["drift", "batch-size", "--positions", "centre"],
        vec!["drift", "batch-size", "--backends", "magma"],
        vec!["drift", "batch-size", "--near-ties", "2"],
        vec!["drift", "batch-size", "--dtype", "f8"],
        vec!["drift", "batch-size", "--vocab", "1"],
        vec!["drift", "batch-size", "--hidden", "h.npy"],
        vec![
            "drift",
            "batch-size",
            "--replot",
            "/nonexistent/report.json",
        ],
    ] {
        one_line_exit_2(&args);
    }
}

#[test]
fn cli_batch_size_replots_a_saved_report_without_a_gpu() {
    let inputs = small_inputs(Dtype::F32);
    let rep = run(
        &inputs,
        &mut [
            CpuBackend::new(&inputs, Rounding::SplitK),
            CpuBackend::new(&inputs, Rounding::Twin),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    std::fs::write(&json, serde_json::to_string(&rep).unwrap()).unwrap();
    let out = bin()
        .args(["drift", "batch-size", "--replot"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        batch_size::summary(&rep)
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains(plot::TITLE));
    std::fs::write(&json, "{}").unwrap();
    one_line_exit_2(&["drift", "batch-size", "--replot", json.to_str().unwrap()]);
}
