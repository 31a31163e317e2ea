//! The CPU reference against the lesson's numpy approach, and the CPU path's other modes.
//!
//! Two ways to run it:
//! * `cargo bench --bench cpu_vs_numpy` — criterion: `cpu_vs_numpy/*` times
//!   `cpu::sample_batch` on 64 x 128256 f32 logits with top-k 50, top-p 0.9 (both draw methods);
//!   `cpu_paths/*` times temperature-only, greedy and min-p on a few shapes, with
//!   `Throughput::Bytes` (logit bytes read).
//! * `BATCHSAMPLE_SIDE_BY_SIDE=<dir> cargo bench --bench cpu_vs_numpy` — what
//!   `benches/cpu_vs_numpy.sh` runs: writes the same logits to `<dir>/logits.f32` (raw
//!   little-endian f32, 64 x 128256) with the kept-set size of every row in `<dir>/kept.txt`,
//!   times the headline case (median of `BATCHSAMPLE_RUNS`, default 15, after a warm-up run) and
//!   prints `cpu_ms <method> <threads> <ms>` lines; `benches/numpy_baseline.py` then times numpy
//!   on the very same file and checks that its kept sets have the same sizes.

use batchsample::cpu::{kept_set, sample_batch, scan_row, KeptSet};
use batchsample::{DrawMethod, SampleOptions, SamplingParams};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use half::bf16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const VOCAB: usize = 128_256;
const TOP_K: u32 = 50;
const TOP_P: f32 = 0.9;

/// LM-like logits: a normal bulk (sd 2) plus a few dozen tokens 5-15 above it, decaying like a
/// Zipf law, at random positions, around a random offset per row. Deterministic in `seed`.
fn lm_logits(batch: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(batch * vocab);
    for _ in 0..batch {
        let offset: f64 = rng.random_range(-10.0..10.0);
        let start = out.len();
        out.extend((0..vocab).map(|_| (offset + 2.0 * normal(&mut rng)) as f32));
        let top: f64 = rng.random_range(10.0..15.0);
        for r in 0..rng.random_range(1..40) {
            let i = rng.random_range(0..vocab);
            out[start + i] = (offset + top - 1.2 * ((r + 1) as f64).ln()) as f32;
        }
    }
    out
}

/// A standard normal variate (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn params(step: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_k: TOP_K,
        top_p: TOP_P,
        min_p: 0.0,
        seed: 1234,
        step,
    }
}

fn method_name(m: DrawMethod) -> &'static str {
    match m {
        DrawMethod::Gumbel => "gumbel",
        DrawMethod::InverseCdf => "inverse-cdf",
    }
}

/// Median wall time of `runs` calls of `f`, after one warm-up call.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// The plain-timer mode of `benches/cpu_vs_numpy.sh`.
fn side_by_side(dir: &str) {
    let runs: usize = std::env::var("BATCHSAMPLE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let logits = lm_logits(BATCH, VOCAB, 42);
    std::fs::create_dir_all(dir).expect("create the output folder");
    std::fs::write(
        format!("{dir}/logits.f32"),
        bytemuck::cast_slice::<f32, u8>(&logits),
    )
    .expect("write the logits");
    let p = params(0);
    let kept: Vec<String> = logits
        .chunks(VOCAB)
        .map(|row| {
            let scan = scan_row(row).expect("finite rows");
            match kept_set(row, &scan, &p) {
                KeptSet::AllFinite => scan.finite.to_string(),
                KeptSet::Ranked { candidates, .. } => candidates.len().to_string(),
            }
        })
        .collect();
    std::fs::write(format!("{dir}/kept.txt"), kept.join("\n") + "\n").expect("write kept.txt");

    let threads = rayon::current_num_threads();
    println!(
        "batch {BATCH} x vocab {VOCAB} f32, T 0.8, top-k {TOP_K}, top-p {TOP_P}; \
         rayon threads {threads}; median of {runs} runs"
    );
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 0,
            ..Default::default()
        };
        let mut step = 0;
        let mut run = || {
            step += 1;
            let out = sample_batch(&logits, VOCAB, &[params(step)], &opts).unwrap();
            black_box(out);
        };
        let all = median_ms(runs, &mut run);
        let one = one_thread.install(|| median_ms(runs, &mut run));
        println!("cpu_ms {} {threads} {all:.3}", method_name(method));
        println!("cpu_ms {} 1 {one:.3}", method_name(method));
    }
}

/// The headline case under criterion.
fn bench_headline(c: &mut Criterion) {
    let logits = lm_logits(BATCH, VOCAB, 42);
    let mut g = c.benchmark_group("cpu_vs_numpy");
    g.sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes((logits.len() * 4) as u64));
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 0,
            ..Default::default()
        };
        let mut step = 0;
        g.bench_function(
            BenchmarkId::new(
                format!("{BATCH}x{VOCAB}_f32_topk{TOP_K}_topp{TOP_P}"),
                method_name(method),
            ),
            |b| {
                b.iter(|| {
                    step += 1;
                    sample_batch(black_box(&logits), VOCAB, &[params(step)], &opts).unwrap()
                })
            },
        );
    }
    g.finish();
}

/// Greedy, temperature-only (both draws), min-p and top-p alone (no top-k: the kept set comes
/// from a full sort of the row), f32 and bf16, on a few shapes.
fn bench_paths(c: &mut Criterion) {
    let modes: [(&str, SamplingParams, DrawMethod); 5] = [
        (
            "greedy",
            SamplingParams {
                temperature: 0.0,
                ..params(0)
            },
            DrawMethod::Gumbel,
        ),
        (
            "temperature_only_gumbel",
            SamplingParams {
                top_k: 0,
                top_p: 1.0,
                ..params(0)
            },
            DrawMethod::Gumbel,
        ),
        (
            "temperature_only_inverse_cdf",
            SamplingParams {
                top_k: 0,
                top_p: 1.0,
                ..params(0)
            },
            DrawMethod::InverseCdf,
        ),
        (
            "min_p_0.05",
            SamplingParams {
                top_k: 0,
                top_p: 1.0,
                min_p: 0.05,
                ..params(0)
            },
            DrawMethod::Gumbel,
        ),
        (
            "top_p_0.9_only",
            SamplingParams {
                top_k: 0,
                ..params(0)
            },
            DrawMethod::Gumbel,
        ),
    ];
    let mut g = c.benchmark_group("cpu_paths");
    // Flat sampling: the slowest of these take ~0.4 s an iteration.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4));
    for (batch, vocab) in [(1, VOCAB), (64, 32_000), (64, VOCAB)] {
        let logits = lm_logits(batch, vocab, 7);
        let narrow: Vec<bf16> = logits.iter().map(|&x| bf16::from_f32(x)).collect();
        for (name, p, method) in &modes {
            if *name == "top_p_0.9_only" && batch * vocab > 64 * 32_000 {
                continue; // a full sort per row: ~1.5 s a batch at 64 x 128256
            }
            let opts = SampleOptions {
                method: *method,
                top_n: 0,
                ..Default::default()
            };
            let mut step = 0;
            g.throughput(Throughput::Bytes((logits.len() * 4) as u64));
            g.bench_function(
                BenchmarkId::new(format!("{name}/f32"), format!("{batch}x{vocab}")),
                |b| {
                    b.iter(|| {
                        step += 1;
                        sample_batch(black_box(&logits), vocab, &[p.at_step(step)], &opts).unwrap()
                    })
                },
            );
            if *name == "temperature_only_gumbel" || *name == "min_p_0.05" {
                g.throughput(Throughput::Bytes((narrow.len() * 2) as u64));
                g.bench_function(
                    BenchmarkId::new(format!("{name}/bf16"), format!("{batch}x{vocab}")),
                    |b| {
                        b.iter(|| {
                            step += 1;
                            sample_batch(black_box(&narrow), vocab, &[p.at_step(step)], &opts)
                                .unwrap()
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench_headline, bench_paths);

fn main() {
    if let Ok(dir) = std::env::var("BATCHSAMPLE_SIDE_BY_SIDE") {
        side_by_side(&dir);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
