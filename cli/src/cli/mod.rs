//! The command line: `batchsample demo`, `sample`, `verify`, `bench` and `drift`.

mod bars;
mod bench;
mod demo;
mod drift;
mod flags;
mod sample;
mod verify;

use anyhow::{anyhow, Result};
use batchsample::processing::{LogprobsMode, ProcessingBuf, RowProcessing};
use batchsample::{DrawMethod, Numerics, SampleError, SamplingParams};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Batched LLM token sampling: temperature, top-k, top-p and min-p over `[batch, vocab]` logits,
/// on an NVIDIA GPU or exactly on the CPU.
#[derive(Debug, Parser)]
#[command(name = "batchsample", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show how temperature, top-k, top-p and min-p reshape one distribution, then draw a token.
    Demo(DemoArgs),
    /// Sample tokens from a file of `[batch, vocab]` logits (.npy or safetensors).
    Sample(SampleArgs),
    /// Verify speculative-decoding drafts against target logits (`[batch, n + 1, vocab]`): how
    /// many drafts each request keeps and the tokens it emits (on the CPU).
    Verify(VerifyArgs),
    /// Time the sampler over a sweep of batch, vocab, dtype and mode against the memory floor.
    Bench(BenchArgs),
    /// Determinism-drift experiments: CPU emulations of GPU reduction orders, and the
    /// batch-size experiment (GPU).
    Drift(drift::DriftArgs),
}

/// How a token is drawn from the final distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Gumbel-max: the argmax of logit/T plus Gumbel noise.
    Gumbel,
    /// One uniform walked through the cumulative probabilities (like torch.multinomial).
    InverseCdf,
}

impl From<Method> for DrawMethod {
    fn from(m: Method) -> DrawMethod {
        match m {
            Method::Gumbel => DrawMethod::Gumbel,
            Method::InverseCdf => DrawMethod::InverseCdf,
        }
    }
}

impl From<DrawMethod> for Method {
    fn from(m: DrawMethod) -> Method {
        match m {
            DrawMethod::Gumbel => Method::Gumbel,
            DrawMethod::InverseCdf => Method::InverseCdf,
        }
    }
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Gumbel => "gumbel",
            Method::InverseCdf => "inverse-cdf",
        }
    }
}

/// How the sampler does its arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NumericsArg {
    /// GPU: CUDA expf/logf and f32 sums in a fixed block order; CPU: exact f64.
    Fast,
    /// Batch-invariant and bit-exact: the same bits on the GPU (any batch, position or run) and
    /// on the CPU.
    Invariant,
}

impl From<NumericsArg> for Numerics {
    fn from(n: NumericsArg) -> Numerics {
        match n {
            NumericsArg::Fast => Numerics::Fast,
            NumericsArg::Invariant => Numerics::Invariant,
        }
    }
}

/// Under which distribution `sample` reports logprobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogprobsArg {
    Processed,
    Raw,
}

impl From<LogprobsArg> for LogprobsMode {
    fn from(m: LogprobsArg) -> LogprobsMode {
        match m {
            LogprobsArg::Processed => LogprobsMode::Processed,
            LogprobsArg::Raw => LogprobsMode::Raw,
        }
    }
}

/// Where `sample` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The exact f64 CPU reference.
    Cpu,
    /// The CUDA kernels; an error when there is no usable GPU.
    Gpu,
    /// The GPU when there is one, else the CPU (saying so on stderr).
    Auto,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Comma-separated logits of a toy vocabulary (token 0, 1, ...); `-inf` masks a token.
    #[arg(
        long,
        value_name = "X,X,...",
        value_delimiter = ',',
        num_args = 1,
        allow_hyphen_values = true,
        value_parser = parse_logit,
        default_value = "2.0,1.0,0.5,0.1,-1.0"
    )]
    pub logits: Vec<f32>,
    /// Temperature (>= 0; 0 is greedy).
    #[arg(
        long,
        short = 't',
        default_value_t = 0.8,
        allow_negative_numbers = true
    )]
    pub temperature: f32,
    /// Keep the K highest-ranked tokens (0 = off).
    #[arg(
        long,
        short = 'k',
        value_name = "K",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub top_k: u32,
    /// Keep the smallest most-probable set whose mass reaches P, in (0, 1] (1 = off).
    #[arg(
        long,
        short = 'p',
        value_name = "P",
        default_value_t = 0.9,
        allow_negative_numbers = true
    )]
    pub top_p: f32,
    /// Drop tokens below M times the top probability, in [0, 1) (0 = off).
    #[arg(
        long,
        value_name = "M",
        default_value_t = 0.2,
        allow_negative_numbers = true
    )]
    pub min_p: f32,
    /// Seed of the random stream (default: a random one, printed so the draw can be repeated).
    #[arg(long, short = 's', allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Step (counter) of the random stream.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub step: u64,
    /// How the token is drawn.
    #[arg(long, value_enum, default_value_t = Method::Gumbel)]
    pub method: Method,
    /// Width of the bars in characters (a bar this long is 100%).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u16).range(5..=200))]
    pub width: u16,
    #[command(flatten)]
    pub processing: demo::DemoProcessing,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Logits file: .npy (float32/float16, C order; 1-D is one row) or safetensors (F32/F16/BF16).
    #[arg(long, value_name = "FILE")]
    pub logits: PathBuf,
    /// Which tensor of a safetensors file holding several.
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    /// Output: int32 .npy of shape [draws, batch] (failed rows -1), or JSON if it ends in .json.
    #[arg(long, short = 'o', value_name = "OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sampling: flags::SamplingFlags,
    /// Draws per row (each at the next step).
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub draws: u64,
    /// Report the N most probable tokens of each final distribution (JSON output).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub top_n: usize,
    /// How tokens are drawn.
    #[arg(long, value_enum, default_value_t = Method::Gumbel)]
    pub method: Method,
    /// Arithmetic: fast, or invariant (batch-invariant; the CPU returns the GPU's bits).
    #[arg(long, value_enum, default_value_t = NumericsArg::Fast)]
    pub numerics: NumericsArg,
    /// Per-row parameters: a JSON list of objects, one per logit row, with fields temperature,
    /// top_k, top_p, min_p, seed, step and the processing fields banned_tokens, logit_bias
    /// ({"token": bias} or [[token, bias], ...]; "-inf" bans), prompt_tokens, output_tokens,
    /// repetition_penalty, frequency_penalty, presence_penalty (missing fields take the flags'
    /// values).
    #[arg(long, value_name = "ROWS.json")]
    pub params: Option<PathBuf>,
    #[command(flatten)]
    pub shared: flags::ProcessingFlags,
    /// Allowed-token bitmask: int32 .npy of shape [batch, ceil(vocab/32)], bit j of word i set
    /// = token 32 i + j allowed (xgrammar / vLLM layout).
    #[arg(long, value_name = "MASK.npy")]
    pub bitmask: Option<PathBuf>,
    /// Which distribution the logprobs (JSON output) are taken under: processed (the final one,
    /// after processing and filters) or raw (the model's logits, softmax at temperature 1).
    #[arg(long, value_enum, default_value_t = LogprobsArg::Processed)]
    pub logprobs: LogprobsArg,
    /// Where to sample.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
}

/// Where `verify` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyDevice {
    /// The exact f64 CPU reference.
    Cpu,
    /// The CUDA kernels; an error when there is no usable GPU.
    Gpu,
    /// The GPU when there is one, else the CPU (saying so on stderr).
    Auto,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Target logits [batch, n + 1, vocab]: .npy (float32/float16, C order) or safetensors
    /// (F32/F16/BF16). Request r's position j scores draft j + 1; position n the bonus token.
    #[arg(long, value_name = "FILE")]
    pub target: PathBuf,
    /// Which tensor of a safetensors target file holding several.
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    /// Draft tokens: int32 .npy of shape [batch, n] (n may be 0).
    #[arg(long, value_name = "FILE")]
    pub draft_tokens: PathBuf,
    /// Draft distributions: float32/float16 .npy of shape [batch, n, vocab] (default: point
    /// masses, as for n-gram or greedy drafts).
    #[arg(long, value_name = "FILE")]
    pub draft_probs: Option<PathBuf>,
    /// Output: JSON if it ends in .json (per request: accepted, tokens, logprobs, status), else
    /// int32 .npy [batch, n + 1] of the emitted tokens, -1 after the last.
    #[arg(long, short = 'o', value_name = "OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sampling: flags::SamplingFlags,
    /// How resampled and bonus tokens are drawn.
    #[arg(long, value_enum, default_value_t = Method::Gumbel)]
    pub method: Method,
    /// Arithmetic: fast (exact f64), or invariant (the batch-invariant sampler's bits).
    #[arg(long, value_enum, default_value_t = NumericsArg::Fast)]
    pub numerics: NumericsArg,
    /// Per-request parameters: a JSON list of objects, one per request, with `sample`'s
    /// --params fields. The processing fields apply at every target position, position j's
    /// output_tokens followed by the drafts before it.
    #[arg(long, value_name = "ROWS.json")]
    pub params: Option<PathBuf>,
    #[command(flatten)]
    pub shared: flags::ProcessingFlags,
    /// Where to verify.
    #[arg(long, value_enum, default_value_t = VerifyDevice::Auto)]
    pub device: VerifyDevice,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Batch sizes [GPU default: 1,8,64,256,1024; CPU default: 1,8,64].
    #[arg(long, value_delimiter = ',')]
    pub batch: Option<Vec<usize>>,
    /// Vocabulary sizes [GPU default: 32000,128256,256000; CPU default: 32000,128256].
    #[arg(long, value_delimiter = ',')]
    pub vocab: Option<Vec<usize>>,
    /// Logit dtypes: f32, f16, bf16 [GPU default: f32,bf16,f16; CPU default: f32].
    #[arg(long, value_delimiter = ',')]
    pub dtype: Option<Vec<batchsample::Dtype>>,
    /// Modes: greedy, temperature, top-k (50), top-p (0.9), combined (top-k 50 + top-p 0.9 +
    /// min-p 0.05), mixed (per-row parameters), verify (speculative verification: `batch`
    /// requests of --drafts drafts of each --draft-kind, temperature 0.8; the floor is one read
    /// of the target rows and any draft distributions).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "greedy,temperature,top-k,top-p,combined,mixed"
    )]
    pub mode: Vec<batchsample_cli::bench::BenchMode>,
    /// Draft counts a request for --mode verify (one case each).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub drafts: Vec<usize>,
    /// Draft kinds for --mode verify: point (point masses) and/or dense (draft distributions,
    /// `[batch * n, vocab]` f32, counted in the floor's bytes).
    #[arg(long, value_delimiter = ',', default_value = "point", value_parser = ["point", "dense"])]
    pub draft_kind: Vec<String>,
    /// Draw methods.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "gumbel")]
    pub method: Vec<Method>,
    /// Logits processing, crossed with every mode: none, penalties (1024 prompt + 1024 output
    /// tokens a row; repetition 1.1, frequency 0.5, presence 0.5), bitmask (a random half of the
    /// vocabulary allowed), all (both), raw (no lists, raw logprobs: on the GPU a second launch
    /// scores the drawn token), all-raw (all with raw logprobs). With none as well, each
    /// processed case's cost is printed as a ratio to the unprocessed one.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub processing: Vec<batchsample_cli::bench::BenchProcessing>,
    /// Numerics: fast, invariant (batch-invariant, bit-exact with the CPU twin). Both: the
    /// invariant mode's cost is printed as a ratio to the fast one.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fast")]
    pub numerics: Vec<NumericsArg>,
    /// Shape of the synthetic rows: spiky (default: a third of the mass in a normal bulk, deep
    /// top-p sets) or peaked (closer to a trained LM: top-p 0.9 keeps a few dozen tokens).
    #[arg(long, default_value = "spiky")]
    pub shape: batchsample_cli::bench::RowShape,
    /// GPU kernels: auto (as `sample` picks them: the unfiltered kernels for batches without
    /// top-k, top-p or min-p, the collected ones for batches of small top-k rows), general (the
    /// general kernels for every batch), fields (auto, with the parameters as one device array
    /// per field). Several: each case is timed every way in one run.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    pub kernels: Vec<batchsample_cli::bench::BenchKernels>,
    /// GPU timing by CUDA-graph replay (one launch per rotated input buffer, time per launch):
    /// no host launch overhead, as in a serving loop that captures its step. Default: CUDA
    /// events around each launch.
    #[arg(long)]
    pub graph: bool,
    /// Timed iterations per case on the GPU (the CPU takes at most 5).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Write every result as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write every result as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Plot latency against batch (a panel per vocab, dtype and method; the floor dashed).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

fn parse_logit(s: &str) -> std::result::Result<f32, String> {
    let t = s.trim();
    t.parse::<f32>()
        .map_err(|_| format!("'{t}' is not a number (use e.g. 1.5, -2 or -inf)"))
}

fn parse_bias(s: &str) -> std::result::Result<(u32, f32), String> {
    let bad = || format!("'{s}' is not TOKEN:BIAS (e.g. 50256:-inf or 13:2.5)");
    let (t, b) = s.trim().split_once(':').ok_or_else(bad)?;
    Ok((
        t.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

/// Parses the command line. `Err` carries the exit code when the process should stop: 0 after
/// `--help` / `--version`, 2 after a usage error (printed as one line).
pub fn parse() -> std::result::Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("batchsample: {}", clap_one_line(&e));
            ExitCode::from(2)
        }
    })
}

/// A clap error as one line: its message, clap's tip if it has one, and where to look for help.
fn clap_one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "missing subcommand: use 'batchsample demo', 'sample', 'verify', 'bench' or 'drift' \
                (see --help)"
            .into();
    }
    let text = e.to_string();
    // The first paragraph is the message, maybe with indented details (the missing arguments,
    // the possible values); later ones hold tips, the usage line and a pointer to --help.
    let mut paragraphs = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty());
    let mut lines = paragraphs
        .next()
        .unwrap_or("invalid command line")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let head = lines.next().unwrap_or("invalid command line");
    let mut line = head.strip_prefix("error: ").unwrap_or(head).to_string();
    let details: Vec<&str> = lines.collect();
    if !details.is_empty() {
        line.push(' ');
        line.push_str(&details.join(", "));
    }
    for tip in paragraphs.filter_map(|p| p.strip_prefix("tip: ")) {
        line.push_str("; ");
        line.push_str(tip.lines().next().unwrap_or_default());
    }
    line.push_str(" (see --help)");
    line
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Sample(args) => sample::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Drift(args) => drift::run(&args),
    }
}

/// An error chain as one line (multi-line messages such as compiler logs are folded).
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The flag that sets each [`SamplingParams`] field.
fn flag_of(field: &str) -> &'static str {
    match field {
        "temperature" => "--temperature",
        "top_k" => "--top-k",
        "top_p" => "--top-p",
        "min_p" => "--min-p",
        "seed" => "--seed",
        "step" => "--step",
        "banned_tokens" => "--banned-tokens",
        "logit_bias" => "--logit-bias",
        "repetition_penalty" => "--repetition-penalty",
        "frequency_penalty" => "--frequency-penalty",
        "presence_penalty" => "--presence-penalty",
        _ => "a flag",
    }
}

/// Validates the parameters given by flags, naming the flag when one is out of range.
fn check_flags(p: &SamplingParams) -> Result<()> {
    match p.validate(0) {
        Ok(()) => Ok(()),
        Err(SampleError::InvalidParam {
            field,
            value,
            reason,
            ..
        }) => Err(anyhow!("invalid {} {value}: {reason}", flag_of(field))),
        Err(e) => Err(e.into()),
    }
}

/// Validates the processing given by flags against the vocabulary, naming the flag.
fn check_processing_flags(shared: &RowProcessing, vocab: usize) -> Result<()> {
    let one_row = ProcessingBuf::from_rows(std::slice::from_ref(shared), None);
    match one_row.view().validate(1, vocab) {
        Ok(()) => Ok(()),
        Err(SampleError::InvalidParam {
            field,
            value,
            reason,
            ..
        }) => Err(anyhow!("invalid {} {value}: {reason}", flag_of(field))),
        Err(e) => Err(e.into()),
    }
}
