//! A decode loop, as a serving engine runs one: a batch of requests, each with its own sampling
//! parameters and seed, fed logits step by step by a model and sampled once a step, `step`
//! advancing. The model is a small deterministic stand-in (the previous token's embedding times
//! a fixed random projection), so the loop runs anywhere. It shows that
//!
//! (a) the same seeds reproduce the same sequences;
//! (b) the CPU reference reproduces the GPU's sequences token for token (invariant numerics);
//! (c) on a GPU the sampling step runs under CUDA-graph replay: captured once, replayed every
//!     step with the logits and the steps rewritten in place.
//!
//! Without a GPU it runs the CPU path, says so, and shows (a) and, in place of (b), that each
//! request's sequence is the same when it is decoded alone (batch invariance).
//!
//! `cargo run --release --example decode_loop`

use batchsample::cpu::sample_batch;
use batchsample::gpu::{GpuConfig, GpuSampler, LogitRows, ParamFields, RowParams, SampleOutputs};
use batchsample::params::row_seed;
use batchsample::{BatchFilters, Numerics, SampleError, SampleOptions, SamplingParams};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};

const VOCAB: usize = 4096;
const HIDDEN: usize = 64;
const STEPS: usize = 12;
const BASE_SEED: u64 = 2024;

/// The stand-in model: `logits = embedding[prev] · projection`, both fixed pseudo-random.
struct Model {
    embedding: Vec<f32>,  // [VOCAB, HIDDEN]
    projection: Vec<f32>, // [HIDDEN, VOCAB]
}

impl Model {
    fn new() -> Model {
        // A counter hash, not an RNG crate: the same numbers on every machine.
        let value = |i: usize, salt: u64| {
            let h = row_seed(salt, i);
            (h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        Model {
            embedding: (0..VOCAB * HIDDEN).map(|i| value(i, 1)).collect(),
            projection: (0..HIDDEN * VOCAB).map(|i| value(i, 2) * 0.9).collect(),
        }
    }

    /// One row of logits a request, from each request's previous token.
    fn logits(&self, previous: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0f32; previous.len() * VOCAB];
        for (row, &token) in out.chunks_mut(VOCAB).zip(previous) {
            let e = &self.embedding[token as usize * HIDDEN..][..HIDDEN];
            for (h, &eh) in e.iter().enumerate() {
                let w = &self.projection[h * VOCAB..][..VOCAB];
                row.iter_mut().zip(w).for_each(|(x, &wv)| *x += eh * wv);
            }
        }
        out
    }
}

/// The requests: each its own parameters, seed and first token.
fn requests() -> (Vec<SamplingParams>, Vec<u32>) {
    let params = (0..4)
        .map(|r| SamplingParams {
            temperature: [0.0, 0.7, 1.0, 1.3][r],
            top_k: [0, 50, 0, 20][r],
            top_p: [1.0, 0.9, 0.95, 1.0][r],
            min_p: [0.0, 0.0, 0.05, 0.0][r],
            seed: row_seed(BASE_SEED, r),
            step: 0,
        })
        .collect();
    (params, vec![1, 2, 3, 4])
}

/// The loop on the CPU: `STEPS` tokens a request.
fn decode_cpu(
    model: &Model,
    params: &[SamplingParams],
    first: &[u32],
    opts: &SampleOptions,
) -> Result<Vec<Vec<u32>>, SampleError> {
    let mut sequences: Vec<Vec<u32>> = first.iter().map(|&t| vec![t]).collect();
    let mut params = params.to_vec();
    for step in 0..STEPS {
        let previous: Vec<u32> = sequences.iter().map(|s| *s.last().unwrap()).collect();
        params.iter_mut().for_each(|p| p.step = step as u64);
        let rows = sample_batch(&model.logits(&previous), VOCAB, &params, opts)?;
        for (seq, row) in sequences.iter_mut().zip(rows) {
            seq.push(row.token.unwrap_or(0));
        }
    }
    Ok(sequences)
}

/// The loop on the GPU: the sampling step captured once in a CUDA graph on our stream, then
/// replayed each step after the new logits and steps are copied into the buffers it reads.
fn decode_gpu(
    gpu: &GpuSampler,
    model: &Model,
    params: &[SamplingParams],
    first: &[u32],
    opts: &SampleOptions,
) -> Result<Vec<Vec<u32>>, Box<dyn std::error::Error>> {
    let batch = params.len();
    let stream = gpu.context().new_stream()?;
    let mut logits = stream.alloc_zeros::<f32>(batch * VOCAB)?;
    // The engine's per-field parameter tensors; only `step` changes between steps.
    let temperature =
        stream.clone_htod(&params.iter().map(|p| p.temperature).collect::<Vec<_>>())?;
    let top_k = stream.clone_htod(&params.iter().map(|p| p.top_k).collect::<Vec<_>>())?;
    let top_p = stream.clone_htod(&params.iter().map(|p| p.top_p).collect::<Vec<_>>())?;
    let min_p = stream.clone_htod(&params.iter().map(|p| p.min_p).collect::<Vec<_>>())?;
    let seed = stream.clone_htod(&params.iter().map(|p| p.seed).collect::<Vec<_>>())?;
    let mut step = stream.alloc_zeros::<u64>(batch)?;
    let mut tokens = stream.alloc_zeros::<i32>(batch)?;
    let mut logprobs = stream.alloc_zeros::<f32>(batch)?;
    let mut status = stream.alloc_zeros::<u32>(batch)?;
    let mut workspace = gpu.alloc_workspace(batch)?;
    stream.synchronize()?;

    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
    {
        let (logits_v, step_v) = (logits.as_view(), step.as_view());
        let (t, k, p, m, s) = (
            temperature.as_view(),
            top_k.as_view(),
            top_p.as_view(),
            min_p.as_view(),
            seed.as_view(),
        );
        let fields = ParamFields {
            temperature: Some(&t),
            top_k: Some(&k),
            top_p: Some(&p),
            min_p: Some(&m),
            seed: Some(&s),
            step: Some(&step_v),
            scalars: SamplingParams::default(),
        };
        let mut out = SampleOutputs {
            tokens: tokens.slice_mut(..),
            logprobs: logprobs.slice_mut(..),
            status: status.slice_mut(..),
            top: None,
        };
        gpu.sample_rows_on(
            &stream,
            LogitRows::dense(&logits_v, VOCAB)?,
            RowParams::Fields(fields),
            BatchFilters::Any,
            opts,
            &mut out,
            &mut workspace,
        )?;
    }
    let graph = stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)?
        .ok_or("nothing was captured")?;

    let mut sequences: Vec<Vec<u32>> = first.iter().map(|&t| vec![t]).collect();
    for k in 0..STEPS {
        let previous: Vec<u32> = sequences.iter().map(|s| *s.last().unwrap()).collect();
        stream.memcpy_htod(&model.logits(&previous), &mut logits)?;
        stream.memcpy_htod(&vec![k as u64; batch], &mut step)?;
        graph.launch()?;
        let drawn = stream.clone_dtoh(&tokens)?;
        stream.synchronize()?;
        for (seq, t) in sequences.iter_mut().zip(drawn) {
            seq.push(t.max(0) as u32);
        }
    }
    Ok(sequences)
}

fn show(label: &str, sequences: &[Vec<u32>]) {
    println!("{label}:");
    for (r, s) in sequences.iter().enumerate() {
        println!("  request {r}: {s:?}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::new();
    let (params, first) = requests();
    let invariant = SampleOptions {
        numerics: Numerics::Invariant,
        ..Default::default()
    };

    let gpu = match GpuSampler::new(GpuConfig {
        max_batch: params.len(),
        max_top_n: 0,
        ..Default::default()
    }) {
        Ok(gpu) => Some(gpu),
        Err(SampleError::NoDevice(why)) => {
            println!("no GPU ({why}): the CPU path (the exact reference and its invariant twin)");
            None
        }
        Err(e) => return Err(e.into()),
    };

    let Some(gpu) = gpu else {
        let first_run = decode_cpu(&model, &params, &first, &invariant)?;
        show("CPU, invariant numerics", &first_run);
        // (a) The same seeds, the same sequences.
        let again = decode_cpu(&model, &params, &first, &invariant)?;
        assert_eq!(first_run, again);
        println!("(a) a second run with the same seeds: the same sequences");
        // In place of (b): each request decoded alone gives its sequence in the batch.
        for r in 0..params.len() {
            let alone = decode_cpu(&model, &params[r..=r], &first[r..=r], &invariant)?;
            assert_eq!(alone[0], first_run[r]);
        }
        println!("(b) needs a GPU; instead: each request decoded alone gives the same sequence");
        println!("(c) needs a GPU (CUDA-graph replay)");
        let reference = decode_cpu(&model, &params, &first, &SampleOptions::default())?;
        show("CPU, exact f64 reference (fast numerics)", &reference);
        return Ok(());
    };

    println!("GPU: {}", gpu.info().name);
    let on_gpu = decode_gpu(&gpu, &model, &params, &first, &invariant)?;
    show("GPU, invariant numerics, CUDA-graph replay", &on_gpu);
    println!("(c) each step above was one replay of a graph captured once");
    let again = decode_gpu(&gpu, &model, &params, &first, &invariant)?;
    assert_eq!(on_gpu, again);
    println!("(a) a second run with the same seeds: the same sequences");
    let on_cpu = decode_cpu(&model, &params, &first, &invariant)?;
    assert_eq!(on_gpu, on_cpu, "the CPU twin must give the GPU's tokens");
    println!(
        "(b) the CPU reference path (invariant twin) gives the same sequences, token for token"
    );
    Ok(())
}
