//! `batchsample drift`: the determinism-drift experiments — CPU emulations of GPU reduction
//! orders (experiments 1 and 3), and the batch-size experiment on a GPU (experiment 2,
//! `batch_size.rs`).

mod batch_size;

use anyhow::{anyhow, Context, Result};
use batchsample_cli::drift::{self, plot, reduction_order, run_to_run, Batch, Setup};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(subcommand_required = true, arg_required_else_help = false)]
pub struct DriftArgs {
    #[command(subcommand)]
    pub experiment: Experiment,
}

#[derive(Debug, Subcommand)]
pub enum Experiment {
    /// Experiment 1: probabilities and drawn tokens under each summation order vs exact
    /// arithmetic.
    ReductionOrder(ReductionOrderArgs),
    /// Experiment 2 (needs a GPU): how the batch size moves projection logits (cuBLAS, and a
    /// batch-invariant kernel) and greedy tokens at temperature 0.
    BatchSize(batch_size::BatchSizeArgs),
    /// Experiment 3: the same batch run many times with float atomics vs fixed orders.
    RunToRun(RunToRunArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Rows of synthetic logits (with --logits: at most this many rows of the file)
    /// [default: 256 for reduction-order, 64 for run-to-run].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..1_000_000))]
    pub rows: Option<u64>,
    /// Vocabulary size of the synthetic logits.
    #[arg(long, default_value_t = 32000, value_parser = clap::value_parser!(u64).range(2..10_000_000))]
    pub vocab: u64,
    /// Fraction of synthetic rows whose top two logits are within 1e-6..1e-3 (relative).
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = 0.25,
        allow_negative_numbers = true
    )]
    pub near_ties: f64,
    /// Temperature (> 0).
    #[arg(
        long,
        short = 't',
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub temperature: f32,
    /// Seed of the synthetic logits, of the rows' random streams and of the atomics' arrival
    /// orders.
    #[arg(long, short = 's', default_value_t = 42)]
    pub seed: u64,
    /// First step of every row's random stream.
    #[arg(long, default_value_t = 0)]
    pub step: u64,
    /// Draws per row (steps step .. step + draws) [default: 8 for reduction-order, 4 for
    /// run-to-run].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..100_000))]
    pub draws: Option<u64>,
    /// Read `[batch, vocab]` logits (.npy or safetensors) instead of synthesising them.
    #[arg(long, value_name = "FILE")]
    pub logits: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Write the figure as SVG.
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReductionOrderArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RunToRunArgs {
    /// How many times the batch is run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..100_000))]
    pub runs: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn prepare(c: &CommonArgs, default_rows: usize, default_draws: u64) -> Result<(Batch, Setup)> {
    if !(0.0..=1.0).contains(&c.near_ties) {
        return Err(anyhow!(
            "invalid --near-ties {}: must be a fraction in [0, 1]",
            c.near_ties
        ));
    }
    let setup = Setup {
        temperature: c.temperature,
        seed: c.seed,
        step: c.step,
        draws: c.draws.unwrap_or(default_draws),
    };
    if !(setup.temperature.is_finite() && setup.temperature > 0.0) {
        return Err(anyhow!(
            "invalid --temperature {}: must be finite and > 0 (at 0 the sampler is an argmax, \
             exact under any order)",
            c.temperature
        ));
    }
    let batch = match &c.logits {
        Some(path) => drift::load_batch(path, c.rows.map(|r| r as usize))
            .with_context(|| format!("--logits {}", path.display()))?,
        None => drift::synthetic_batch(
            c.rows.map_or(default_rows, |r| r as usize),
            c.vocab as usize,
            c.near_ties,
            c.seed,
        ),
    };
    Ok((batch, setup))
}

fn write_json<T: serde::Serialize>(path: &Option<PathBuf>, doc: &T) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(doc)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    Ok(())
}

pub fn run(args: &DriftArgs) -> Result<()> {
    match &args.experiment {
        Experiment::ReductionOrder(a) => {
            let (batch, setup) = prepare(&a.common, 256, 8)?;
            let rep =
                reduction_order::run(&batch, &setup, &reduction_order::default_orders(setup.seed))?;
            print!("{}", reduction_order::summary(&rep));
            write_json(&a.common.json, &rep)?;
            if let Some(path) = &a.common.svg {
                plot::write_reduction_order_svg(path, &rep)
                    .with_context(|| format!("--svg {}", path.display()))?;
            }
        }
        Experiment::BatchSize(a) => batch_size::run(a)?,
        Experiment::RunToRun(a) => {
            let (batch, setup) = prepare(&a.common, 64, 4)?;
            let rep = run_to_run::run(
                &batch,
                &setup,
                &run_to_run::default_orders(),
                a.runs as usize,
            )?;
            print!("{}", run_to_run::summary(&rep));
            write_json(&a.common.json, &rep)?;
            if let Some(path) = &a.common.svg {
                plot::write_run_to_run_svg(path, &rep)
                    .with_context(|| format!("--svg {}", path.display()))?;
            }
        }
    }
    Ok(())
}
