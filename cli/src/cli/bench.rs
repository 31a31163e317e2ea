//! `batchsample bench`: the sweep, its table, and the JSON/CSV records.

use super::{BenchArgs, Device, Method, NumericsArg};
use anyhow::{Context, Result};
use batchsample::gpu::{GpuConfig, GpuSampler};
use batchsample::Dtype;
use batchsample_cli::bench::{
    bench_cpu, bench_gpu, invariant_cost_table, measure_device_bandwidth, measure_host_bandwidth,
    numerics_name, processing_cost_table, table, BenchCase, BenchKernels, BenchMode,
    BenchProcessing, BenchResult, GpuTiming,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub fn run(args: &BenchArgs) -> Result<()> {
    // The GPU gets the full sweep; the CPU reference a smaller one that finishes in about a
    // minute on two cores (every list can be given explicitly).
    let gpu_batches = args
        .batch
        .clone()
        .unwrap_or_else(|| vec![1, 8, 64, 256, 1024]);
    let max_batch = gpu_batches.iter().copied().max().unwrap_or(1);
    let gpu = match args.device {
        Device::Cpu => None,
        Device::Gpu => Some(
            GpuSampler::new(GpuConfig {
                max_batch,
                max_top_n: 0,
                ..GpuConfig::default()
            })
            .context("--device gpu")?,
        ),
        Device::Auto => match GpuSampler::new(GpuConfig {
            max_batch,
            max_top_n: 0,
            ..GpuConfig::default()
        }) {
            Ok(g) => Some(g),
            Err(e) => {
                let reason = e.to_string().lines().next().unwrap_or_default().to_string();
                eprintln!("batchsample: GPU unavailable ({reason}); benchmarking the CPU reference instead");
                None
            }
        },
    };
    let bandwidth = match &gpu {
        Some(g) => measure_device_bandwidth(g)?,
        None => measure_host_bandwidth(),
    };
    let device_name = match &gpu {
        Some(g) => format!("{} ({})", g.info().name, g.info().kernel_image),
        None if args.numerics.contains(&NumericsArg::Invariant) => {
            "CPU (fast: exact f64 reference; invariant: the kernels' bit-exact twin)".to_string()
        }
        None => "CPU (exact f64 reference)".to_string(),
    };
    eprintln!("batchsample: benchmarking on {device_name}");

    let (batches, vocabs, dtypes) = match &gpu {
        Some(_) => (
            gpu_batches,
            args.vocab
                .clone()
                .unwrap_or_else(|| vec![32000, 128256, 256000]),
            args.dtype
                .clone()
                .unwrap_or_else(|| vec![Dtype::F32, Dtype::Bf16, Dtype::F16]),
        ),
        None => (
            args.batch.clone().unwrap_or_else(|| vec![1, 8, 64]),
            args.vocab.clone().unwrap_or_else(|| vec![32000, 128256]),
            args.dtype.clone().unwrap_or_else(|| vec![Dtype::F32]),
        ),
    };
    // The CPU has one path: --kernels is a GPU A/B.
    let kernels = match &gpu {
        Some(_) => args.kernels.clone(),
        None => {
            if args.kernels.iter().any(|&k| k != BenchKernels::Auto) {
                eprintln!("batchsample: --kernels applies to the GPU only; the CPU has one path");
            }
            vec![BenchKernels::Auto]
        }
    };
    let processings = args.processing.clone();
    let dense_kinds: Vec<bool> = args.draft_kind.iter().map(|k| k == "dense").collect();
    let mut cases = Vec::new();
    for &vocab in &vocabs {
        for &dtype in &dtypes {
            for &mode in &args.mode {
                for &method in &args.method {
                    for &numerics in &args.numerics {
                        for &kernels in &kernels {
                            for (&batch, &processing) in iproduct(&batches, &processings) {
                                // Verification: one case per draft count, unprocessed, through
                                // its one launch (the general kernels).
                                let verify = mode == BenchMode::Verify;
                                if verify
                                    && (processing != BenchProcessing::None
                                        || kernels != BenchKernels::Auto)
                                {
                                    continue;
                                }
                                let drafts: &[usize] = if verify { &args.drafts } else { &[0] };
                                let kinds: &[bool] = if verify { &dense_kinds } else { &[false] };
                                for (&drafts, &dense_drafts) in iproduct(drafts, kinds) {
                                    cases.push(BenchCase {
                                        batch,
                                        vocab,
                                        dtype,
                                        mode,
                                        method: method.into(),
                                        numerics: numerics.into(),
                                        shape: args.shape,
                                        kernels,
                                        processing,
                                        drafts,
                                        dense_drafts,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(cases.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let timing = if args.graph {
        GpuTiming::Graph
    } else {
        GpuTiming::Events
    };
    if args.graph && gpu.is_none() {
        eprintln!("batchsample: --graph applies to the GPU only; the CPU is timed by the clock");
    }
    let mut results: Vec<BenchResult> = Vec::with_capacity(cases.len());
    for case in cases {
        bar.set_message(format!(
            "batch {} vocab {} {} {}",
            case.batch,
            case.vocab,
            case.dtype.name(),
            case.mode_label()
        ));
        let result = match &gpu {
            Some(g) => bench_gpu(g, case, args.iterations as usize, bandwidth, timing)?,
            None => bench_cpu(case, args.iterations.min(5) as usize, bandwidth)?,
        };
        results.push(result);
        bar.inc(1);
    }
    bar.finish_and_clear();

    println!("{device_name}; synthetic rows: {}", args.shape.name());
    if args.graph && gpu.is_some() {
        println!(
            "timing: CUDA graph replay (time per launch = replay time / launches in the graph)"
        );
    }
    print!("{}", table(&results, bandwidth));
    print!("{}", invariant_cost_table(&results));
    print!("{}", processing_cost_table(&results));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "device": device_name,
            "bandwidth_gbps": bandwidth,
            "row_shape": args.shape.name(),
            "results": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("--json {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        batchsample_cli::bench::write_svg(path, &results, &device_name, bandwidth)
            .with_context(|| format!("--svg {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        let mut s = String::from("device,batch,vocab,dtype,mode,processing,method,numerics,kernels,timing,median_us,p10_us,p90_us,achieved_gbps,floor_us,ratio_to_floor\n");
        for r in &results {
            let c = &r.case;
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.1},{:.3},{:.3}\n",
                r.device,
                c.batch,
                c.vocab,
                c.dtype.name(),
                c.mode_label(),
                c.processing.name(),
                Method::from(c.method).name(),
                numerics_name(c.numerics),
                c.kernels.name(),
                r.timing,
                r.median_us,
                r.p10_us,
                r.p90_us,
                r.achieved_gbps,
                r.floor_us,
                r.ratio_to_floor
            );
        }
        std::fs::write(path, s).with_context(|| format!("--csv {}", path.display()))?;
    }
    Ok(())
}

/// Every pair of `a` and `b`, `b` varying fastest.
fn iproduct<'a, A, B>(a: &'a [A], b: &'a [B]) -> impl Iterator<Item = (&'a A, &'a B)> {
    a.iter().flat_map(move |x| b.iter().map(move |y| (x, y)))
}
