//! The CPU path of the benchmark: wall-clock time of the exact reference, against the
//! machine's measured memory bandwidth.

use super::{summarise, BenchCase, BenchResult};
use batchsample::cpu::{sample_batch, sample_batch_processed, verify_batch, SampleOptions};
use batchsample::dtype::{Dtype, Logit};
use batchsample::error::Result;
use batchsample::processing::Processing;
use batchsample::verify::{uniform_offsets, Drafts, VerifyOptions};
use half::{bf16, f16};
use std::time::Instant;

/// Host memory bandwidth in GB/s, counting bytes read plus written by a 256 MiB copy (best of
/// five, after one warm-up).
pub fn measure_host_bandwidth() -> f64 {
    let n = 32 << 20; // 32 Mi u64 = 256 MiB
    let src: Vec<u64> = (0..n as u64).collect();
    let mut dst = vec![0u64; n];
    let mut best = f64::INFINITY;
    for i in 0..6 {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    2.0 * (n * 8) as f64 / best / 1e9
}

fn time_cpu<T: Logit>(
    logits: &[T],
    case: BenchCase,
    iterations: usize,
    bandwidth_gbps: f64,
) -> Result<BenchResult> {
    let opts = SampleOptions {
        method: case.method,
        top_n: 0,
        numerics: case.numerics,
    };
    if case.mode == super::BenchMode::Verify {
        return time_verify_cpu(logits, case, iterations, bandwidth_gbps);
    }
    let processing = super::processing_inputs(case.processing, case.batch, case.vocab, 1);
    let mut times = Vec::with_capacity(iterations);
    for it in 0..iterations + 1 {
        let params = super::mode_params(case.mode, case.batch, it as u64);
        let t = Instant::now();
        // The processed path validates its lists on every call, as a serving loop's would.
        let out = match &processing {
            Some(buf) => sample_batch_processed(
                logits,
                case.vocab,
                &params,
                &buf.view(),
                case.processing.logprobs(),
                &opts,
            )?,
            None => sample_batch(logits, case.vocab, &params, &opts)?,
        };
        std::hint::black_box(out);
        if it > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(summarise(case, "cpu", times, bandwidth_gbps))
}

/// A verification case on the CPU: `cpu::verify_batch` over the case's requests.
fn time_verify_cpu<T: Logit>(
    logits: &[T],
    case: BenchCase,
    iterations: usize,
    bandwidth_gbps: f64,
) -> Result<BenchResult> {
    let widened: Vec<f32> = logits.iter().map(|x| x.to_f32()).collect();
    let tokens = super::verify_drafts(&widened, case.vocab, case.batch, case.drafts);
    let offsets = uniform_offsets(case.batch, case.drafts);
    let probs = case
        .dense_drafts
        .then(|| super::draft_distributions(&widened, case.vocab, case.batch, case.drafts));
    let drafts = Drafts {
        offsets: &offsets,
        tokens: &tokens,
        probs: probs.as_deref(),
    };
    let opts = VerifyOptions {
        method: case.method,
        numerics: case.numerics,
    };
    let mut times = Vec::with_capacity(iterations);
    for it in 0..iterations + 1 {
        let params = super::mode_params(case.mode, case.batch, it as u64 * 64);
        let t = Instant::now();
        let out = verify_batch(
            logits,
            case.vocab,
            &drafts,
            &params,
            &Processing::NONE,
            &opts,
        )?;
        std::hint::black_box(out);
        if it > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(summarise(case, "cpu", times, bandwidth_gbps))
}

/// Times the exact reference on one case.
pub fn bench_cpu(case: BenchCase, iterations: usize, bandwidth_gbps: f64) -> Result<BenchResult> {
    let logits = super::shaped_logits(case.rows(), case.vocab, 1, case.shape);
    match case.dtype {
        Dtype::F32 => time_cpu(&logits, case, iterations, bandwidth_gbps),
        Dtype::F16 => {
            let v: Vec<f16> = logits.iter().map(|&x| f16::from_f32(x)).collect();
            time_cpu(&v, case, iterations, bandwidth_gbps)
        }
        Dtype::Bf16 => {
            let v: Vec<bf16> = logits.iter().map(|&x| bf16::from_f32(x)).collect();
            time_cpu(&v, case, iterations, bandwidth_gbps)
        }
    }
}
