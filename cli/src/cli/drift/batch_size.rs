//! `batchsample drift batch-size`: experiment 2 on the GPU (cuBLAS and the batch-invariant
//! projection kernel), or `--replot` of a saved report without one.

use anyhow::{anyhow, Context, Result};
use batchsample::{Dtype, SampleError};
use batchsample_cli::drift::batch_size::gpu::{DeviceElement, GpuBackendKind, GpuDevice};
use batchsample_cli::drift::batch_size::inputs::{self, FileSpec, ProjectionInputs, SyntheticSpec};
use batchsample_cli::drift::batch_size::{self, plot, Backend, Config, Position, Report};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BatchSizeArgs {
    /// Vocabulary size of the synthetic projection.
    #[arg(long, default_value_t = 32000, value_parser = clap::value_parser!(u64).range(2..=1_048_560))]
    pub vocab: u64,
    /// Hidden size of the synthetic inputs.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub d: u64,
    /// Element type of the hidden states and the projection (f32, bf16 or f16); files are
    /// converted to it (rounded to nearest even when narrowed).
    #[arg(long, default_value = "bf16")]
    pub dtype: Dtype,
    /// Pool rows, the rows of interest (with --hidden: at most this many rows of the file)
    /// [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub rows: Option<u64>,
    /// Fraction of synthetic rows whose top token gets a near-tie twin (relative 1e-7..1e-3).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.5,
        allow_negative_numbers = true
    )]
    pub near_ties: f64,
    /// Seed of the synthetic inputs.
    #[arg(long, short = 's', default_value_t = 42)]
    pub seed: u64,
    /// Batch sizes: sizes and inclusive ranges (batch 1, the baseline, is always computed).
    #[arg(long, default_value = "1-16,24,32,48,64,96,128,192,256")]
    pub batches: String,
    /// Where the row of interest sits: first, middle, last, or an index.
    #[arg(long, value_delimiter = ',', default_value = "first,middle,last")]
    pub positions: Vec<Position>,
    /// Backends to measure: cublas, invariant (the batch-invariant projection kernel).
    #[arg(long, value_delimiter = ',', default_value = "cublas,invariant")]
    pub backends: Vec<GpuBackendKind>,
    /// Timed runs per batch size and backend (CUDA events; 0: no timing).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub iterations: u32,
    /// Batch-1 rows of the invariant kernel checked bit for bit against its CPU twin.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub twin_rows: u32,
    /// Hidden states `[rows, d]` (.npy or safetensors) instead of synthetic ones.
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub hidden: Option<PathBuf>,
    /// Which tensor of a safetensors --hidden file.
    #[arg(long, value_name = "NAME", requires = "hidden")]
    pub hidden_tensor: Option<String>,
    /// Output projection `[vocab, d]` (e.g. a model's lm_head.weight) instead of a synthetic one.
    #[arg(long, value_name = "FILE", requires = "hidden")]
    pub weights: Option<PathBuf>,
    /// Which tensor of a safetensors --weights file.
    #[arg(long, value_name = "NAME", requires = "weights")]
    pub weights_tensor: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Write the figure as SVG.
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
    /// Print the summary of, and draw --svg from, a report written earlier by --json (no GPU).
    #[arg(long, value_name = "REPORT.json", conflicts_with_all = ["hidden", "weights", "json"])]
    pub replot: Option<PathBuf>,
}

pub fn run(a: &BatchSizeArgs) -> Result<()> {
    if let Some(path) = &a.replot {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--replot {}", path.display()))?;
        let rep: Report = serde_json::from_str(&text)
            .with_context(|| format!("--replot {}: not an experiment-2 report", path.display()))?;
        return output(a, &rep);
    }
    if !(0.0..=1.0).contains(&a.near_ties) {
        return Err(anyhow!(
            "invalid --near-ties {}: must be a fraction in [0, 1]",
            a.near_ties
        ));
    }
    let config = Config {
        batches: batch_size::parse_batches(&a.batches)
            .map_err(|e| anyhow!("invalid --batches '{}': {e}", a.batches))?,
        positions: a.positions.clone(),
        iterations: a.iterations as usize,
    };
    config.validate()?;
    let mut device = GpuDevice::open(0).map_err(|e| match e {
        SampleError::NoDevice(why) => {
            anyhow!("experiment 2 (drift batch-size) needs a GPU, and none is usable: {why}")
        }
        e => anyhow!(e),
    })?;
    if a.backends.contains(&GpuBackendKind::Cublas) {
        device.enable_cublas()?;
    }
    let inputs = prepare(a)?;
    let rep = match inputs.dtype {
        Dtype::F32 => measure::<f32>(a, &device, &inputs, &config)?,
        Dtype::F16 => measure::<half::f16>(a, &device, &inputs, &config)?,
        Dtype::Bf16 => measure::<half::bf16>(a, &device, &inputs, &config)?,
    };
    output(a, &rep)
}

fn prepare(a: &BatchSizeArgs) -> Result<ProjectionInputs> {
    let rows = a.rows.map(|r| r as usize);
    Ok(match (&a.hidden, &a.weights) {
        (Some(hidden), Some(weights)) => inputs::load(&FileSpec {
            hidden,
            hidden_tensor: a.hidden_tensor.as_deref(),
            weights,
            weights_tensor: a.weights_tensor.as_deref(),
            dtype: a.dtype,
            rows,
        })?,
        _ => inputs::synthetic(&SyntheticSpec {
            rows: rows.unwrap_or(64),
            d: a.d as usize,
            vocab: a.vocab as usize,
            dtype: a.dtype,
            near_ties: a.near_ties,
            seed: a.seed,
        })?,
    })
}

fn measure<T: DeviceElement>(
    a: &BatchSizeArgs,
    device: &GpuDevice,
    inputs: &ProjectionInputs,
    config: &Config,
) -> Result<Report> {
    let reference = batch_size::reference(inputs);
    let mut proj = device.upload::<T>(inputs, config.max_batch())?;
    let mut reports = Vec::new();
    let mut twin = None;
    for &kind in &a.backends {
        let mut backend = proj.backend(kind)?;
        let measured = batch_size::measure(&mut backend, inputs.vocab, &reference, config)?;
        if backend.batch_invariant() && a.twin_rows > 0 {
            twin = Some(batch_size::twin_check(
                inputs,
                &backend.name(),
                &measured.batch_1,
                a.twin_rows as usize,
            ));
        }
        reports.push(measured.report);
    }
    Ok(batch_size::assemble(
        inputs,
        &device.describe(),
        config,
        reference,
        reports,
        twin,
    ))
}

fn output(a: &BatchSizeArgs, rep: &Report) -> Result<()> {
    print!("{}", batch_size::summary(rep));
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(rep)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &a.svg {
        plot::write_svg(path, rep).with_context(|| format!("--svg {}", path.display()))?;
    }
    Ok(())
}
