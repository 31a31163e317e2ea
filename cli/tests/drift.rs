//! Determinism-drift experiments (CPU emulation of GPU reduction orders): the orders' error
//! bounds and reproducibility, experiment 1's invariants (Gumbel never moves, every inverse-CDF
//! flip lies within the order's error of a boundary), experiment 3's run-to-run counts, and the
//! `batchsample drift` command line.

use batchsample_cli::drift::{self, reduction_order, run_to_run, Order, Setup};
use std::process::Command;

fn all_orders() -> Vec<Order> {
    let mut v = reduction_order::default_orders(7);
    v.extend(run_to_run::default_orders());
    v
}

/// A row where order matters: magnitudes over many decades, as weights `exp(d)` are.
fn spread_row(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = batchsample_cli::io::splitmix64(i as u64);
            let e = (h % 40) as i32 - 30;
            (1.0 + (h >> 40) as f32 / (1u64 << 24) as f32) * 2f32.powi(e)
        })
        .collect()
}

#[test]
fn every_order_sums_within_its_bound_and_reproducibly() {
    for w in [
        (1..=10_000).map(|i| 1.0 / i as f32).collect::<Vec<f32>>(),
        spread_row(32_000),
    ] {
        let exact = *drift::exact_prefix(&w).last().unwrap();
        for o in all_orders() {
            let s = o.sum(&w);
            let bound = o.error_bound(&w);
            assert!(
                (s as f64 - exact).abs() <= bound,
                "{}: |{s} - {exact}| > {bound}",
                o.name()
            );
            assert_eq!(s.to_bits(), o.sum(&w).to_bits(), "{}", o.name());
            let p = o.prefix(&w);
            assert_eq!(p.len(), w.len());
            assert!(p
                .iter()
                .zip(o.prefix(&w))
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            assert!((*p.last().unwrap() as f64 - exact).abs() <= 2.0 * bound);
        }
    }
}

#[test]
fn atomics_sum_depends_on_the_arrival_seed() {
    let w = spread_row(32_000);
    let sums: std::collections::BTreeSet<u32> = (0..16)
        .map(|seed| Order::Atomics { chunk: 256, seed }.sum(&w).to_bits())
        .collect();
    assert!(sums.len() > 1, "16 arrival orders gave one sum");
}

#[test]
fn experiment_1_gumbel_never_moves_and_every_flip_is_explained() {
    let batch = drift::synthetic_batch(32, 32_000, 0.5, 5);
    let setup = Setup {
        temperature: 1.0,
        seed: 5,
        step: 0,
        draws: 16,
    };
    let rep = reduction_order::run(&batch, &setup, &reduction_order::default_orders(5)).unwrap();
    assert_eq!(rep.gumbel_reference_mismatches, 0);
    let mut flips = 0;
    for o in &rep.orders {
        assert_eq!(o.gumbel_changes, 0, "{}", o.name);
        assert_eq!(o.draws, 32 * 16);
        assert_eq!(o.probabilities, 32 * 32_000);
        assert_eq!(
            o.ulp_histogram.iter().sum::<u64>(),
            o.probabilities,
            "{}",
            o.name
        );
        assert_eq!(o.flips.len() as u64, o.inverse_cdf_flips);
        for f in &o.flips {
            assert!(f.explained, "{}: {f:?}", o.name);
            assert!(f.gap <= f.error * (1.0 + 1e-9) + 1e-15, "{}: {f:?}", o.name);
        }
        flips += o.inverse_cdf_flips;
    }
    assert!(
        flips > 0,
        "no inverse-CDF flip at all: the check above was vacuous"
    );
}

#[test]
fn experiment_3_fixed_orders_never_drift_and_atomics_do() {
    let batch = drift::synthetic_batch(8, 8192, 0.25, 3);
    let setup = Setup {
        temperature: 0.8,
        seed: 3,
        step: 0,
        draws: 2,
    };
    let rep = run_to_run::run(&batch, &setup, &run_to_run::default_orders(), 12).unwrap();
    for o in &rep.orders {
        assert_eq!(o.runs_differing_gumbel, 0, "{}", o.name);
        if o.per_run_seed {
            assert!(o.runs_differing_bits > 0, "{}", o.name);
        } else {
            assert_eq!(o.runs_differing_bits, 0, "{}", o.name);
            assert_eq!(o.runs_differing_inverse_cdf, 0, "{}", o.name);
        }
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchsample"))
}

#[test]
fn cli_writes_json_and_svg_with_titles() {
    let dir = tempfile::tempdir().unwrap();
    for (exp, title) in [
        ("reduction-order", "Experiment 1: reduction order"),
        ("run-to-run", "Experiment 3: run-to-run drift"),
    ] {
        let (json, svg) = (dir.path().join("d.json"), dir.path().join("d.svg"));
        let mut cmd = bin();
        cmd.args([
            "drift", exp, "--rows", "4", "--vocab", "2000", "--draws", "2",
        ]);
        if exp == "run-to-run" {
            cmd.args(["--runs", "5"]);
        }
        let out = cmd
            .arg("--json")
            .arg(&json)
            .arg("--svg")
            .arg(&svg)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().next(), Some(drift::BANNER));
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(doc["note"], drift::BANNER);
        assert!(!doc["orders"].as_array().unwrap().is_empty());
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(svg.contains(title), "{exp}: title missing");
        assert!(svg.contains("no GPU used"), "{exp}");
    }
}

#[test]
fn bad_arguments_exit_2_in_one_line() {
    for args in [
        vec!["drift"],
        vec!["drift", "bogus"],
        vec!["drift", "reduction-order", "--temperature", "0"],
        vec!["drift", "reduction-order", "--temperature", "-1"],
        vec!["drift", "reduction-order", "--near-ties", "2"],
        vec!["drift", "reduction-order", "--rows", "0"],
        vec!["drift", "run-to-run", "--runs", "1"],
        vec!["drift", "run-to-run", "--logits", "/nonexistent/x.npy"],
    ] {
        let out = bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("batchsample: "), "{args:?}: {err}");
    }
}
