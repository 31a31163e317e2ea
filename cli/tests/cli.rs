//! The `batchsample` binary end to end: `demo` output, `sample` on generated .npy and safetensors
//! files checked against the CPU reference, and every kind of bad input failing with exit code 2
//! and exactly one line on stderr.

use batchsample::cpu::{sample_batch, sample_row};
use batchsample::{with_logits, DrawMethod, LogitsBuf, RowOutput, SampleOptions, SamplingParams};
use batchsample_cli::io::{self, npy, row_seed};
use half::{bf16, f16};
use std::path::Path;

mod common;
use common::*;

/// What the binary must produce: draw `d` of every row with the derived (or given) params at
/// `step + d`, on the CPU reference.
fn expected(
    buf: &LogitsBuf,
    vocab: usize,
    params: &[SamplingParams],
    draws: u64,
    opts: &SampleOptions,
) -> Vec<Vec<RowOutput>> {
    (0..draws)
        .map(|d| {
            let at: Vec<SamplingParams> = params.iter().map(|p| p.at_step(p.step + d)).collect();
            with_logits!(buf, v => sample_batch(v, vocab, &at, opts)).unwrap()
        })
        .collect()
}

fn tokens_of(outputs: &[Vec<RowOutput>]) -> Vec<i32> {
    outputs
        .iter()
        .flatten()
        .map(|o| o.token.map_or(-1, |t| t as i32))
        .collect()
}

fn read_tokens(path: &Path) -> (Vec<usize>, Vec<i32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        npy::NpyData::I32(v) => (a.shape, v),
        other => panic!("output dtype {:?}", other.dtype()),
    }
}

/// A `.npy` image with a hand-written header (version 1.0).
fn npy_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

const DEMO_LOGITS: [f32; 5] = [2.0, 1.0, 0.5, 0.1, -1.0];

#[test]
fn demo_shows_every_stage_and_the_draw() {
    let o = run(&["demo", "--seed", "7"]);
    assert_ok(&o);
    let out = stdout(&o);
    for needle in [
        "softmax at temperature 0.8",
        "top-k 4",
        "top-p 0.9",
        "min-p 0.2",
        "removed by top-k",
        "removed by top-p",
        "removed by min-p",
        "(was ",
        "%",
        "█",
        "seed 7,",
    ] {
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
    }
    // The four stage blocks come in pipeline order.
    let at = |n: &str| out.find(n).unwrap_or_else(|| panic!("{n} missing"));
    assert!(at("1. softmax") < at("2. top-k") && at("2. top-k") < at("3. top-p"));
    assert!(at("3. top-p") < at("4. min-p") && at("4. min-p") < at("drawn: token"));

    // The drawn token and logprob are the reference sampler's.
    let p = SamplingParams {
        temperature: 0.8,
        top_k: 4,
        top_p: 0.9,
        min_p: 0.2,
        seed: 7,
        step: 0,
    };
    let want = sample_row(&DEMO_LOGITS[..], &p, &SampleOptions::default());
    let drawn = format!(
        "drawn: token {} (logit {:.2}) with logprob {:.4}",
        want.token.unwrap(),
        DEMO_LOGITS[want.token.unwrap() as usize],
        want.logprob
    );
    assert!(out.contains(&drawn), "{drawn:?} not in\n{out}");
    // Same seed, same output.
    assert_eq!(stdout(&run(&["demo", "--seed", "7"])), out);
}

#[test]
fn demo_takes_every_parameter_as_a_flag() {
    let o = run(&[
        "demo",
        "--logits=-1,2,-inf,3",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        "--top-p",
        "1",
        "--min-p",
        "0.1",
        "--seed",
        "99",
        "--step",
        "5",
        "--method",
        "inverse-cdf",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    for needle in [
        "4 tokens (3 finite)",
        "softmax at temperature 1.5",
        "top-k 0: off",
        "top-p 1: off",
        "min-p 0.1",
        "masked (logit -inf)",
        "seed 99, step 5, method inverse-cdf",
    ] {
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
    }
    let p = SamplingParams {
        temperature: 1.5,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.1,
        seed: 99,
        step: 5,
    };
    let opts = SampleOptions {
        method: DrawMethod::InverseCdf,
        top_n: 0,
        ..Default::default()
    };
    let want = sample_row(&[-1.0f32, 2.0, f32::NEG_INFINITY, 3.0][..], &p, &opts);
    assert!(
        out.contains(&format!("drawn: token {} ", want.token.unwrap())),
        "{out}"
    );

    // Greedy: the top token, logprob 0; a random seed is reported for repeating.
    let o = run(&["demo", "--logits", "1,2,3", "-t", "0"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("greedy"), "{out}");
    assert!(
        out.contains("drawn: token 2 (logit 3.00) with logprob 0.0000"),
        "{out}"
    );
    assert!(out.contains("(random; repeat with --seed "), "{out}");
}

#[test]
fn demo_rejects_bad_parameters_in_one_line() {
    assert_fails(&["demo", "--top-p", "2"], &["--top-p", "(0, 1]"]);
    assert_fails(&["demo", "--temperature", "-1"], &["--temperature"]);
    assert_fails(&["demo", "--min-p", "1"], &["--min-p"]);
    assert_fails(&["demo", "--logits", "1,nan"], &["NaN"]);
    assert_fails(&["demo", "--logits=-inf,-inf"], &["-inf"]);
    assert_fails(&["demo", "--logits", "1,x"], &["'x'"]);
    assert_fails(&["demo", "--method", "softmax"], &["gumbel", "inverse-cdf"]);
    assert_fails(&["demo", "--top-k", "-1"], &["--top-k"]);
}

#[test]
fn unknown_flags_and_usage_errors_exit_2_in_one_line() {
    assert_fails(&["demo", "--frobnicate"], &["--frobnicate"]);
    assert_fails(&["demo", "--tmperature", "1"], &["--temperature"]);
    assert_fails(&["sample"], &["--logits", "--out"]);
    assert_fails(
        &[
            "sample", "--logits", "x.npy", "--out", "y.npy", "--draws", "0",
        ],
        &["--draws"],
    );
    assert_fails(
        &[
            "sample", "--logits", "x.npy", "--out", "y.npy", "--device", "tpu",
        ],
        &["tpu"],
    );
    assert_fails(&["frobnicate"], &["frobnicate"]);
    assert_fails(&[], &["subcommand"]);
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["demo", "--help"],
        &["sample", "-h"],
        &["help"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty(), "{args:?}");
    }
    assert!(stdout(&run(&["sample", "--help"])).contains("--params"));
}

#[test]
fn sample_npy_f32_matches_the_reference() {
    let dir = Dir::new();
    let (batch, vocab) = (4, 300);
    let mut xs = logits(batch, vocab, 1);
    xs[2 * vocab + 17] = f32::NAN; // row 2 fails: token -1, the others are unaffected
    let input = dir.path("logits.npy");
    npy::write(&input, &[batch, vocab], &xs).unwrap();
    let out = dir.path("tokens.npy");
    let o = run(&[
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--seed",
        "11",
        "--draws",
        "3",
        "--top-k",
        "50",
        "--top-p",
        "0.9",
        "--min-p",
        "0.01",
        "--temperature",
        "0.9",
        "--step",
        "100",
        "--device",
        "cpu",
    ]);
    assert_ok(&o);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "4 rows x 3 draws",
        "on cpu",
        " ms",
        "seed 11",
        "3 row draws failed",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }

    let flags = SamplingParams {
        temperature: 0.9,
        top_k: 50,
        top_p: 0.9,
        min_p: 0.01,
        seed: 11,
        step: 100,
    };
    let params = io::uniform_row_params(&flags, batch);
    assert_eq!(params[3].seed, row_seed(11, 3));
    let want = expected(
        &LogitsBuf::F32(xs),
        vocab,
        &params,
        3,
        &SampleOptions::default(),
    );
    let (shape, tokens) = read_tokens(&out);
    assert_eq!(shape, vec![3, batch]);
    assert_eq!(tokens, tokens_of(&want));
    assert!(
        tokens.iter().skip(2).step_by(batch).all(|&t| t == -1),
        "{tokens:?}"
    );
    assert!(tokens
        .iter()
        .enumerate()
        .all(|(i, &t)| i % batch == 2 || t >= 0));
}

#[test]
fn sample_npy_f16_one_row() {
    let dir = Dir::new();
    let vocab = 257;
    let xs: Vec<f16> = logits(1, vocab, 2).into_iter().map(f16::from_f32).collect();
    let input = dir.path("row.npy");
    npy::write(&input, &[vocab], &xs).unwrap();
    let out = dir.path("tokens.npy");
    let o = run(&[
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--seed",
        "3",
        "--draws",
        "5",
        "--method",
        "inverse-cdf",
        "--device",
        "cpu",
    ]);
    assert_ok(&o);
    let params = io::uniform_row_params(
        &SamplingParams {
            seed: 3,
            ..Default::default()
        },
        1,
    );
    let opts = SampleOptions {
        method: DrawMethod::InverseCdf,
        top_n: 0,
        ..Default::default()
    };
    let want = expected(&LogitsBuf::F16(xs), vocab, &params, 5, &opts);
    let (shape, tokens) = read_tokens(&out);
    assert_eq!(shape, vec![5, 1]);
    assert_eq!(tokens, tokens_of(&want));
}

#[test]
fn sample_safetensors_bf16() {
    let dir = Dir::new();
    let (batch, vocab) = (3, 128);
    let xs = LogitsBuf::Bf16(
        logits(batch, vocab, 3)
            .into_iter()
            .map(bf16::from_f32)
            .collect(),
    );
    let other = LogitsBuf::F32(vec![0.0; 4]);
    let flags = SamplingParams {
        temperature: 0.7,
        top_k: 20,
        seed: 5,
        ..Default::default()
    };
    let want = tokens_of(&expected(
        &xs,
        vocab,
        &io::uniform_row_params(&flags, batch),
        2,
        &SampleOptions::default(),
    ));

    let single = dir.path("one.safetensors");
    io::safetensors::write(&single, &[("logits", &[batch, vocab], &xs)]).unwrap();
    let out = dir.path("a.npy");
    let args = |input: &Path, extra: &[&str]| {
        let mut a: Vec<String> = [
            "sample",
            "--logits",
            s(input),
            "--out",
            s(&out),
            "--seed",
            "5",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(
            ["--draws", "2", "-t", "0.7", "-k", "20", "--device", "cpu"]
                .iter()
                .chain(extra)
                .map(|x| x.to_string()),
        );
        a
    };
    let o = bin().args(args(&single, &[])).output().unwrap();
    assert_ok(&o);
    let (shape, tokens) = read_tokens(&out);
    assert_eq!((shape, &tokens), (vec![2, batch], &want));

    // Several tensors: --tensor picks one; without it, the error lists the names.
    let several = dir.path("several.safetensors");
    io::safetensors::write(
        &several,
        &[("logits", &[batch, vocab], &xs), ("bias", &[4], &other)],
    )
    .unwrap();
    std::fs::remove_file(&out).unwrap();
    let o = bin()
        .args(args(&several, &["--tensor", "logits"]))
        .output()
        .unwrap();
    assert_ok(&o);
    assert_eq!(read_tokens(&out).1, want);
    let a = args(&several, &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_fails(&a, &["'bias', 'logits'", "--tensor"]);
    let a = args(&several, &["--tensor", "nope"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_fails(&a, &["no tensor named 'nope'"]);
}

#[test]
fn json_output_has_tokens_logprobs_and_status() {
    let dir = Dir::new();
    let (batch, vocab) = (3, 64);
    let mut xs = logits(batch, vocab, 4);
    xs[vocab..2 * vocab].fill(f32::NEG_INFINITY); // row 1 has no finite logit
    let input = dir.path("l.npy");
    npy::write(&input, &[batch, vocab], &xs).unwrap();
    let out = dir.path("out.json");
    let o = run(&[
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--seed",
        "8",
        "--draws",
        "2",
        "--top-n",
        "3",
        "--top-k",
        "10",
        "--device",
        "cpu",
    ]);
    assert_ok(&o);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let flags = SamplingParams {
        top_k: 10,
        seed: 8,
        ..Default::default()
    };
    let params = io::uniform_row_params(&flags, batch);
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 3,
        ..Default::default()
    };
    let want = expected(&LogitsBuf::F32(xs), vocab, &params, 2, &opts);
    assert_eq!(json["batch"], 3);
    assert_eq!(json["vocab"], 64);
    let draws = json["draws"].as_array().unwrap();
    assert_eq!(draws.len(), 2);
    for (d, rows) in draws.iter().enumerate() {
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), batch);
        for (r, row) in rows.iter().enumerate() {
            let w = &want[d][r];
            assert_eq!(row["row"], r);
            assert_eq!(row["seed"], params[r].seed);
            assert_eq!(row["step"], d);
            if r == 1 {
                assert_eq!(row["status"], "no_finite_logit");
                assert!(row["token"].is_null() && row["logprob"].is_null());
                assert_eq!(row["top_logprobs"].as_array().unwrap().len(), 0);
                continue;
            }
            assert_eq!(row["status"], "ok");
            assert_eq!(row["token"], w.token.unwrap());
            assert!((row["logprob"].as_f64().unwrap() - w.logprob).abs() < 1e-12);
            let top = row["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3);
            for (t, wt) in top.iter().zip(&w.top_logprobs) {
                assert_eq!(t["token"], wt.token);
                assert!((t["logprob"].as_f64().unwrap() - wt.logprob).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn same_seed_same_tokens_and_rows_draw_independently() {
    let dir = Dir::new();
    let (batch, vocab) = (16, 1000);
    let input = dir.path("flat.npy");
    npy::write(&input, &[batch, vocab], &vec![0.0f32; batch * vocab]).unwrap();
    let sample = |name: &str, seed: &str| {
        let out = dir.path(name);
        let o = run(&[
            "sample",
            "--logits",
            s(&input),
            "--out",
            s(&out),
            "--seed",
            seed,
        ]);
        assert_ok(&o);
        read_tokens(&out).1
    };
    let a = sample("a.npy", "42");
    let b = sample("b.npy", "42");
    let c = sample("c.npy", "43");
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Identical rows, uniform over 1000 tokens: derived seeds make them draw differently.
    let distinct: std::collections::HashSet<i32> = a.iter().copied().collect();
    assert!(distinct.len() > 8, "{a:?}");
}

#[test]
fn a_row_with_its_own_seed_draws_the_same_anywhere() {
    let dir = Dir::new();
    let (batch, vocab) = (3, 500);
    let rows = logits(batch, vocab, 6);
    let row = |r: usize| &rows[r * vocab..(r + 1) * vocab];
    // File 1: rows A B C; file 2: rows C B A. Row A names its own seed and top_k in both.
    let one: Vec<f32> = [row(0), row(1), row(2)].concat();
    let two: Vec<f32> = [row(2), row(1), row(0)].concat();
    let (f1, f2) = (dir.path("1.npy"), dir.path("2.npy"));
    npy::write(&f1, &[batch, vocab], &one).unwrap();
    npy::write(&f2, &[batch, vocab], &two).unwrap();
    let (p1, p2) = (dir.path("p1.json"), dir.path("p2.json"));
    std::fs::write(
        &p1,
        r#"[{"seed": 1234, "top_k": 40}, {}, {"temperature": 0}]"#,
    )
    .unwrap();
    std::fs::write(
        &p2,
        r#"[{"temperature": 0}, {}, {"top_k": 40, "seed": 1234}]"#,
    )
    .unwrap();
    let sample = |input: &Path, params: &Path, name: &str| {
        let out = dir.path(name);
        let o = run(&[
            "sample",
            "--logits",
            s(input),
            "--params",
            s(params),
            "--out",
            s(&out),
            "--seed",
            "77",
            "--draws",
            "4",
            "--device",
            "cpu",
        ]);
        assert_ok(&o);
        read_tokens(&out).1
    };
    let t1 = sample(&f1, &p1, "o1.npy");
    let t2 = sample(&f2, &p2, "o2.npy");
    for d in 0..4 {
        assert_eq!(t1[d * batch], t2[d * batch + 2], "draw {d}");
        // The greedy row C is the argmax either way.
        assert_eq!(t1[d * batch + 2], t2[d * batch]);
    }
    // And all of it is the reference with the documented seeds.
    let flags = SamplingParams {
        seed: 77,
        ..Default::default()
    };
    let params = vec![
        SamplingParams {
            seed: 1234,
            top_k: 40,
            ..flags
        },
        SamplingParams {
            seed: row_seed(77, 1),
            ..flags
        },
        SamplingParams {
            temperature: 0.0,
            seed: row_seed(77, 2),
            ..flags
        },
    ];
    let want = expected(
        &LogitsBuf::F32(one),
        vocab,
        &params,
        4,
        &SampleOptions::default(),
    );
    assert_eq!(t1, tokens_of(&want));
}

#[test]
fn bad_logit_files_exit_2_in_one_line() {
    let dir = Dir::new();
    let out = dir.path("out.npy");
    let sample = |input: &Path| -> Vec<String> {
        [
            "sample",
            "--logits",
            s(input),
            "--out",
            s(&out),
            "--device",
            "cpu",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let fails = |input: &Path, needles: &[&str]| {
        let a = sample(input);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert_fails(&a, needles);
        assert!(!out.exists(), "no output after a failure");
    };

    fails(&dir.path("missing.npy"), &["missing.npy"]);

    let good = npy::to_bytes(&[2, 8], &[1.0f32; 16]).unwrap();
    let truncated = dir.path("truncated.npy");
    std::fs::write(&truncated, &good[..good.len() - 5]).unwrap();
    fails(&truncated, &["truncated.npy", "truncated", "64 bytes"]);

    let header_cut = dir.path("header_cut.npy");
    std::fs::write(&header_cut, &good[..40]).unwrap();
    fails(&header_cut, &["truncated .npy header"]);

    let garbage_header = dir.path("garbage_header.npy");
    std::fs::write(
        &garbage_header,
        npy_with_header("{'descr': <f4 what", &[0; 8]),
    )
    .unwrap();
    fails(&garbage_header, &["bad .npy header"]);

    let not_npy = dir.path("garbage.npy");
    std::fs::write(&not_npy, b"this is not a numpy file at all").unwrap();
    fails(&not_npy, &["not a .npy file"]);

    let not_anything = dir.path("garbage.bin");
    std::fs::write(&not_anything, [0xffu8; 64]).unwrap();
    fails(&not_anything, &["neither a .npy file", "safetensors"]);

    let int64 = dir.path("int64.npy");
    let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }";
    std::fs::write(&int64, npy_with_header(h, &[0; 32])).unwrap();
    fails(&int64, &["unsupported dtype <i8", "<f4"]);

    let big_endian = dir.path("big_endian.npy");
    let h = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }";
    std::fs::write(&big_endian, npy_with_header(h, &[0; 16])).unwrap();
    fails(&big_endian, &["big-endian"]);

    let fortran = dir.path("fortran.npy");
    let h = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }";
    std::fs::write(&fortran, npy_with_header(h, &[0; 16])).unwrap();
    fails(&fortran, &["Fortran"]);

    let three_d = dir.path("three_d.npy");
    npy::write(&three_d, &[2, 2, 2], &[0.0f32; 8]).unwrap();
    fails(&three_d, &["[batch, vocab]", "[2, 2, 2]"]);

    let ints = dir.path("ints.safetensors");
    let bytes: Vec<u8> = [1i32, 2, 3, 4]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2, 2], &bytes).unwrap();
    std::fs::write(
        &ints,
        safetensors::serialize([("logits", view)], None).unwrap(),
    )
    .unwrap();
    fails(&ints, &["unsupported dtype I32", "BF16"]);

    let st_garbage = dir.path("garbage.safetensors");
    std::fs::write(
        &st_garbage,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ",
    )
    .unwrap();
    fails(&st_garbage, &["not a valid safetensors file"]);

    let st_truncated = dir.path("truncated.safetensors");
    let st = io::safetensors::to_bytes(&[("x", &[4], &LogitsBuf::F32(vec![0.0; 4]))]).unwrap();
    std::fs::write(&st_truncated, &st[..st.len() - 3]).unwrap();
    fails(&st_truncated, &["not a valid safetensors file"]);

    let tensor_on_npy = good.clone();
    let npy_path = dir.path("good.npy");
    std::fs::write(&npy_path, tensor_on_npy).unwrap();
    let mut a = sample(&npy_path);
    a.extend(["--tensor".to_string(), "x".to_string()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_fails(&a, &["safetensors"]);
}

#[test]
fn bad_params_exit_2_naming_row_and_field() {
    let dir = Dir::new();
    let input = dir.path("l.npy");
    npy::write(&input, &[2, 10], &logits(2, 10, 9)).unwrap();
    let out = dir.path("out.npy");
    let with_params = |json: &str, needles: &[&str]| {
        let p = dir.path("p.json");
        std::fs::write(&p, json).unwrap();
        assert_fails(
            &[
                "sample",
                "--logits",
                s(&input),
                "--params",
                s(&p),
                "--out",
                s(&out),
            ],
            needles,
        );
        assert!(!out.exists());
    };
    with_params(r#"[{}, {"top_p": 2}]"#, &["row 1", "top_p"]);
    with_params(r#"[{"min_p": -0.5}, {}]"#, &["row 0", "min_p"]);
    with_params(r#"[{}, {}, {}]"#, &["3 parameter rows", "batch of 2"]);
    with_params(r#"[{}]"#, &["1 parameter rows"]);
    with_params(r#"[{}, {"topk": 3}]"#, &["row 1", "unknown field 'topk'"]);
    with_params(r#"[{}, {"top_k": "many"}]"#, &["row 1", "top_k"]);
    with_params(r#"[{}, {"#, &["invalid JSON"]);
    with_params(r#"{"top_k": 3}"#, &["list"]);
    assert_fails(
        &[
            "sample",
            "--logits",
            s(&input),
            "--params",
            s(&dir.path("none.json")),
            "--out",
            s(&out),
        ],
        &["none.json"],
    );

    // Flags are checked too, naming the flag.
    assert_fails(
        &[
            "sample",
            "--logits",
            s(&input),
            "--top-p",
            "2",
            "--out",
            s(&out),
        ],
        &["--top-p"],
    );
    assert_fails(
        &[
            "sample",
            "--logits",
            s(&input),
            "--out",
            s(&dir.path("no/such/dir/o.npy")),
        ],
        &["does not exist"],
    );
}

#[test]
fn devices_gpu_is_an_error_without_one_and_auto_falls_back() {
    let dir = Dir::new();
    let input = dir.path("l.npy");
    npy::write(&input, &[2, 50], &logits(2, 50, 10)).unwrap();
    let out = dir.path("out.npy");
    let args = |device: &str| {
        run(&[
            "sample",
            "--logits",
            s(&input),
            "--out",
            s(&out),
            "--seed",
            "1",
            "--device",
            device,
        ])
    };

    let gpu = args("gpu");
    if gpu.status.code() == Some(2) {
        // No GPU here: a clear one-line error.
        let err = stderr(&gpu);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no CUDA device"), "{err}");
        assert!(!err.contains("panicked"), "{err}");

        let auto = args("auto");
        assert_ok(&auto);
        let err = stderr(&auto);
        assert!(err.contains("falling back to the CPU"), "{err}");
        assert!(err.contains("on cpu"), "{err}");
        assert_eq!(read_tokens(&out).1.len(), 2);
    } else {
        // A machine with a GPU: both run on it.
        assert_ok(&gpu);
        assert!(stderr(&gpu).contains("on gpu"), "{}", stderr(&gpu));
        let auto = args("auto");
        assert_ok(&auto);
        assert!(stderr(&auto).contains("on gpu"), "{}", stderr(&auto));
    }
}

/// `--numerics invariant` on the CPU returns the kernels' bits: the twin's tokens and the exact
/// f32 logprobs, through the JSON output.
#[test]
fn sample_with_invariant_numerics_returns_the_twins_bits() {
    let dir = Dir::new();
    let (batch, vocab) = (4, 300);
    let xs = logits(batch, vocab, 11);
    let input = dir.path("l.npy");
    npy::write(&input, &[batch, vocab], &xs).unwrap();
    let out = dir.path("out.json");
    let o = run(&[
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--seed",
        "21",
        "--draws",
        "3",
        "--top-n",
        "2",
        "--top-p",
        "0.8",
        "--temperature",
        "0.7",
        "--numerics",
        "invariant",
        "--method",
        "inverse-cdf",
        "--device",
        "cpu",
    ]);
    assert_ok(&o);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let flags = SamplingParams {
        temperature: 0.7,
        top_p: 0.8,
        seed: 21,
        ..Default::default()
    };
    let params = io::uniform_row_params(&flags, batch);
    let opts = SampleOptions {
        method: DrawMethod::InverseCdf,
        top_n: 2,
        numerics: batchsample::Numerics::Invariant,
    };
    let want = expected(&LogitsBuf::F32(xs), vocab, &params, 3, &opts);
    for (d, rows) in json["draws"].as_array().unwrap().iter().enumerate() {
        for (r, row) in rows.as_array().unwrap().iter().enumerate() {
            let w = &want[d][r];
            assert_eq!(row["token"], w.token.unwrap());
            // The logprobs are f32 values; serde_json's float parsing may be 1 f64 ulp off.
            let f32_bits = |v: &serde_json::Value| (v.as_f64().unwrap() as f32).to_bits();
            assert_eq!(f32_bits(&row["logprob"]), (w.logprob as f32).to_bits());
            for (t, wt) in row["top_logprobs"]
                .as_array()
                .unwrap()
                .iter()
                .zip(&w.top_logprobs)
            {
                assert_eq!(t["token"], wt.token);
                assert_eq!(f32_bits(&t["logprob"]), (wt.logprob as f32).to_bits());
            }
        }
    }
}
