//! `batchsample verify`: speculative-decoding verification ([`batchsample::verify`]) of a uniform
//! `n` drafts per request, from files: on the GPU (`GpuSampler::verify_host`) where there is
//! one, else on the CPU (`cpu::verify_batch`).

use super::sample::{check_out_dir, fmt_duration, write_json_file};
use super::{check_flags, check_processing_flags, NumericsArg, VerifyArgs, VerifyDevice};
use anyhow::{anyhow, bail, Context, Result};
use batchsample::cpu::verify_batch;
use batchsample::gpu::{GpuConfig, GpuSampler};
use batchsample::processing::ProcessingBuf;
use batchsample::verify::{uniform_offsets, Drafts, VerifyOptions, VerifyOutput};
use batchsample::{with_logits, RowStatus, SampleError, SamplingParams};
use batchsample_cli::io::verify::{read_verify_inputs, target_row_processing, VerifyInputs};
use batchsample_cli::io::{self, RowRequests};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub fn run(args: &VerifyArgs) -> Result<()> {
    let started = Instant::now();
    let (flags, random_seed) = args.sampling.params();
    let base_seed = flags.seed;
    check_flags(&flags)?;
    check_out_dir(&args.out)?;

    // Everything is read and validated before any work.
    let inputs = read_verify_inputs(
        &args.target,
        args.tensor.as_deref(),
        &args.draft_tokens,
        args.draft_probs.as_deref(),
    )?;
    let VerifyInputs {
        batch, n, vocab, ..
    } = inputs;
    if vocab > i32::MAX as usize {
        bail!(
            "{}: a vocabulary of {vocab} tokens does not fit int32 token ids",
            args.target.display()
        );
    }
    let shared = args.shared.row();
    check_processing_flags(&shared, vocab)?;
    let requests = match &args.params {
        Some(path) => io::read_row_requests(path, &flags, &shared, batch)
            .map_err(|e| per_request(e, Some(path)))?,
        None => RowRequests::uniform(&flags, &shared, batch),
    };
    for (r, p) in requests.params.iter().enumerate() {
        p.validate(r)
            .map_err(|e| per_request(e, args.params.as_deref()))?;
    }
    ProcessingBuf::from_rows(&requests.processing, None)
        .view()
        .validate(batch, vocab)
        .map_err(|e| per_request(e, args.params.as_deref()))?;
    let rows = target_row_processing(&requests.processing, &inputs.draft_tokens, n, vocab);
    let processing = ProcessingBuf::from_rows(&rows, None);

    let offsets = uniform_offsets(batch, n);
    let drafts = Drafts {
        offsets: &offsets,
        tokens: &inputs.draft_tokens,
        probs: inputs.draft_probs.as_deref(),
    };
    let opts = VerifyOptions {
        method: args.method.into(),
        numerics: args.numerics.into(),
    };
    let gpu = open_gpu(args.device, batch * (n + 1))?;
    let device = if gpu.is_some() { "gpu" } else { "cpu" };
    let verifying = Instant::now();
    let outputs = match &gpu {
        Some(gpu) => with_logits!(&inputs.target, v => gpu.verify_host(
            v, vocab, &drafts, &requests.params, &processing.view(), &opts))?,
        None => with_logits!(&inputs.target, v => verify_batch(
            v, vocab, &drafts, &requests.params, &processing.view(), &opts))?,
    };
    let verify_time = verifying.elapsed();

    let json = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        write_json(args, &inputs, &requests.params, &outputs, base_seed, device)?;
    } else {
        let tokens: Vec<i32> = outputs.iter().flat_map(|o| o.padded_tokens(n)).collect();
        io::npy::write(&args.out, &[batch, n + 1], &tokens)?;
    }

    let ok: Vec<&VerifyOutput> = outputs
        .iter()
        .filter(|o| o.status == RowStatus::Ok)
        .collect();
    let accepted: usize = ok.iter().map(|o| o.accepted).sum();
    eprintln!(
        "batchsample: {batch} requests x {n} drafts (vocab {vocab}, {}, {} drafts) on {device} in {} \
         (total {}), seed {base_seed}{}: {accepted} of {} drafts accepted{} -> {}",
        inputs.target.dtype().name(),
        if inputs.draft_probs.is_some() {
            "dense"
        } else {
            "point-mass"
        },
        fmt_duration(verify_time),
        fmt_duration(started.elapsed()),
        if random_seed { " (random)" } else { "" },
        ok.len() * n,
        failures(&outputs),
        args.out.display()
    );
    Ok(())
}

/// The GPU that verifies this run, if one does (auto says on stderr when it falls back to the
/// CPU; gpu requires one).
fn open_gpu(device: VerifyDevice, rows: usize) -> Result<Option<GpuSampler>> {
    let config = GpuConfig {
        max_batch: rows,
        max_top_n: 0,
        ..GpuConfig::default()
    };
    match device {
        VerifyDevice::Cpu => Ok(None),
        VerifyDevice::Gpu => Ok(Some(GpuSampler::new(config).context("--device gpu")?)),
        VerifyDevice::Auto => match GpuSampler::new(config) {
            Ok(g) => Ok(Some(g)),
            Err(e) => {
                let reason = e.to_string().lines().next().unwrap_or_default().to_string();
                eprintln!("batchsample: GPU unavailable ({reason}); verifying on the CPU");
                Ok(None)
            }
        },
    }
}

/// A parameter error of request `r` (the library's "row") named as a request, and the file's.
fn per_request(e: SampleError, path: Option<&Path>) -> anyhow::Error {
    let SampleError::InvalidParam {
        row,
        field,
        value,
        reason,
    } = e
    else {
        return e.into();
    };
    let at = path.map_or(String::new(), |p| format!("{}: ", p.display()));
    anyhow!("{at}request {row}: invalid {field} = {value}: {reason}")
}

/// "; 2 requests failed (1 invalid_draft, 1 non_finite_logit), tokens -1", or nothing.
fn failures(outputs: &[VerifyOutput]) -> String {
    let mut counts: Vec<(RowStatus, usize)> = Vec::new();
    for o in outputs.iter().filter(|o| o.status != RowStatus::Ok) {
        match counts.iter_mut().find(|(s, _)| *s == o.status) {
            Some((_, c)) => *c += 1,
            None => counts.push((o.status, 1)),
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    counts.sort_by_key(|&(s, _)| s as u32);
    let total: usize = counts.iter().map(|&(_, c)| c).sum();
    let each: Vec<String> = counts
        .iter()
        .map(|&(s, c)| format!("{c} {}", status_name(s)))
        .collect();
    format!(
        "; {total} request{} failed ({}), tokens -1",
        if total == 1 { "" } else { "s" },
        each.join(", ")
    )
}

/// The status as the JSON output spells it.
fn status_name(s: RowStatus) -> String {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{s:?}"),
    }
}

#[derive(Serialize)]
struct JsonOut<'a> {
    batch: usize,
    /// Drafts per request.
    n: usize,
    vocab: usize,
    device: &'a str,
    method: &'a str,
    /// fast or invariant.
    numerics: &'a str,
    /// Whether the drafts came with distributions (`--draft-probs`) or are point masses.
    draft_probs: bool,
    /// The base seed (`--seed`) the requests without their own seed derive theirs from.
    seed: u64,
    requests: Vec<JsonRequest>,
}

#[derive(Serialize)]
struct JsonRequest {
    request: usize,
    seed: u64,
    step: u64,
    accepted: usize,
    tokens: Vec<u32>,
    logprobs: Vec<f64>,
    status: RowStatus,
}

fn write_json(
    args: &VerifyArgs,
    inputs: &VerifyInputs,
    params: &[SamplingParams],
    outputs: &[VerifyOutput],
    seed: u64,
    device: &'static str,
) -> Result<()> {
    let out = JsonOut {
        batch: inputs.batch,
        n: inputs.n,
        vocab: inputs.vocab,
        device,
        method: args.method.name(),
        numerics: match args.numerics {
            NumericsArg::Fast => "fast",
            NumericsArg::Invariant => "invariant",
        },
        draft_probs: inputs.draft_probs.is_some(),
        seed,
        requests: outputs
            .iter()
            .zip(params)
            .enumerate()
            .map(|(request, (o, p))| JsonRequest {
                request,
                seed: p.seed,
                step: p.step,
                accepted: o.accepted,
                tokens: o.tokens.clone(),
                logprobs: o.logprobs.clone(),
                status: o.status,
            })
            .collect(),
    };
    write_json_file(&args.out, &out)
}
