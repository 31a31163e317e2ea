//! Criterion benches of the GPU sampler (prints `SKIP:` and exits without a GPU). Each sample
//! times `iters` stream-ordered launches between two CUDA events, so launch gaps count but host
//! synchronisation does not; throughput is logit bytes read.

use batchsample::gpu::{GpuConfig, GpuSampler};
use batchsample::{DrawMethod, SampleError, SampleOptions};
use batchsample_cli::bench::{mode_params, synthetic_logits, BenchMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cudarc::driver::sys::CUevent_flags;
use std::time::Duration;

fn gpu_sampler(c: &mut Criterion) {
    let gpu = match GpuSampler::new(GpuConfig {
        max_batch: 256,
        max_top_n: 0,
        ..GpuConfig::default()
    }) {
        Ok(g) => g,
        Err(SampleError::NoDevice(why)) => {
            println!("SKIP: no GPU ({why})");
            return;
        }
        Err(e) => panic!("a GPU is present but the sampler failed to start: {e}"),
    };
    let stream = gpu.stream().clone();
    let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let mut group = c.benchmark_group("gpu_sample_128256_f32");
    for mode in [BenchMode::Temperature, BenchMode::TopK, BenchMode::Combined] {
        for batch in [1usize, 64, 256] {
            let vocab = 128_256;
            let logits = stream
                .clone_htod(&synthetic_logits(batch, vocab, 1))
                .unwrap();
            let params = stream.clone_htod(&mode_params(mode, batch, 0)).unwrap();
            let mut out = gpu.alloc_outputs().unwrap();
            let opts = SampleOptions {
                method: DrawMethod::Gumbel,
                top_n: 0,
                ..Default::default()
            };
            group.throughput(Throughput::Bytes((batch * vocab * 4) as u64));
            group.bench_function(BenchmarkId::new(mode.name(), batch), |b| {
                b.iter_custom(|iters| {
                    let start = gpu.context().new_event(timing).unwrap();
                    let end = gpu.context().new_event(timing).unwrap();
                    start.record(&stream).unwrap();
                    for _ in 0..iters {
                        gpu.sample(&logits.as_view(), vocab, &params.as_view(), &opts, &mut out)
                            .unwrap();
                    }
                    end.record(&stream).unwrap();
                    Duration::from_secs_f64(start.elapsed_ms(&end).unwrap() as f64 * 1e-3)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gpu_sampler);
criterion_main!(benches);
