//! `batchsample sample` with logits processing end to end: per-row `--params` fields, the shared
//! flags, `--bitmask` and `--logprobs`, checked against `cpu::sample_batch_processed`; bad
//! processing exits 2 in one line naming the row and field (or the flag).

use batchsample::cpu::sample_batch_processed;
use batchsample::processing::{
    bitmask_words, LogprobsMode, Penalties, ProcessingBuf, RowProcessing,
};
use batchsample::{RowOutput, SampleOptions, SamplingParams};
use batchsample_cli::io::{npy, row_seed, RowRequests};

mod common;
use common::*;

const BATCH: usize = 3;
const VOCAB: usize = 100;

/// A mask allowing the tokens `allowed(row, token)` says.
fn bitmask(allowed: impl Fn(usize, usize) -> bool) -> Vec<i32> {
    let words = bitmask_words(VOCAB);
    let mut mask = vec![0i32; BATCH * words];
    for r in 0..BATCH {
        for t in (0..VOCAB).filter(|&t| allowed(r, t)) {
            mask[r * words + t / 32] |= (1u32 << (t % 32)) as i32;
        }
    }
    mask
}

/// Runs `sample` to JSON on the CPU with `extra` flags; returns the parsed output.
fn sample_json(dir: &Dir, xs: &[f32], extra: &[&str]) -> serde_json::Value {
    let input = dir.path("l.npy");
    npy::write(&input, &[BATCH, VOCAB], xs).unwrap();
    let out = dir.path("out.json");
    let mut args = vec![
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
        "--top-k",
        "40",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    assert_ok(&run(&args));
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// Draw `d` of every row, as the binary must produce it.
fn expected(
    xs: &[f32],
    requests: &RowRequests,
    mask: Option<Vec<i32>>,
    logprobs: LogprobsMode,
) -> Vec<Vec<RowOutput>> {
    let buf = ProcessingBuf::from_rows(&requests.processing, mask);
    let opts = SampleOptions {
        top_n: 2,
        ..Default::default()
    };
    (0..3)
        .map(|d| {
            let at: Vec<SamplingParams> = requests.params.iter().map(|p| p.at_step(d)).collect();
            sample_batch_processed(xs, VOCAB, &at, &buf.view(), logprobs, &opts).unwrap()
        })
        .collect()
}

fn assert_matches(json: &serde_json::Value, want: &[Vec<RowOutput>]) {
    for (d, rows) in json["draws"].as_array().unwrap().iter().enumerate() {
        for (r, row) in rows.as_array().unwrap().iter().enumerate() {
            let w = &want[d][r];
            assert_eq!(row["token"], w.token.unwrap(), "draw {d} row {r}");
            assert!((row["logprob"].as_f64().unwrap() - w.logprob).abs() < 1e-12);
            let top = row["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), w.top_logprobs.len());
            for (t, wt) in top.iter().zip(&w.top_logprobs) {
                assert_eq!(t["token"], wt.token);
            }
        }
    }
}

fn flags() -> SamplingParams {
    SamplingParams {
        top_k: 40,
        seed: 21,
        ..Default::default()
    }
}

#[test]
fn per_row_fields_and_the_bitmask_sample_as_the_reference() {
    let dir = Dir::new();
    let xs = logits(BATCH, VOCAB, 3);
    let params = dir.path("rows.json");
    std::fs::write(
        &params,
        r#"[{"banned_tokens": [0, 1, 2], "logit_bias": {"7": 3.5, "8": "-inf"}},
            {"prompt_tokens": [5, 6], "output_tokens": [9, 9, 10], "repetition_penalty": 1.3,
             "frequency_penalty": 0.4, "presence_penalty": 0.2, "top_k": 0},
            {}]"#,
    )
    .unwrap();
    // Row 2 allows the even tokens only; the others everything.
    let mask = bitmask(|r, t| r != 2 || t % 2 == 0);
    let mask_path = dir.path("mask.npy");
    npy::write(&mask_path, &[BATCH, bitmask_words(VOCAB)], &mask).unwrap();
    let json = sample_json(
        &dir,
        &xs,
        &["--params", s(&params), "--bitmask", s(&mask_path)],
    );
    assert_eq!(json["logprobs"], "processed");
    let mut requests = RowRequests::uniform(&flags(), &RowProcessing::default(), BATCH);
    requests.params[1].top_k = 0;
    requests.processing[0] = RowProcessing {
        banned_tokens: vec![0, 1, 2],
        logit_bias: vec![(7, 3.5), (8, f32::NEG_INFINITY)],
        ..Default::default()
    };
    requests.processing[1] = RowProcessing {
        prompt_tokens: vec![5, 6],
        output_tokens: vec![9, 9, 10],
        penalties: Penalties {
            repetition: 1.3,
            frequency: 0.4,
            presence: 0.2,
        },
        ..Default::default()
    };
    let want = expected(&xs, &requests, Some(mask), LogprobsMode::Processed);
    assert_matches(&json, &want);
    for rows in json["draws"].as_array().unwrap() {
        let token = |r: usize| rows[r]["token"].as_u64().unwrap();
        assert!(![0, 1, 2, 8].contains(&token(0)));
        assert_eq!(token(2) % 2, 0, "row 2's mask allows even tokens only");
    }
}

#[test]
fn shared_flags_process_every_row_and_logprobs_can_be_raw() {
    let dir = Dir::new();
    let xs = logits(BATCH, VOCAB, 4);
    let json = sample_json(
        &dir,
        &xs,
        &[
            "--banned-tokens",
            "3,4",
            "--logit-bias",
            "11:-inf,12:1.5",
            "--repetition-penalty",
            "1.2",
            "--logprobs",
            "raw",
        ],
    );
    assert_eq!(json["logprobs"], "raw");
    let shared = RowProcessing {
        banned_tokens: vec![3, 4],
        logit_bias: vec![(11, f32::NEG_INFINITY), (12, 1.5)],
        penalties: Penalties {
            repetition: 1.2,
            ..Penalties::OFF
        },
        ..Default::default()
    };
    let requests = RowRequests::uniform(&flags(), &shared, BATCH);
    assert_eq!(requests.params[1].seed, row_seed(21, 1));
    let want = expected(&xs, &requests, None, LogprobsMode::Raw);
    assert_matches(&json, &want);
}

/// Processed rows, with processed or raw logprobs, take the device like any others (auto falls
/// back only for want of a GPU, and says so for that reason alone).
#[test]
fn processed_and_raw_logprobs_runs_take_the_device_like_any_others() {
    let dir = Dir::new();
    let input = dir.path("l.npy");
    npy::write(&input, &[BATCH, VOCAB], &logits(BATCH, VOCAB, 5)).unwrap();
    let out = dir.path("t.npy");
    let base = ["sample", "--logits", s(&input), "--out", s(&out)];
    for extra in [
        &["--banned-tokens", "7"][..],
        &["--banned-tokens", "7", "--logprobs", "raw"],
    ] {
        let run_ = run(&[&base[..], extra].concat());
        assert_ok(&run_);
        let said = stderr(&run_);
        assert!(!said.contains("CPU only"), "{extra:?}: {said}");
        assert!(
            !said.contains("falling back") || said.contains("GPU unavailable"),
            "{extra:?}: a fallback names the GPU's absence: {said}"
        );
    }
}

#[test]
fn bad_processing_exits_2_naming_row_and_field_or_flag() {
    let dir = Dir::new();
    let input = dir.path("l.npy");
    npy::write(&input, &[BATCH, VOCAB], &logits(BATCH, VOCAB, 6)).unwrap();
    let out = dir.path("t.npy");
    let base = [
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--device",
        "cpu",
    ];
    let with = |extra: &[&str], needles: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        assert_fails(&args, needles);
    };
    let rows = dir.path("rows.json");
    let with_rows = |json: &str, needles: &[&str]| {
        std::fs::write(&rows, json).unwrap();
        with(&["--params", s(&rows)], needles);
    };
    with_rows(
        r#"[{}, {"banned_tokens": [100]}, {}]"#,
        &["row 1", "banned_tokens", "100"],
    );
    with_rows(
        r#"[{}, {}, {"logit_bias": {"5": "inf"}}]"#,
        &["row 2", "logit_bias"],
    );
    with_rows(
        r#"[{"logit_bias": [[5, 1], [5, 2]]}, {}, {}]"#,
        &["row 0", "biased twice"],
    );
    with_rows(
        r#"[{"repetition_penalty": 0}, {}, {}]"#,
        &["row 0", "repetition_penalty"],
    );
    with_rows(
        r#"[{}, {"presence_penalty": "nan"}, {}]"#,
        &["row 1", "presence_penalty"],
    );
    with_rows(
        r#"[{}, {"output_tokens": [-3]}, {}]"#,
        &["row 1", "output_tokens"],
    );
    with_rows(
        r#"[{}, {"prompt_token": [3]}, {}]"#,
        &["unknown field 'prompt_token'", "prompt_tokens"],
    );
    with(&["--repetition-penalty", "-1"], &["--repetition-penalty"]);
    with(&["--frequency-penalty", "inf"], &["--frequency-penalty"]);
    with(&["--banned-tokens", "100"], &["--banned-tokens", "100"]);
    with(&["--logit-bias", "5:nan"], &["--logit-bias"]);
    with(&["--logit-bias", "5"], &["TOKEN:BIAS"]);
    let mask = dir.path("mask.npy");
    npy::write(&mask, &[BATCH, 3], &[0i32; BATCH * 3]).unwrap();
    with(&["--bitmask", s(&mask)], &["bitmask", "[3, 4]"]);
    npy::write(&mask, &[BATCH, 4], &[0f32; BATCH * 4]).unwrap();
    with(&["--bitmask", s(&mask)], &["int32"]);
}

#[test]
fn a_row_its_mask_empties_fails_alone() {
    let dir = Dir::new();
    let input = dir.path("l.npy");
    let xs = logits(BATCH, VOCAB, 7);
    npy::write(&input, &[BATCH, VOCAB], &xs).unwrap();
    // Row 1 allows nothing; row 0 only token 42; row 2 everything.
    let mask = bitmask(|r, t| r == 2 || (r == 0 && t == 42));
    let mask_path = dir.path("mask.npy");
    npy::write(&mask_path, &[BATCH, bitmask_words(VOCAB)], &mask).unwrap();
    let out = dir.path("t.npy");
    let o = run(&[
        "sample",
        "--logits",
        s(&input),
        "--out",
        s(&out),
        "--bitmask",
        s(&mask_path),
        "--draws",
        "50",
        "--device",
        "cpu",
    ]);
    assert_ok(&o);
    let npy::NpyData::I32(tokens) = npy::read(&out).unwrap().data else {
        panic!("tokens are int32")
    };
    for draw in tokens.chunks(BATCH) {
        assert_eq!(draw[0], 42);
        assert_eq!(draw[1], -1, "a row its mask empties fails");
        assert!(draw[2] >= 0);
    }
}

#[test]
fn demo_shows_each_processing_step_and_draws_as_sample_does() {
    let raw = [2.0f32, 1.0, 0.5, 0.1, -1.0];
    let args = [
        "demo",
        "--seed",
        "5",
        "--top-k",
        "0",
        "--min-p",
        "0",
        "--allowed-tokens",
        "0,1,2,4",
        "--banned-tokens",
        "2",
        "--logit-bias",
        "4:2.5,1:-inf",
        "--prompt-tokens",
        "4",
        "--output-tokens",
        "0,0",
        "--repetition-penalty",
        "1.3",
        "--frequency-penalty",
        "0.2",
    ];
    let o = run(&args);
    assert_ok(&o);
    let out = stdout(&o);
    for line in [
        "0. logits processing",
        "bitmask (--allowed-tokens): token 3 0.10 -> -inf",
        "banned tokens: token 2 0.50 -> -inf",
        "logit bias: token 1 1.00 -> -inf, token 4 -1.00 -> 1.50",
        // 2 / 1.3 - 0.2 * 2 and 1.5 / 1.3.
        "frequency 0.2 and presence 0 over output: token 0 2.00 -> 1.14, token 4 1.50 -> 1.15",
        "token 3  logit   -inf",
        "removed by processing (logit -inf)",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    // The drawn token is what `sample` draws from the processed row.
    let lists = RowProcessing {
        banned_tokens: vec![2],
        logit_bias: vec![(4, 2.5), (1, f32::NEG_INFINITY)],
        prompt_tokens: vec![4],
        output_tokens: vec![0, 0],
        penalties: Penalties {
            repetition: 1.3,
            frequency: 0.2,
            presence: 0.0,
        },
    };
    let mask = vec![0b10111i32];
    let buf = ProcessingBuf::from_rows(&[lists], Some(mask));
    let p = SamplingParams {
        temperature: 0.8,
        top_k: 0,
        top_p: 0.9,
        min_p: 0.0,
        seed: 5,
        step: 0,
    };
    let want = sample_batch_processed(
        &raw,
        5,
        &[p],
        &buf.view(),
        LogprobsMode::Processed,
        &SampleOptions::default(),
    )
    .unwrap();
    let drawn = format!("drawn: token {} ", want[0].token.unwrap());
    assert!(out.contains(&drawn), "{drawn:?} not in\n{out}");
    // Without processing there is no step 0.
    assert!(!stdout(&run(&["demo", "--seed", "5"])).contains("logits processing"));
}

#[test]
fn demo_rejects_bad_processing_in_one_line() {
    assert_fails(
        &["demo", "--allowed-tokens", "9"],
        &["--allowed-tokens", "token 9", "5 tokens"],
    );
    assert_fails(&["demo", "--banned-tokens", "7"], &["--banned-tokens", "7"]);
    assert_fails(&["demo", "--logit-bias", "1:nan"], &["--logit-bias"]);
    assert_fails(
        &["demo", "--repetition-penalty", "0"],
        &["--repetition-penalty"],
    );
    assert_fails(
        &["demo", "--banned-tokens", "0,1,2,3,4"],
        &["no finite logit"],
    );
}
