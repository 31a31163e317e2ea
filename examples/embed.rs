//! The library as a serving engine embeds it: logits and per-row parameters already on the
//! device, tokens written straight into the next step's input-id buffer, on the engine's own
//! stream, captured once into a CUDA graph and replayed each step (only the parameters' `step`
//! is rewritten in place). Without a GPU it runs the CPU reference on the same inputs and says so.
//!
//! `cargo run --release --example embed`

use batchsample::cpu::sample_batch;
use batchsample::gpu::{GpuConfig, GpuSampler, SampleOutputs};
use batchsample::{BatchFilters, SampleError, SampleOptions, SamplingParams};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};

const BATCH: usize = 4;
const VOCAB: usize = 32000;
const STEPS: u64 = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A deterministic stand-in for a model's logits: a smooth ramp per row.
    let logits: Vec<f32> = (0..BATCH * VOCAB)
        .map(|i| ((i % VOCAB) as f32 * 0.37 + (i / VOCAB) as f32).sin() * 4.0)
        .collect();
    // One request a row, each with its own parameters and seed.
    let mut params: Vec<SamplingParams> = (0..BATCH)
        .map(|r| SamplingParams {
            temperature: [0.0, 0.7, 1.0, 1.3][r],
            top_k: [0, 50, 0, 20][r],
            top_p: [1.0, 0.9, 0.95, 1.0][r],
            min_p: [0.0, 0.0, 0.05, 0.0][r],
            seed: 1000 + r as u64,
            step: 0,
        })
        .collect();
    let opts = SampleOptions::default();

    let gpu = match GpuSampler::new(GpuConfig {
        max_batch: BATCH,
        max_top_n: 0,
        ..Default::default()
    }) {
        Ok(gpu) => gpu,
        Err(SampleError::NoDevice(why)) => {
            println!("no GPU ({why}): the CPU reference path");
            for step in 0..STEPS {
                params.iter_mut().for_each(|p| p.step = step);
                let rows = sample_batch(&logits, VOCAB, &params, &opts)?;
                let tokens: Vec<Option<u32>> = rows.iter().map(|r| r.token).collect();
                println!("step {step}: tokens {tokens:?}");
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    // The engine's stream and buffers (in a real engine: its logits tensor, its input ids).
    let stream = gpu.context().new_stream()?;
    let logits_dev = stream.clone_htod(&logits)?;
    let mut params_dev = stream.clone_htod(&params)?;
    let mut input_ids = stream.alloc_zeros::<i32>(BATCH)?;
    let mut logprobs = stream.alloc_zeros::<f32>(BATCH)?;
    let mut status = stream.alloc_zeros::<u32>(BATCH)?;
    let mut workspace = gpu.alloc_workspace(BATCH)?;
    // Every row's parameters were validated on the host once; what the engine knows of the batch
    // (here: computed from those host copies) picks the lightest kernels that serve every row.
    let filters = BatchFilters::of(&params, VOCAB);
    stream.synchronize()?;

    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
    {
        let mut out = SampleOutputs {
            tokens: input_ids.slice_mut(..),
            logprobs: logprobs.slice_mut(..),
            status: status.slice_mut(..),
            top: None,
        };
        gpu.sample_on(
            &stream,
            &logits_dev.as_view(),
            VOCAB,
            &params_dev.as_view(),
            filters,
            &opts,
            &mut out,
            &mut workspace,
        )?;
    }
    let graph = stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)?
        .ok_or("nothing was captured")?;

    println!(
        "GPU: {} (graph replay on the caller's stream)",
        gpu.info().name
    );
    for step in 0..STEPS {
        params.iter_mut().for_each(|p| p.step = step);
        stream.memcpy_htod(&params, &mut params_dev)?;
        graph.launch()?;
        let tokens = stream.clone_dtoh(&input_ids)?;
        stream.synchronize()?;
        println!("step {step}: tokens {tokens:?}");
    }
    Ok(())
}
