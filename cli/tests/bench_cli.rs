//! `batchsample bench` plumbing on the CPU path: the table, the JSON, CSV and SVG records, and
//! the fallback message. (GPU numbers come from scripts/gpu-check; see BENCHMARKS.md.)

use std::process::Command;

#[test]
fn bench_on_the_cpu_writes_table_json_csv_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (json, csv, svg) = (
        dir.path().join("b.json"),
        dir.path().join("b.csv"),
        dir.path().join("b.svg"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
        .args([
            "bench", "--device", "auto", "--batch", "1,3", "--vocab", "100,257", "--dtype",
            "f32,bf16",
        ])
        .args([
            "--mode",
            "greedy,top-k,combined",
            "--method",
            "gumbel,inverse-cdf",
            "--iterations",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    if !batchsample::gpu::gpu_available() {
        assert!(
            stderr.contains("benchmarking the CPU reference instead"),
            "{stderr}"
        );
    }
    // 2 batches x 2 vocabs x 2 dtypes x 3 modes x 2 methods = 48 rows in every record.
    let rows = stdout
        .lines()
        .filter(|l| l.starts_with("cpu ") || l.starts_with("gpu "))
        .count();
    assert_eq!(rows, 48, "{stdout}");
    assert!(stdout.contains("measured bandwidth"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 48);
    for r in results {
        let (median, floor, ratio) = (
            r["median_us"].as_f64().unwrap(),
            r["floor_us"].as_f64().unwrap(),
            r["ratio_to_floor"].as_f64().unwrap(),
        );
        assert!(median > 0.0 && floor > 0.0 && (ratio - median / floor).abs() < 1e-9 * ratio);
        assert!(r["p10_us"].as_f64().unwrap() <= median && median <= r["p90_us"].as_f64().unwrap());
    }
    assert!(doc["bandwidth_gbps"].as_f64().unwrap() > 0.0);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 49);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"));
    for text in [
        "median sampling latency",
        "vocab 100, bf16, InverseCdf",
        "combined",
        "floor (one read)",
    ] {
        assert!(plot.contains(text), "svg lacks {text}");
    }
}

/// Both numerics in one sweep: twice the rows, and the invariant mode's cost as a ratio per case.
#[test]
fn bench_measures_the_invariant_numerics_against_the_fast_ones() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("b.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
        .args(["bench", "--device", "cpu", "--batch", "2", "--vocab", "300"])
        .args([
            "--mode",
            "temperature,combined",
            "--numerics",
            "fast,invariant",
        ])
        .args(["--iterations", "2", "--csv"])
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bit-exact twin"), "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("cpu ")).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    assert_eq!(rows.iter().filter(|l| l.contains(" invariant ")).count(), 2);
    assert!(stdout.contains("invariant numerics cost"), "{stdout}");
    assert!(
        stdout.contains("range") && stdout.contains("over 2 cases"),
        "{stdout}"
    );
    let records = std::fs::read_to_string(&csv).unwrap();
    assert!(records
        .lines()
        .next()
        .unwrap()
        .contains(",numerics,kernels,timing,"));
    assert_eq!(records.lines().filter(|l| l.contains(",wall,")).count(), 4);
    assert_eq!(
        records
            .lines()
            .filter(|l| l.contains(",invariant,"))
            .count(),
        2
    );
}

/// `--graph` is a GPU timing mode; on the CPU path it is said to not apply, and the run goes on.
#[test]
fn bench_graph_flag_is_explained_on_the_cpu() {
    if batchsample::gpu::gpu_available() {
        println!("SKIP: a GPU is present (scripts/gpu-check times --graph there)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
        .args([
            "bench", "--graph", "--batch", "1", "--vocab", "64", "--mode", "greedy",
        ])
        .args(["--iterations", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--graph applies to the GPU only"),
        "{stderr}"
    );
}

/// `--kernels` is a GPU A/B (unfiltered against general kernels); the CPU says so and runs its
/// one path once per case.
#[test]
fn bench_kernels_flag_is_explained_on_the_cpu() {
    if batchsample::gpu::gpu_available() {
        println!("SKIP: a GPU is present (scripts/gpu-check times --kernels there)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
        .args([
            "bench",
            "--batch",
            "1,2",
            "--vocab",
            "64",
            "--mode",
            "temperature",
        ])
        .args(["--kernels", "auto,general,fields", "--iterations", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--kernels applies to the GPU only"),
        "{stderr}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("cpu ")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows.iter().all(|l| l.contains(" auto ")), "{stdout}");
}

#[test]
fn bench_rejects_bad_lists_with_one_line() {
    for args in [
        vec!["bench", "--mode", "nucleus"],
        vec!["bench", "--dtype", "f64"],
        vec!["bench", "--batch", "x"],
        vec!["bench", "--iterations", "0"],
        vec!["bench", "--numerics", "exact"],
        vec!["bench", "--shape", "round"],
        vec!["bench", "--kernels", "light"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn bench_verify_mode_times_a_case_per_draft_count() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    let out = Command::new(env!("CARGO_BIN_EXE_batchsample"))
        .args([
            "bench",
            "--device",
            "cpu",
            "--batch",
            "2",
            "--vocab",
            "300",
            "--mode",
            "verify,temperature",
            "--drafts",
            "1,3",
            "--draft-kind",
            "point,dense",
            "--processing",
            "none,bitmask",
            "--iterations",
            "2",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("verify/1 ") && stdout.contains("verify/3q"),
        "{stdout}"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let results = doc["results"].as_array().unwrap();
    let verify: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| r["case"]["mode"] == "verify")
        .collect();
    // One case per draft count and kind, unprocessed only; the sampling modes carry drafts 0.
    assert_eq!(verify.len(), 4, "{results:?}");
    let case = |n: u64, dense: bool| {
        verify
            .iter()
            .find(|r| r["case"]["drafts"] == n && r["case"]["dense_drafts"] == dense)
            .unwrap_or_else(|| panic!("verify/{n} dense {dense}"))
    };
    assert!(verify.iter().all(|r| r["case"]["processing"] == "none"));
    assert!(verify
        .iter()
        .all(|r| r["median_us"].as_f64().unwrap() > 0.0));
    // The floor is one read of the target rows (batch * (n + 1)), and of the draft
    // distributions (batch * n rows of f32) when they are dense.
    let floor = |r: &serde_json::Value| r["floor_us"].as_f64().unwrap();
    assert!((floor(case(3, false)) / floor(case(1, false)) - 2.0).abs() < 1e-9);
    assert!((floor(case(3, true)) / floor(case(3, false)) - 14.0 / 8.0).abs() < 1e-9);
    assert!(results
        .iter()
        .filter(|r| r["case"]["mode"] == "temperature")
        .all(|r| r["case"]["drafts"] == 0));
}
