//! `batchsample sample`: tokens for every row of a logits file, on the GPU or the CPU.

use super::{check_flags, check_processing_flags, Device, SampleArgs};
use anyhow::{anyhow, bail, Context, Result};
use batchsample::cpu::{sample_batch, sample_batch_processed};
use batchsample::gpu::{GpuConfig, GpuSampler};
use batchsample::processing::{bitmask_words, LogprobsMode, ProcessingBuf, RowProcessing};
use batchsample::{with_logits, RowOutput, RowStatus, SampleOptions, SamplingParams, TokenLogprob};
use batchsample_cli::io::{self, Logits, RowRequests};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// On the CPU a draw is split into chunks of about this many logits, so the progress bar moves.
const CPU_CHUNK_LOGITS: usize = 1 << 22;

enum Backend {
    Cpu,
    Gpu(Box<GpuSampler>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu(_) => "gpu",
        }
    }
}

pub fn run(args: &SampleArgs) -> Result<()> {
    let started = Instant::now();
    let (flags, random_seed) = args.sampling.params();
    let base_seed = flags.seed;
    check_flags(&flags)?;
    check_out_dir(&args.out)?;

    // Everything is read and validated before any work.
    let logits = io::read_logits(&args.logits, args.tensor.as_deref())?;
    if logits.vocab > i32::MAX as usize {
        bail!(
            "{}: a vocabulary of {} tokens does not fit int32 token ids",
            args.logits.display(),
            logits.vocab
        );
    }
    let shared = args.shared.row();
    check_processing_flags(&shared, logits.vocab)?;
    let requests = match &args.params {
        Some(path) => io::read_row_requests(path, &flags, &shared, logits.batch)?,
        None => RowRequests::uniform(&flags, &shared, logits.batch),
    };
    let bitmask = match &args.bitmask {
        Some(path) => Some(io::processing::read_bitmask(
            path,
            logits.batch,
            logits.vocab,
        )?),
        None => None,
    };
    let processing = Processing::new(
        requests.processing,
        bitmask,
        logits.vocab,
        args.logprobs.into(),
    )?;
    let params = requests.params;
    for (row, p) in params.iter().enumerate() {
        p.validate(row)?;
        if p.step.checked_add(args.draws - 1).is_none() {
            bail!(
                "row {row}: step {} + {} draws overflows 64 bits",
                p.step,
                args.draws
            );
        }
    }
    let opts = SampleOptions {
        method: args.method.into(),
        top_n: args.top_n,
        numerics: args.numerics.into(),
    };

    let mut backend = open_backend(args.device, &logits, args.top_n)?;
    let sampling = Instant::now();
    let draws = draw_all(
        &mut backend,
        &logits,
        &params,
        &processing,
        &opts,
        args.draws,
    )?;
    let sample_time = sampling.elapsed();

    let json = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let written = if json {
        write_json(args, &logits, &params, &draws, backend.name(), base_seed)
    } else {
        let tokens: Vec<i32> = draws
            .iter()
            .flatten()
            .map(|o| o.token.map_or(-1, |t| t as i32))
            .collect();
        io::write_tokens_npy(&args.out, draws.len(), logits.batch, &tokens).map_err(Into::into)
    };
    written?;

    let failed = draws
        .iter()
        .flatten()
        .filter(|o| o.status != RowStatus::Ok)
        .count();
    eprintln!(
        "batchsample: {} rows x {} draws (vocab {}, {}) on {} in {} (total {}), seed {}{}{} -> {}",
        logits.batch,
        args.draws,
        logits.vocab,
        logits.data.dtype().name(),
        backend.name(),
        fmt_duration(sample_time),
        fmt_duration(started.elapsed()),
        base_seed,
        if random_seed { " (random)" } else { "" },
        if failed > 0 {
            format!("; {failed} row draws failed (non-finite logits), token -1")
        } else {
            String::new()
        },
        args.out.display()
    );
    Ok(())
}

pub(super) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Fails early when the output's directory does not exist, rather than after the work.
pub(super) fn check_out_dir(out: &Path) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "--out {}: directory {} does not exist",
                out.display(),
                dir.display()
            );
        }
    }
    if out.is_dir() {
        bail!("--out {}: is a directory", out.display());
    }
    Ok(())
}

/// A run's logits processing, validated, and how its logprobs are reported.
struct Processing {
    rows: Vec<RowProcessing>,
    bitmask: Option<Vec<i32>>,
    logprobs: LogprobsMode,
    /// Whether any row is processed or logprobs are raw; else the plain samplers run.
    active: bool,
}

impl Processing {
    fn new(
        rows: Vec<RowProcessing>,
        bitmask: Option<Vec<i32>>,
        vocab: usize,
        logprobs: LogprobsMode,
    ) -> Result<Processing> {
        let batch = rows.len();
        let buf = ProcessingBuf::from_rows(&rows, bitmask);
        let view = buf.view();
        view.validate(batch, vocab)?;
        let active = logprobs == LogprobsMode::Raw
            || buf.bitmask.is_some()
            || (0..batch).any(|r| !view.row(r, vocab).is_off());
        Ok(Processing {
            rows,
            bitmask: buf.bitmask,
            logprobs,
            active,
        })
    }

    /// The CSR buffers of rows `first..first + len`.
    fn chunk(&self, first: usize, len: usize, vocab: usize) -> ProcessingBuf {
        let words = bitmask_words(vocab);
        let mask = self
            .bitmask
            .as_ref()
            .map(|m| m[first * words..(first + len) * words].to_vec());
        ProcessingBuf::from_rows(&self.rows[first..first + len], mask)
    }
}

fn open_backend(device: Device, logits: &Logits, top_n: usize) -> Result<Backend> {
    // Device 0 and the other defaults; only the capacities this run needs are set.
    let config = GpuConfig {
        max_batch: logits.batch,
        max_top_n: top_n,
        ..GpuConfig::default()
    };
    match device {
        Device::Cpu => Ok(Backend::Cpu),
        Device::Gpu => GpuSampler::new(config)
            .map(|g| Backend::Gpu(Box::new(g)))
            .context("--device gpu"),
        Device::Auto => match GpuSampler::new(config) {
            Ok(g) => Ok(Backend::Gpu(Box::new(g))),
            Err(e) => {
                let reason = e.to_string().lines().next().unwrap_or_default().to_string();
                eprintln!("batchsample: GPU unavailable ({reason}); falling back to the CPU");
                Ok(Backend::Cpu)
            }
        },
    }
}

/// `draws` draws of every row; draw `d` of a row uses the row's `step + d`.
fn draw_all(
    backend: &mut Backend,
    logits: &Logits,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    draws: u64,
) -> Result<Vec<Vec<RowOutput>>> {
    let (batch, vocab) = (logits.batch, logits.vocab);
    if let Backend::Gpu(gpu) = backend {
        // The logits (and lists) go to the device once; each draw moves only parameters and
        // results.
        let progress = progress_bar(draws);
        let all = if processing.active {
            let buf = processing.chunk(0, batch, vocab);
            with_logits!(&logits.data, v => gpu.sample_host_processed_steps(
                v, vocab, params, &buf.view(), processing.logprobs, opts, draws,
                |_| progress.inc(1)))?
        } else {
            with_logits!(&logits.data, v => gpu.sample_host_steps(
                v, vocab, params, opts, draws, |_| progress.inc(1)))?
        };
        progress.finish_and_clear();
        return Ok(all);
    }
    let chunk_rows = (CPU_CHUNK_LOGITS / vocab).clamp(1, batch);
    let chunks = batch.div_ceil(chunk_rows);
    // Every draw samples the same logits and history at its own step: the lists do not grow.
    let chunk_processing: Vec<ProcessingBuf> = if processing.active {
        (0..chunks)
            .map(|c| {
                let first = c * chunk_rows;
                processing.chunk(first, chunk_rows.min(batch - first), vocab)
            })
            .collect()
    } else {
        Vec::new()
    };
    let progress = progress_bar(draws * chunks as u64);
    let mut all = Vec::with_capacity(draws as usize);
    for d in 0..draws {
        let at_step: Vec<SamplingParams> = params.iter().map(|p| p.at_step(p.step + d)).collect();
        let mut outputs = Vec::with_capacity(batch);
        for (c, chunk) in at_step.chunks(chunk_rows).enumerate() {
            let first = c * chunk_rows;
            let range = first * vocab..(first + chunk.len()) * vocab;
            let out = match chunk_processing.get(c) {
                Some(buf) => with_logits!(&logits.data, v => sample_batch_processed(
                    &v[range], vocab, chunk, &buf.view(), processing.logprobs, opts))?,
                None => {
                    with_logits!(&logits.data, v => sample_batch(&v[range], vocab, chunk, opts))?
                }
            };
            outputs.extend(out);
            progress.inc(1);
        }
        all.push(outputs);
    }
    progress.finish_and_clear();
    Ok(all)
}

/// A progress bar on stderr when it is a terminal and there is more than one step; else hidden.
fn progress_bar(len: u64) -> ProgressBar {
    if len < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "sampling [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[derive(Serialize)]
struct JsonOut<'a> {
    batch: usize,
    vocab: usize,
    num_draws: usize,
    device: &'a str,
    method: &'a str,
    /// The distribution the logprobs are taken under: processed or raw.
    logprobs: &'a str,
    /// The base seed (`--seed`) the rows without their own seed derive theirs from.
    seed: u64,
    /// `draws[d][row]`.
    draws: Vec<Vec<JsonRow>>,
}

#[derive(Serialize)]
struct JsonRow {
    row: usize,
    seed: u64,
    step: u64,
    token: Option<u32>,
    logprob: Option<f64>,
    top_logprobs: Vec<TokenLogprob>,
    status: RowStatus,
}

fn write_json(
    args: &SampleArgs,
    logits: &Logits,
    params: &[SamplingParams],
    draws: &[Vec<RowOutput>],
    device: &str,
    seed: u64,
) -> Result<()> {
    let out = JsonOut {
        batch: logits.batch,
        vocab: logits.vocab,
        num_draws: draws.len(),
        device,
        method: args.method.name(),
        logprobs: match args.logprobs.into() {
            LogprobsMode::Processed => "processed",
            LogprobsMode::Raw => "raw",
        },
        seed,
        draws: draws
            .iter()
            .enumerate()
            .map(|(d, rows)| {
                rows.iter()
                    .zip(params)
                    .enumerate()
                    .map(|(row, (o, p))| JsonRow {
                        row,
                        seed: p.seed,
                        step: p.step + d as u64,
                        token: o.token,
                        logprob: o.token.and(Some(o.logprob)).filter(|l| l.is_finite()),
                        top_logprobs: o.top_logprobs.clone(),
                        status: o.status,
                    })
                    .collect()
            })
            .collect(),
    };
    write_json_file(&args.out, &out)
}

/// Writes `value` as one line of JSON to `path` (the error names the path).
pub(super) fn write_json_file(path: &Path, value: &impl Serialize) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer(&mut w, value)?;
        w.write_all(b"\n")?;
        w.flush()
    };
    write().map_err(|e| anyhow!("{}: {e}", path.display()))
}
