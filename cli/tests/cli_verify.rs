//! `batchsample verify` end to end: the JSON and `.npy` results equal `cpu::verify_batch` on the
//! same inputs with the seeds `sample` gives each row (dense and point-mass drafts, both draw
//! methods, per-request `--params` with processing spread over the target positions), `n = 0` is
//! `sample`, a draft past the vocabulary fails its request only, and every bad input exits 2 in
//! one line naming what is wrong.

use batchsample::cpu::verify_batch;
use batchsample::processing::{Penalties, ProcessingBuf, RowProcessing};
use batchsample::verify::{uniform_offsets, Drafts, VerifyOptions, VerifyOutput};
use batchsample::{with_logits, DrawMethod, LogitsBuf, Numerics, RowStatus, SamplingParams};
use batchsample_cli::io::{self, npy, row_seed, RowRequests};
use half::bf16;
use std::path::{Path, PathBuf};

mod common;
use common::*;

const BATCH: usize = 4;
const N: usize = 3;
const VOCAB: usize = 60;

/// One batch of inputs: target `[batch, n + 1, VOCAB]`, drafts `[batch, n]`, their
/// distributions `[batch, n, VOCAB]`.
struct Case {
    batch: usize,
    n: usize,
    target: Vec<f32>,
    tokens: Vec<i32>,
    probs: Vec<f32>,
}

impl Case {
    /// Drafts spread over the vocabulary; the target favours each draft a little (so chains
    /// both accept and reject), and the draft distributions are softmaxes of other logits.
    fn new(batch: usize, n: usize, salt: u64) -> Case {
        let mut target = logits(batch * (n + 1), VOCAB, salt);
        let tokens: Vec<i32> = (0..batch * n)
            .map(|i| ((i as u64 * 17 + salt * 5 + 3) % VOCAB as u64) as i32)
            .collect();
        for r in 0..batch {
            for j in 0..n {
                let row = r * (n + 1) + j;
                target[row * VOCAB + tokens[r * n + j] as usize] += 3.0;
            }
        }
        let mut probs = logits(batch * n, VOCAB, salt + 100);
        for row in probs.chunks_mut(VOCAB) {
            let w: Vec<f64> = row.iter().map(|&x| (x as f64).exp()).collect();
            let total: f64 = w.iter().sum();
            for (q, w) in row.iter_mut().zip(w) {
                *q = (w / total) as f32;
            }
        }
        Case {
            batch,
            n,
            target,
            tokens,
            probs,
        }
    }

    /// Writes the target, the drafts and the draft distributions; returns their paths.
    fn write(&self, dir: &Dir) -> (PathBuf, PathBuf, PathBuf) {
        let (target, drafts, probs) = (dir.path("t.npy"), dir.path("d.npy"), dir.path("q.npy"));
        npy::write(&target, &[self.batch, self.n + 1, VOCAB], &self.target).unwrap();
        npy::write(&drafts, &[self.batch, self.n], &self.tokens).unwrap();
        npy::write(&probs, &[self.batch, self.n, VOCAB], &self.probs).unwrap();
        (target, drafts, probs)
    }

    /// `cpu::verify_batch` on these inputs (`rows`: the processing of every target row).
    fn expected(
        &self,
        target: &LogitsBuf,
        dense: bool,
        params: &[SamplingParams],
        rows: &[RowProcessing],
        opts: VerifyOptions,
    ) -> Vec<VerifyOutput> {
        let offsets = uniform_offsets(self.batch, self.n);
        let tokens: Vec<u32> = self.tokens.iter().map(|&t| t as u32).collect();
        let drafts = Drafts {
            offsets: &offsets,
            tokens: &tokens,
            probs: dense.then_some(self.probs.as_slice()),
        };
        let processing = ProcessingBuf::from_rows(rows, None);
        with_logits!(target, v => verify_batch(
            v, VOCAB, &drafts, params, &processing.view(), &opts))
        .unwrap()
    }

    /// No processing on any target row.
    fn unprocessed(&self) -> Vec<RowProcessing> {
        vec![RowProcessing::default(); self.batch * (self.n + 1)]
    }
}

/// Runs `verify` with `args` to `out.json` and returns the parsed output and stderr.
fn verify_json(dir: &Dir, args: &[&str]) -> (serde_json::Value, String) {
    let out = dir.path("out.json");
    let mut all = vec!["verify", "--out", s(&out)];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_ok(&o);
    let json = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (json, stderr(&o))
}

fn status_name(s: RowStatus) -> serde_json::Value {
    serde_json::to_value(s).unwrap()
}

fn assert_matches(json: &serde_json::Value, want: &[VerifyOutput]) {
    let requests = json["requests"].as_array().unwrap();
    assert_eq!(requests.len(), want.len());
    for (r, (got, w)) in requests.iter().zip(want).enumerate() {
        assert_eq!(got["request"], r);
        assert_eq!(got["status"], status_name(w.status), "request {r}");
        assert_eq!(got["accepted"], w.accepted, "request {r}");
        let tokens: Vec<u32> = serde_json::from_value(got["tokens"].clone()).unwrap();
        assert_eq!(tokens, w.tokens, "request {r}");
        let logprobs: Vec<f64> = serde_json::from_value(got["logprobs"].clone()).unwrap();
        assert_eq!(logprobs.len(), w.logprobs.len(), "request {r}");
        for (a, b) in logprobs.iter().zip(&w.logprobs) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "request {r}: {a} vs {b}"
            );
        }
    }
}

fn read_tokens(path: &Path) -> (Vec<usize>, Vec<i32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        npy::NpyData::I32(v) => (a.shape, v),
        other => panic!("output dtype {:?}", other.dtype()),
    }
}

fn gumbel() -> VerifyOptions {
    VerifyOptions::default()
}

fn flags(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_k: 30,
        seed,
        step: 5,
        ..Default::default()
    }
}

#[test]
fn json_is_the_library_for_dense_and_point_mass_drafts_both_methods_and_numerics() {
    let dir = Dir::new();
    let case = Case::new(BATCH, N, 1);
    let (target, drafts, probs) = case.write(&dir);
    let params = RowRequests::uniform(&flags(11), &RowProcessing::default(), BATCH).params;
    let buf = LogitsBuf::F32(case.target.clone());
    let mut accepted_some = false;
    let mut rejected_some = false;
    for (method, numerics, dense) in [
        (DrawMethod::Gumbel, Numerics::Fast, true),
        (DrawMethod::Gumbel, Numerics::Fast, false),
        (DrawMethod::InverseCdf, Numerics::Fast, true),
        (DrawMethod::InverseCdf, Numerics::Fast, false),
        (DrawMethod::Gumbel, Numerics::Invariant, true),
        (DrawMethod::InverseCdf, Numerics::Invariant, false),
    ] {
        let name = match method {
            DrawMethod::Gumbel => "gumbel",
            DrawMethod::InverseCdf => "inverse-cdf",
        };
        let numerics_name = match numerics {
            Numerics::Fast => "fast",
            Numerics::Invariant => "invariant",
        };
        let mut args = vec![
            "--target",
            s(&target),
            "--draft-tokens",
            s(&drafts),
            "--seed",
            "11",
            "--step",
            "5",
            "--temperature",
            "0.8",
            "--top-k",
            "30",
            "--method",
            name,
            "--numerics",
            numerics_name,
        ];
        if dense {
            args.extend_from_slice(&["--draft-probs", s(&probs)]);
        }
        let (json, err) = verify_json(&dir, &args);
        // The default device says where it runs (a GPU-less machine: the CPU), then the
        // summary.
        if json["device"] == "cpu" {
            assert!(err.contains("on the CPU"), "{err}");
        }
        if json["device"] == "gpu" {
            // A GPU machine: the reference comparison below is the CPU's.
            args.extend_from_slice(&["--device", "cpu"]);
        }
        let (json, err) = if json["device"] == "gpu" {
            verify_json(&dir, &args)
        } else {
            (json, err)
        };
        assert!(
            err.contains("seed 11:") && err.contains("drafts accepted"),
            "{err}"
        );
        let opts = VerifyOptions { method, numerics };
        let want = case.expected(&buf, dense, &params, &case.unprocessed(), opts);
        assert_matches(&json, &want);
        assert_eq!(
            (&json["batch"], &json["n"], &json["vocab"]),
            (&BATCH.into(), &N.into(), &VOCAB.into())
        );
        assert_eq!(json["seed"], 11);
        assert_eq!(json["device"], "cpu");
        assert_eq!(json["method"], name);
        assert_eq!(json["numerics"], numerics_name);
        assert_eq!(json["draft_probs"], dense);
        for (r, request) in json["requests"].as_array().unwrap().iter().enumerate() {
            assert_eq!(request["seed"], row_seed(11, r));
            assert_eq!(request["step"], 5);
        }
        accepted_some |= want.iter().any(|o| o.accepted > 0);
        rejected_some |= want.iter().any(|o| o.accepted < N);
    }
    assert!(
        accepted_some && rejected_some,
        "the case exercises both outcomes"
    );

    // No --seed: a random one, reported and used.
    let (json, err) = verify_json(
        &dir,
        &[
            "--target",
            s(&target),
            "--draft-tokens",
            s(&drafts),
            "--device",
            "cpu",
        ],
    );
    assert!(err.contains("(random)"), "{err}");
    assert_eq!(err.lines().count(), 1, "--device cpu prints no note: {err}");
    let seed = json["seed"].as_u64().unwrap();
    let params = RowRequests::uniform(
        &SamplingParams {
            seed,
            ..Default::default()
        },
        &RowProcessing::default(),
        BATCH,
    )
    .params;
    let want = case.expected(&buf, false, &params, &case.unprocessed(), gumbel());
    assert_matches(&json, &want);
}

#[test]
fn per_request_params_and_processing_are_the_expanded_lists() {
    let dir = Dir::new();
    let mut case = Case::new(BATCH, N, 2);
    // Request 1 drafts token 5 three times, and the target makes 5 its greedy token at every
    // position: with a frequency penalty of 10 over the drafts before each position, only the
    // first is kept.
    for j in 0..N {
        case.tokens[N + j] = 5;
        case.target[((N + 1) + j) * VOCAB + 5] = 12.0;
    }
    let (target, drafts, probs) = case.write(&dir);
    let rows_json = dir.path("rows.json");
    std::fs::write(
        &rows_json,
        r#"[{"top_p": 0.9, "seed": 77, "banned_tokens": [0, 1, 2],
             "logit_bias": {"7": 2.5, "8": "-inf"}},
            {"temperature": 0, "frequency_penalty": 10, "output_tokens": [9]},
            {"min_p": 0.05, "step": 40, "prompt_tokens": [3, 4], "output_tokens": [4, 6, 6],
             "repetition_penalty": 1.3, "frequency_penalty": 0.4},
            {"top_k": 0}]"#,
    )
    .unwrap();
    let (json, _) = verify_json(
        &dir,
        &[
            "--target",
            s(&target),
            "--draft-tokens",
            s(&drafts),
            "--draft-probs",
            s(&probs),
            "--params",
            s(&rows_json),
            "--seed",
            "11",
            "--step",
            "5",
            "--temperature",
            "0.8",
            "--top-k",
            "30",
            "--presence-penalty",
            "0.3",
            "--device",
            "cpu",
        ],
    );

    let shared = RowProcessing {
        penalties: Penalties {
            presence: 0.3,
            ..Penalties::OFF
        },
        ..Default::default()
    };
    let mut requests = RowRequests::uniform(&flags(11), &shared, BATCH);
    requests.params[0].top_p = 0.9;
    requests.params[0].seed = 77;
    requests.processing[0].banned_tokens = vec![0, 1, 2];
    requests.processing[0].logit_bias = vec![(7, 2.5), (8, f32::NEG_INFINITY)];
    requests.params[1].temperature = 0.0;
    requests.processing[1].penalties.frequency = 10.0;
    requests.processing[1].output_tokens = vec![9];
    requests.params[2].min_p = 0.05;
    requests.params[2].step = 40;
    requests.processing[2].prompt_tokens = vec![3, 4];
    requests.processing[2].output_tokens = vec![4, 6, 6];
    requests.processing[2].penalties.repetition = 1.3;
    requests.processing[2].penalties.frequency = 0.4;
    requests.params[3].top_k = 0;
    // Target position j of request r: the request's lists, its output followed by d_1..d_j.
    let mut rows = Vec::new();
    for (r, request) in requests.processing.iter().enumerate() {
        for j in 0..=N {
            let mut row = request.clone();
            row.output_tokens
                .extend(case.tokens[r * N..r * N + j].iter().map(|&t| t as u32));
            rows.push(row);
        }
    }
    let buf = LogitsBuf::F32(case.target.clone());
    let want = case.expected(&buf, true, &requests.params, &rows, gumbel());
    assert_matches(&json, &want);
    assert_eq!(json["requests"][0]["seed"], 77);
    assert_eq!(json["requests"][2]["step"], 40);
    // The greedy request keeps its first 5, then the penalised position emits its greedy token.
    assert_eq!(json["requests"][1]["accepted"], 1);
    assert_eq!(json["requests"][1]["tokens"][0], 5);
    assert_ne!(json["requests"][1]["tokens"][1], 5);
    assert_eq!(json["requests"][1]["logprobs"][0], 0.0);
}

#[test]
fn npy_output_is_the_padded_tokens_and_safetensors_targets_read() {
    let dir = Dir::new();
    let case = Case::new(BATCH, N, 3);
    let (_, drafts, probs) = case.write(&dir);
    // A bf16 safetensors target.
    let target = dir.path("t.safetensors");
    let buf = LogitsBuf::Bf16(case.target.iter().map(|&x| bf16::from_f32(x)).collect());
    io::safetensors::write(&target, &[("logits", &[BATCH, N + 1, VOCAB], &buf)]).unwrap();
    let out = dir.path("v.npy");
    assert_ok(&run(&[
        "verify",
        "--target",
        s(&target),
        "--draft-tokens",
        s(&drafts),
        "--draft-probs",
        s(&probs),
        "--seed",
        "3",
        "--step",
        "5",
        "--temperature",
        "0.8",
        "--top-k",
        "30",
        "--out",
        s(&out),
    ]));
    let params = RowRequests::uniform(&flags(3), &RowProcessing::default(), BATCH).params;
    let want = case.expected(&buf, true, &params, &case.unprocessed(), gumbel());
    let padded: Vec<i32> = want.iter().flat_map(|o| o.padded_tokens(N)).collect();
    assert_eq!(read_tokens(&out), (vec![BATCH, N + 1], padded.clone()));
    assert!(padded.contains(&-1), "some request stops early");
}

#[test]
fn no_drafts_is_sample() {
    let dir = Dir::new();
    let batch = 5;
    let xs = logits(batch, VOCAB, 9);
    let (logits_path, target) = (dir.path("l.npy"), dir.path("t.npy"));
    npy::write(&logits_path, &[batch, VOCAB], &xs).unwrap();
    npy::write(&target, &[batch, 1, VOCAB], &xs).unwrap();
    let drafts = dir.path("d.npy");
    npy::write::<i32>(&drafts, &[batch, 0], &[]).unwrap();
    for (method, numerics) in [
        ("gumbel", "fast"),
        ("inverse-cdf", "fast"),
        ("gumbel", "invariant"),
        ("inverse-cdf", "invariant"),
    ] {
        let common = [
            "--seed",
            "123",
            "--step",
            "9",
            "--top-k",
            "20",
            "--top-p",
            "0.9",
            "--method",
            method,
            "--numerics",
            numerics,
            "--device",
            "cpu",
        ];
        let (sampled, verified) = (dir.path("s.npy"), dir.path("v.npy"));
        let mut args = vec!["sample", "--logits", s(&logits_path), "--out", s(&sampled)];
        args.extend_from_slice(&common);
        assert_ok(&run(&args));
        let mut args = vec![
            "verify",
            "--target",
            s(&target),
            "--draft-tokens",
            s(&drafts),
            "--out",
            s(&verified),
        ];
        args.extend_from_slice(&common);
        assert_ok(&run(&args));
        let (sample_shape, sample_tokens) = read_tokens(&sampled);
        assert_eq!(sample_shape, [1, batch]);
        assert_eq!(read_tokens(&verified), (vec![batch, 1], sample_tokens));
    }
}

#[test]
fn a_draft_past_the_vocabulary_fails_its_request_only() {
    let dir = Dir::new();
    let mut case = Case::new(BATCH, N, 4);
    let (target, drafts, _) = case.write(&dir);
    let args = |drafts: &Path, out: &Path| {
        run(&[
            "verify",
            "--target",
            s(&target),
            "--draft-tokens",
            s(drafts),
            "--seed",
            "8",
            "--out",
            s(out),
            "--device",
            "cpu",
        ])
    };
    let good = dir.path("good.json");
    assert_ok(&args(&drafts, &good));
    case.tokens[2 * N + 1] = VOCAB as i32;
    let bad_drafts = dir.path("bad.npy");
    npy::write(&bad_drafts, &[BATCH, N], &case.tokens).unwrap();
    let bad = dir.path("bad.json");
    let o = args(&bad_drafts, &bad);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("1 request failed (1 invalid_draft)"),
        "{}",
        stderr(&o)
    );
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (good, bad) = (read(&good), read(&bad));
    for r in 0..BATCH {
        let (g, b) = (&good["requests"][r], &bad["requests"][r]);
        if r == 2 {
            assert_eq!(b["status"], "invalid_draft");
            assert_eq!(b["accepted"], 0);
            assert_eq!(b["tokens"], serde_json::json!([]));
        } else {
            assert_eq!(g, b, "request {r}");
            assert_eq!(b["status"], "ok");
        }
    }
    // In the .npy output the request is all -1.
    let out = dir.path("bad.npy.out.npy");
    assert_ok(&args(&bad_drafts, &out));
    let (_, tokens) = read_tokens(&out);
    assert_eq!(tokens[2 * (N + 1)..3 * (N + 1)], [-1; N + 1]);
}

#[test]
fn bad_inputs_exit_2_in_one_line() {
    let dir = Dir::new();
    let case = Case::new(3, 3, 5);
    let (target, drafts, probs) = case.write(&dir);
    let out = dir.path("out.json");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "verify",
            "--target",
            s(&target),
            "--draft-tokens",
            s(&drafts),
            "--out",
            s(&out),
            "--seed",
            "1",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let fails = |args: Vec<String>, needles: &[&str]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails(&a, needles);
    };
    let with = |name: &str, shape: &[usize], tokens: &[i32]| -> PathBuf {
        let p = dir.path(name);
        npy::write(&p, shape, tokens).unwrap();
        p
    };

    // Drafts of another batch, or another n, than the target.
    let other_batch = with("b.npy", &[2, 3], &[1; 6]);
    let mut args = base(&[]);
    args[4] = s(&other_batch).into();
    fails(args, &["b.npy", "[2, 3]", "[3, 4, 60]", "t.npy"]);
    let other_n = with("n.npy", &[3, 2], &[1; 6]);
    let mut args = base(&[]);
    args[4] = s(&other_n).into();
    fails(
        args,
        &["n.npy", "[3, 2]", "[3, 4, 60]", "[batch, n] = [3, 3]"],
    );
    // Draft distributions of another vocabulary.
    let small_q = dir.path("q40.npy");
    npy::write(&small_q, &[3, 3, 40], &[0.025f32; 360]).unwrap();
    fails(
        base(&["--draft-probs", s(&small_q)]),
        &["q40.npy", "[3, 3, 40]", "[3, 4, 60]", "[3, 3, 60]"],
    );
    // A 2-D target.
    let flat = dir.path("flat.npy");
    npy::write(&flat, &[3, VOCAB], &case.target[..3 * VOCAB]).unwrap();
    let mut args = base(&[]);
    args[2] = s(&flat).into();
    fails(args, &["flat.npy", "[batch, n + 1, vocab]", "[3, 60]"]);
    // A negative draft token; float draft tokens.
    let negative = with("neg.npy", &[3, 3], &[1, 2, 3, 4, -2, 6, 7, 8, 9]);
    let mut args = base(&[]);
    args[4] = s(&negative).into();
    fails(args, &["neg.npy", "request 1 draft 1", "-2", "negative"]);
    let floats = dir.path("float.npy");
    npy::write(&floats, &[3, 3], &[1.0f32; 9]).unwrap();
    let mut args = base(&[]);
    args[4] = s(&floats).into();
    fails(args, &["float.npy", "unsupported dtype <f4", "int32"]);
    // Invalid flags and per-request parameters.
    fails(base(&["--top-p", "1.5"]), &["--top-p", "1.5"]);
    fails(base(&["--logit-bias", "60:1"]), &["--logit-bias", "60"]);
    let rows = dir.path("rows.json");
    std::fs::write(&rows, r#"[{}, {"top_p": 0}, {}]"#).unwrap();
    fails(
        base(&["--params", s(&rows)]),
        &["rows.json", "request 1", "top_p"],
    );
    std::fs::write(&rows, r#"[{}, {}, {"banned_tokens": [60]}]"#).unwrap();
    fails(
        base(&["--params", s(&rows)]),
        &["rows.json", "request 2", "banned_tokens", "60"],
    );
    std::fs::write(&rows, r#"[{}, {}]"#).unwrap();
    fails(
        base(&["--params", s(&rows)]),
        &["rows.json", "2 parameter rows", "batch of 3"],
    );
    // Without a GPU, --device gpu is an error.
    if !batchsample::gpu::gpu_available() {
        fails(
            base(&["--device", "gpu"]),
            &["--device gpu", "no CUDA device"],
        );
    }
    // Missing files and a missing output directory.
    let missing = s(&dir.path("nope.npy")).to_string();
    let mut args = base(&[]);
    args[2] = missing.clone();
    fails(args, &["nope.npy"]);
    let mut args = base(&[]);
    args[4] = missing.clone();
    fails(args, &["nope.npy"]);
    fails(base(&["--draft-probs", &missing]), &["nope.npy"]);
    fails(base(&["--params", &missing]), &["nope.npy"]);
    let mut args = base(&["--draft-probs", s(&probs)]);
    args[6] = s(&dir.path("no/such/dir/out.json")).into();
    fails(args, &["--out", "does not exist"]);
    // A missing required flag.
    assert_fails(
        &["verify", "--target", s(&target), "--out", s(&out)],
        &["--draft-tokens"],
    );
}
