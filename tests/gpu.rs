//! The GPU sampler against the exact CPU reference, on a real GPU. Without one every test prints
//! a `SKIP:` line and passes; `scripts/gpu-check` runs them where there is a GPU.

mod common;
mod parity;

use batchsample::cpu::{final_distribution, sample_batch};
use batchsample::gpu::GpuSampler;
use batchsample::{BatchFilters, DrawMethod, Logit, RowStatus, SampleOptions, SamplingParams};
use common::{chi_square, lm_like_row, rng};
use parity::batches::{mixed_batch, to_bf16, to_f16};
use parity::{check_parity, ParityReport};
use rand::Rng;

const ALPHA: f64 = 1e-3;

fn sampler(max_batch: usize, max_top_n: usize) -> Option<GpuSampler> {
    common::gpu_sampler(max_batch, max_top_n)
}

/// The launches `f` makes on `stream`, captured into an instantiated CUDA graph.
fn capture(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    f: impl FnOnce(),
) -> cudarc::driver::CudaGraph {
    use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .unwrap();
    f();
    stream
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
        .unwrap()
        .expect("a graph was captured")
}

fn parity_of<T: Logit + cudarc::driver::DeviceRepr>(
    gpu: &GpuSampler,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
) -> ParityReport {
    let out = gpu
        .sample_host(logits, vocab, params, opts)
        .expect("gpu sample");
    check_parity(logits, vocab, params, opts, &out, 2e-3)
}

/// One launch through `GpuSampler::sample_with` on device copies of `logits` and `params`, as a
/// serving loop makes it (no host validation: the kernels' own checks), downloaded.
fn sample_on_device<T: Logit + cudarc::driver::DeviceRepr>(
    gpu: &GpuSampler,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    filters: BatchFilters,
    opts: &SampleOptions,
) -> Vec<batchsample::RowOutput> {
    let stream = gpu.stream().clone();
    let logits_dev = stream.clone_htod(logits).unwrap();
    let params_dev = stream.clone_htod(params).unwrap();
    let mut out = gpu.alloc_outputs().unwrap();
    gpu.sample_with(
        &logits_dev.as_view(),
        vocab,
        &params_dev.as_view(),
        filters,
        opts,
        &mut out,
    )
    .unwrap();
    gpu.download(&out, logits.len() / vocab, opts.top_n)
        .unwrap()
}

#[test]
fn gpu_matches_the_reference_on_mixed_batches_of_every_dtype_and_size() {
    let Some(gpu) = sampler(512, 8) else {
        return;
    };
    let mut total = ParityReport::default();
    let mut g = rng(0x5eed_0001);
    for &vocab in &[
        1usize, 2, 33, 1000, 4097, 32000, 128256, 151936, 256000, 1_000_000,
    ] {
        let batch = match vocab {
            v if v <= 4097 => 512,
            32000 => 256,
            128256 | 151936 => 64,
            256000 => 16,
            _ => 4,
        };
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = SampleOptions {
                method,
                top_n: if vocab > 2 { 5 } else { 1 },
                ..Default::default()
            };
            let (logits, params) = mixed_batch(&mut g, batch, vocab);
            let f32_report = parity_of(&gpu, &logits, vocab, &params, &opts);
            let f16_report = parity_of(&gpu, &to_f16(&logits), vocab, &params, &opts);
            let bf16_report = parity_of(&gpu, &to_bf16(&logits), vocab, &params, &opts);
            for (name, r) in [
                ("f32", f32_report),
                ("f16", f16_report),
                ("bf16", bf16_report),
            ] {
                println!("vocab {vocab:>6} {method:?} {name}: {}", r.summary());
                total.merge(r);
            }
        }
    }
    println!("PARITY TOTAL: {}", total.summary());
    for e in total.explained.iter().take(10) {
        println!("  explained: {e}");
    }
    total.assert_clean();
}

#[test]
fn gpu_draws_fit_the_exact_distribution() {
    // Draw d of a request uses step + d: a batch of copies of one row with consecutive steps
    // gives that many independent draws in one launch.
    let draws = 200_000usize;
    let Some(gpu) = sampler(draws, 0) else {
        return;
    };
    let mut g = rng(0x5eed_0002);
    let vocab = 50;
    let row = lm_like_row(&mut g, vocab);
    let cases = [
        SamplingParams {
            temperature: 1.0,
            ..Default::default()
        },
        SamplingParams {
            temperature: 0.7,
            top_k: 8,
            ..Default::default()
        },
        SamplingParams {
            temperature: 1.3,
            top_p: 0.8,
            ..Default::default()
        },
        SamplingParams {
            temperature: 1.0,
            min_p: 0.05,
            ..Default::default()
        },
        SamplingParams {
            temperature: 1.5,
            top_k: 20,
            top_p: 0.9,
            min_p: 0.02,
            ..Default::default()
        },
    ];
    let logits: Vec<f32> = (0..draws).flat_map(|_| row.iter().copied()).collect();
    for base in cases {
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let params: Vec<SamplingParams> = (0..draws as u64)
                .map(|d| SamplingParams {
                    seed: 77,
                    step: 1000 + d,
                    ..base
                })
                .collect();
            let opts = SampleOptions {
                method,
                top_n: 0,
                ..Default::default()
            };
            let out = gpu.sample_host(&logits, vocab, &params, &opts).unwrap();
            let mut counts = vec![0u64; vocab];
            for o in &out {
                counts[o.token.unwrap() as usize] += 1;
            }
            let probs = final_distribution(&row, &base).unwrap();
            let test = chi_square(&counts, &probs);
            println!(
                "{method:?} {base:?}: chi2 {:.1} df {} p {:.4}",
                test.statistic, test.df, test.p_value
            );
            assert!(test.fits(ALPHA), "{method:?} {base:?}: {test:?}");
        }
    }
}

#[test]
fn gpu_never_draws_a_masked_token_in_ten_million_draws() {
    let batch = 65_536usize;
    let launches = 153; // 65536 * 153 > 10^7
    let Some(gpu) = sampler(batch, 0) else {
        return;
    };
    let mut g = rng(0x5eed_0003);
    let vocab = 256;
    let mut row = lm_like_row(&mut g, vocab);
    let masked = common::mask_some(&mut g, &mut row, 0.5, 1);
    // Mask the largest logits too, so the masked tokens would otherwise be the likeliest.
    let logits: Vec<f32> = (0..batch).flat_map(|_| row.iter().copied()).collect();
    let mut is_masked = vec![false; vocab];
    masked.iter().for_each(|&t| is_masked[t as usize] = true);
    let mut drawn = 0u64;
    for launch in 0..launches as u64 {
        let base = match launch % 3 {
            0 => SamplingParams {
                temperature: 5.0,
                ..Default::default()
            },
            1 => SamplingParams {
                temperature: 2.0,
                top_k: 200,
                top_p: 0.999,
                ..Default::default()
            },
            _ => SamplingParams {
                temperature: 1.0,
                min_p: 0.0001,
                ..Default::default()
            },
        };
        let params: Vec<SamplingParams> = (0..batch as u64)
            .map(|i| SamplingParams {
                seed: launch,
                step: i,
                ..base
            })
            .collect();
        let method = if launch % 2 == 0 {
            DrawMethod::Gumbel
        } else {
            DrawMethod::InverseCdf
        };
        let out = gpu
            .sample_host(
                &logits,
                vocab,
                &params,
                &SampleOptions {
                    method,
                    top_n: 0,
                    ..Default::default()
                },
            )
            .unwrap();
        for o in &out {
            let t = o.token.expect("row ok") as usize;
            assert!(!is_masked[t], "masked token {t} drawn (launch {launch})");
        }
        drawn += out.len() as u64;
    }
    println!("{drawn} draws, no masked token");
    assert!(drawn >= 10_000_000);
}

#[test]
fn gpu_bad_rows_do_not_harm_their_batch() {
    let Some(gpu) = sampler(16, 4) else { return };
    let mut g = rng(0x5eed_0004);
    let vocab = 3000;
    let batch = 8;
    let mut logits: Vec<f32> = (0..batch)
        .flat_map(|_| lm_like_row(&mut g, vocab))
        .collect();
    logits[vocab + 17] = f32::NAN;
    logits[2 * vocab + 5] = f32::INFINITY;
    logits[3 * vocab..4 * vocab]
        .iter_mut()
        .for_each(|x| *x = f32::NEG_INFINITY);
    let mut params: Vec<SamplingParams> = (0..batch as u64)
        .map(|i| SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            seed: i,
            ..Default::default()
        })
        .collect();
    params[4].top_p = 2.0; // invalid: the device-side check reports it
    params[5].temperature = f32::NAN;
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 4,
        ..Default::default()
    };
    let got = sample_on_device(&gpu, &logits, vocab, &params, BatchFilters::Any, &opts);
    let expected_status = [
        RowStatus::Ok,
        RowStatus::NonFiniteLogit,
        RowStatus::NonFiniteLogit,
        RowStatus::NoFiniteLogit,
        RowStatus::InvalidParams,
        RowStatus::InvalidParams,
        RowStatus::Ok,
        RowStatus::Ok,
    ];
    for (r, o) in got.iter().enumerate() {
        assert_eq!(o.status, expected_status[r], "row {r}");
        if o.status == RowStatus::Ok {
            let alone = sample_batch(
                &logits[r * vocab..(r + 1) * vocab],
                vocab,
                &params[r..r + 1],
                &opts,
            )
            .unwrap();
            assert_eq!(o.token, alone[0].token, "row {r}");
        } else {
            assert_eq!(o.token, None);
        }
    }
}

#[test]
fn gpu_results_are_identical_run_to_run_and_across_batch_positions() {
    let Some(gpu) = sampler(256, 5) else {
        return;
    };
    let mut g = rng(0x5eed_0005);
    let vocab = 32000;
    let (logits, params) = mixed_batch(&mut g, 200, vocab);
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 5,
            ..Default::default()
        };
        let a = gpu.sample_host(&logits, vocab, &params, &opts).unwrap();
        let b = gpu.sample_host(&logits, vocab, &params, &opts).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.token, y.token);
            assert_eq!(x.logprob.to_bits(), y.logprob.to_bits());
        }
        // Reversed batch, and a smaller batch: each row keeps its result.
        let rows: Vec<&[f32]> = logits.chunks(vocab).collect();
        let rev_logits: Vec<f32> = rows.iter().rev().flat_map(|r| r.iter().copied()).collect();
        let rev_params: Vec<SamplingParams> = params.iter().rev().copied().collect();
        let c = gpu
            .sample_host(&rev_logits, vocab, &rev_params, &opts)
            .unwrap();
        for (i, x) in a.iter().enumerate() {
            let y = &c[a.len() - 1 - i];
            assert_eq!(x.token, y.token, "row {i} moved");
            assert_eq!(x.logprob.to_bits(), y.logprob.to_bits(), "row {i} moved");
        }
        let pick = g.random_range(0..200usize);
        let d = gpu
            .sample_host(rows[pick], vocab, &params[pick..pick + 1], &opts)
            .unwrap();
        assert_eq!(d[0].token, a[pick].token);
        assert_eq!(d[0].logprob.to_bits(), a[pick].logprob.to_bits());
    }
}

#[test]
fn gpu_sampling_captures_into_a_cuda_graph_and_replays() {
    let Some(gpu) = sampler(64, 3) else { return };
    let mut g = rng(0x5eed_0006);
    let vocab = 4097;
    let (logits, mut params) = mixed_batch(&mut g, 64, vocab);
    let stream = gpu.stream().clone();
    let logits_dev = stream.clone_htod(&to_bf16(&logits)).unwrap();
    let mut params_dev = stream.clone_htod(&params).unwrap();
    let mut out = gpu.alloc_outputs().unwrap();
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 3,
        ..Default::default()
    };
    stream.synchronize().unwrap();

    let graph = capture(&stream, || {
        gpu.sample(
            &logits_dev.as_view(),
            vocab,
            &params_dev.as_view(),
            &opts,
            &mut out,
        )
        .unwrap()
    });

    let bf = to_bf16(&logits);
    for step in 0..5u64 {
        // A serving loop advances every request's step, then replays the same graph.
        params.iter_mut().for_each(|p| p.step += step);
        stream.memcpy_htod(&params, &mut params_dev).unwrap();
        graph.launch().unwrap();
        let replayed = gpu.download(&out, 64, 3).unwrap();
        let direct = sample_batch(&bf, vocab, &params, &opts).unwrap();
        let report = check_parity(&bf, vocab, &params, &opts, &replayed, 2e-3);
        println!("graph replay {step}: {}", report.summary());
        report.assert_clean();
        assert_eq!(replayed.len(), direct.len());
    }
}

/// Small enough to run under compute-sanitizer (memcheck, racecheck, initcheck, synccheck):
/// every dtype and draw method, odd sizes, failing rows, top-n, one launch each.
#[test]
fn gpu_sanitizer_workload() {
    let Some(gpu) = sampler(24, 4) else {
        return;
    };
    let mut g = rng(0x5eed_0007);
    for &vocab in &[1usize, 33, 4097] {
        let (logits, params) = mixed_batch(&mut g, 24, vocab);
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = SampleOptions {
                method,
                top_n: 4.min(vocab),
                ..Default::default()
            };
            let mut report = parity_of(&gpu, &logits, vocab, &params, &opts);
            report.merge(parity_of(&gpu, &to_f16(&logits), vocab, &params, &opts));
            report.merge(parity_of(&gpu, &to_bf16(&logits), vocab, &params, &opts));
            println!("vocab {vocab} {method:?}: {}", report.summary());
            report.assert_clean();
        }
    }
    // The split-row kernels: 3 rows of 20000 get several blocks each (temperature-only and
    // greedy rows split; the filtered row goes to the ordinary path), twice, so the second launch
    // finds the arrival counters the first left.
    let vocab = 20000;
    let (logits, mut params) = mixed_batch(&mut g, 3, vocab);
    params[0] = SamplingParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..params[0]
    };
    params[1].temperature = 0.0;
    let opts = SampleOptions::default();
    for _ in 0..2 {
        let report = parity_of(&gpu, &logits, vocab, &params, &opts);
        println!("split rows, vocab {vocab}: {}", report.summary());
        report.assert_clean();
    }
    // The unfiltered kernels (sample_host picks them for a batch without filters), for both
    // draws (the inverse CDF's table and its last block's second read of a slice): one block
    // and split, twice.
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            ..SampleOptions::default()
        };
        for _ in 0..2 {
            let report = parity_of(&gpu, &logits[..2 * vocab], vocab, &params[..2], &opts);
            println!(
                "unfiltered rows, vocab {vocab}, {method:?}: {}",
                report.summary()
            );
            report.assert_clean();
        }
    }
    // The collected kernels (sample_host picks them for a batch of small top-k rows and greedy
    // rows; at vocab 4097 rows do not split), with top-n, twice.
    let vocab = 4097;
    let (logits, params) = small_top_k_batch(&mut g, 24, vocab);
    let opts = SampleOptions {
        top_n: 4,
        ..SampleOptions::default()
    };
    for _ in 0..2 {
        let report = parity_of(&gpu, &logits, vocab, &params, &opts);
        println!("collected rows, vocab {vocab}: {}", report.summary());
        report.assert_clean();
    }
    // Processed rows (kernels/processing.cuh: the edit table's build, its lookups and the
    // touched bitmap's clearing), mask and lists, twice on fresh workspaces.
    for vocab in [33usize, 4097] {
        let (logits, params, buf) = parity::processed::processed_batch(&mut g, 24, vocab, true);
        let processing = buf.view();
        for _ in 0..2 {
            let got = gpu
                .sample_host_processed(
                    &logits,
                    vocab,
                    &params,
                    &processing,
                    batchsample::processing::LogprobsMode::Processed,
                    &opts,
                )
                .unwrap();
            let reference = parity::processed::reference_logits(&logits, vocab, &processing);
            let report = check_parity(&reference, vocab, &params, &opts, &got, 2e-3);
            println!("processed rows, vocab {vocab}: {}", report.summary());
            report.assert_clean();
        }
    }
}

/// The unfiltered kernels on batches of every path they take (one block per row, two an SM;
/// split rows at small batch) against the exact reference; and a batch wrongly vouched for as
/// unfiltered: only its filtered rows fail, with InvalidParams.
#[test]
fn gpu_unfiltered_kernels_match_the_reference_and_refuse_filtered_rows() {
    let Some(gpu) = sampler(256, 0) else {
        return;
    };
    let mut g = rng(0x5eed_0008);
    let vocab = 128256;
    let opts = SampleOptions::default();
    let inverse = SampleOptions {
        method: DrawMethod::InverseCdf,
        ..SampleOptions::default()
    };
    let mut total = ParityReport::default();
    for batch in [1usize, 8, 64, 256] {
        let logits: Vec<f32> = (0..batch)
            .flat_map(|_| lm_like_row(&mut g, vocab))
            .collect();
        let params: Vec<SamplingParams> = (0..batch as u64)
            .map(|i| SamplingParams {
                temperature: if i % 5 == 3 {
                    0.0
                } else {
                    0.6 + 0.1 * (i % 7) as f32
                },
                seed: 0x11f + i,
                step: i,
                ..Default::default()
            })
            .collect();
        assert_eq!(BatchFilters::of(&params, vocab), BatchFilters::Unfiltered);
        for (name, opts) in [("Gumbel", &opts), ("inverse CDF", &inverse)] {
            let f32_report = parity_of(&gpu, &logits, vocab, &params, opts);
            let bf16_report = parity_of(&gpu, &to_bf16(&logits), vocab, &params, opts);
            println!(
                "unfiltered batch {batch}, {name}: f32 {}",
                f32_report.summary()
            );
            println!(
                "unfiltered batch {batch}, {name}: bf16 {}",
                bf16_report.summary()
            );
            total.merge(f32_report);
            total.merge(bf16_report);
        }
    }
    total.assert_clean();

    // Vouched for, wrongly: rows 1 and 3 filter.
    let batch = 4;
    let logits: Vec<f32> = (0..batch)
        .flat_map(|_| lm_like_row(&mut g, vocab))
        .collect();
    let mut params = vec![
        SamplingParams {
            temperature: 0.8,
            seed: 9,
            ..Default::default()
        };
        batch
    ];
    params[1].top_k = 50;
    params[3].top_p = 0.9;
    let got = sample_on_device(
        &gpu,
        &logits,
        vocab,
        &params,
        BatchFilters::Unfiltered,
        &opts,
    );
    assert_odd_rows_refused(&got, &logits, vocab, &params, &opts);
}

/// Rows the collected kernels serve: top-k of 1 to 64 (half with top-p 0.9, a third with min-p),
/// every fifth row greedy, each with its own seed.
fn small_top_k_batch(
    g: &mut rand::rngs::StdRng,
    batch: usize,
    vocab: usize,
) -> (Vec<f32>, Vec<SamplingParams>) {
    let logits: Vec<f32> = (0..batch).flat_map(|_| lm_like_row(g, vocab)).collect();
    let params = (0..batch as u64)
        .map(|i| SamplingParams {
            temperature: if i % 5 == 4 {
                0.0
            } else {
                0.5 + 0.1 * (i % 9) as f32
            },
            top_k: [1, 20, 50, 64][(i % 4) as usize],
            top_p: if i % 2 == 0 { 0.9 } else { 1.0 },
            min_p: if i % 3 == 0 { 0.05 } else { 0.0 },
            seed: 0xc011 + i,
            step: 3 * i,
        })
        .collect();
    (logits, params)
}

/// The collected kernels (small top-k rows, two row blocks an SM on sm_90) on batches that do
/// not split: the general kernels' bits and the exact reference, f32 and bf16, with top-n; and a
/// batch wrongly vouched for: only the rows they cannot serve fail, with InvalidParams.
#[test]
fn gpu_collected_kernels_match_the_general_ones_and_refuse_other_rows() {
    let Some(gpu) = sampler(256, 5) else {
        return;
    };
    let mut g = rng(0x5eed_0009);
    let vocab = 128256;
    let opts = SampleOptions {
        top_n: 5,
        ..SampleOptions::default()
    };
    let mut total = ParityReport::default();
    for batch in [132usize, 256] {
        let (logits, params) = small_top_k_batch(&mut g, batch, vocab);
        assert_eq!(BatchFilters::of(&params, vocab), BatchFilters::SmallTopK);
        let f32_report = collected_against_general(&gpu, &logits, vocab, &params, &opts);
        let bf16_report = collected_against_general(&gpu, &to_bf16(&logits), vocab, &params, &opts);
        println!("collected batch {batch}, f32: {}", f32_report.summary());
        println!("collected batch {batch}, bf16: {}", bf16_report.summary());
        total.merge(f32_report);
        total.merge(bf16_report);
    }
    total.assert_clean();

    // Vouched for, wrongly: every odd row is sampled (not greedy) with no top-k (min-p or
    // nothing else), a top-k of 65, or the default parameters (temperature-only), in turn. The
    // batch must not split: a launch that splits rows takes the general split kernels, which
    // serve every row (the H200 run of f4432d5 vouched for a batch of 6, which splits on 132
    // SMs, and got Ok rows). Two rows per SM of a 132-SM Hopper take fewer waves unsplit.
    let batch = 2 * 132;
    let (logits, mut params) = small_top_k_batch(&mut g, batch, vocab);
    for r in (1..batch).step_by(2) {
        params[r].temperature = 0.7; // the collected kernels serve greedy rows of any filters
        match r % 3 {
            0 => params[r].top_k = 0,
            1 => params[r].top_k = 65,
            _ => {
                params[r] = SamplingParams {
                    temperature: 0.8,
                    ..Default::default()
                }
            }
        }
    }
    let got = sample_on_device(
        &gpu,
        &logits,
        vocab,
        &params,
        BatchFilters::SmallTopK,
        &opts,
    );
    assert_odd_rows_refused(&got, &logits, vocab, &params, &opts);
}

/// One batch through the collected kernels and the general ones: the same bits on every row;
/// the collected results' parity with the exact reference.
fn collected_against_general<T: Logit + cudarc::driver::DeviceRepr>(
    gpu: &GpuSampler,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
) -> ParityReport {
    let collected = sample_on_device(gpu, logits, vocab, params, BatchFilters::SmallTopK, opts);
    let general = sample_on_device(gpu, logits, vocab, params, BatchFilters::Any, opts);
    for (r, (a, b)) in collected.iter().zip(&general).enumerate() {
        assert!(
            common::same_bits(a, b),
            "{:?} row {r} of {}: collected {a:?} vs general {b:?}",
            T::DTYPE,
            collected.len()
        );
    }
    check_parity(logits, vocab, params, opts, &collected, 2e-3)
}

/// A batch wrongly vouched for to a light kernel: its odd rows (the ones that kernel cannot
/// serve) get InvalidParams, and every other row the token the reference draws for it alone.
fn assert_odd_rows_refused(
    got: &[batchsample::RowOutput],
    logits: &[f32],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
) {
    for (r, o) in got.iter().enumerate() {
        if r % 2 == 1 {
            assert_eq!(o.status, RowStatus::InvalidParams, "row {r}");
        } else {
            let alone = sample_batch(
                &logits[r * vocab..(r + 1) * vocab],
                vocab,
                &params[r..r + 1],
                opts,
            )
            .unwrap();
            assert_eq!(o.status, RowStatus::Ok, "row {r}");
            assert_eq!(o.token, alone[0].token, "row {r}");
        }
    }
}

#[test]
fn gpu_samples_on_the_callers_stream_into_the_callers_views_under_graph_capture() {
    // The serving path: a stream the engine made, tokens written into a slice of a larger buffer
    // (the next step's input ids), a workspace sized once; same results as the sampler's own path.
    let Some(gpu) = sampler(32, 4) else { return };
    let mut g = rng(0x5eed_0016);
    let (vocab, batch) = (32000, 32);
    let (logits, params) = mixed_batch(&mut g, batch, vocab);
    let opts = SampleOptions {
        top_n: 4,
        ..Default::default()
    };
    let expected = sample_on_device(&gpu, &logits, vocab, &params, BatchFilters::Any, &opts);

    let stream = gpu.context().new_stream().unwrap();
    let logits_dev = stream.clone_htod(&logits).unwrap();
    let params_dev = stream.clone_htod(&params).unwrap();
    let mut input_ids = stream.alloc_zeros::<i32>(3 * batch).unwrap();
    let mut logprobs = stream.alloc_zeros::<f32>(batch).unwrap();
    let mut status = stream.alloc_zeros::<u32>(batch).unwrap();
    let mut top_tokens = stream.alloc_zeros::<i32>(batch * 4).unwrap();
    let mut top_logprobs = stream.alloc_zeros::<f32>(batch * 4).unwrap();
    let mut workspace = gpu.alloc_workspace(batch).unwrap();
    stream.synchronize().unwrap();
    let graph = capture(&stream, || {
        let mut views = batchsample::gpu::SampleOutputs {
            tokens: input_ids.slice_mut(batch..2 * batch),
            logprobs: logprobs.slice_mut(..),
            status: status.slice_mut(..),
            top: Some(batchsample::gpu::TopOutputs {
                tokens: top_tokens.slice_mut(..),
                logprobs: top_logprobs.slice_mut(..),
                stride: 4,
            }),
        };
        gpu.sample_on(
            &stream,
            &logits_dev.as_view(),
            vocab,
            &params_dev.as_view(),
            BatchFilters::Any,
            &opts,
            &mut views,
            &mut workspace,
        )
        .unwrap()
    });
    graph.launch().unwrap();
    let ids = stream.clone_dtoh(&input_ids).unwrap();
    let lp = stream.clone_dtoh(&logprobs).unwrap();
    let st = stream.clone_dtoh(&status).unwrap();
    let tt = stream.clone_dtoh(&top_tokens).unwrap();
    let tl = stream.clone_dtoh(&top_logprobs).unwrap();
    stream.synchronize().unwrap();
    let got = batchsample::gpu::decode_rows(&ids[batch..2 * batch], &lp, &st, &tt, &tl, 4, 4);
    assert!(ids[..batch]
        .iter()
        .chain(&ids[2 * batch..])
        .all(|&t| t == 0));
    assert_eq!(
        got, expected,
        "the serving path's rows are the sampler's own"
    );
}

#[test]
fn gpu_samples_strided_rows_with_per_field_params_into_a_wider_top_n_layout() {
    // What an engine hands over: logits rows padded past the vocabulary (a view of a larger
    // buffer), one parameter array per field with scalars for the rest, and top-n buffers whose
    // row stride is their capacity (8), not the call's top_n (3). Same rows as the dense,
    // packed launch; the padding is never read as logits and the slots past top_n stay untouched.
    use batchsample::gpu::{LogitRows, ParamFields, RowParams, SampleOutputs, TopOutputs};
    let Some(gpu) = sampler(16, 8) else { return };
    let mut g = rng(0x5eed_0017);
    let (vocab, batch, stride, top_stride) = (20000, 16, 20000 + 40, 8);
    let (logits, params) = mixed_batch(&mut g, batch, vocab);
    let params: Vec<SamplingParams> = params
        .iter()
        .map(|p| SamplingParams {
            min_p: 0.0,
            seed: 7,
            ..*p
        })
        .collect();
    let opts = SampleOptions {
        top_n: 3,
        ..Default::default()
    };
    let expected = sample_on_device(&gpu, &logits, vocab, &params, BatchFilters::Any, &opts);

    // Padding of +inf: read as a logit it would fail the row (NonFiniteLogit).
    let mut padded = vec![f32::INFINITY; (batch - 1) * stride + vocab];
    for r in 0..batch {
        padded[r * stride..r * stride + vocab].copy_from_slice(&logits[r * vocab..(r + 1) * vocab]);
    }
    let stream = gpu.stream().clone();
    let logits_dev = stream.clone_htod(&padded).unwrap();
    let field = |f: fn(&SamplingParams) -> f32| params.iter().map(f).collect::<Vec<f32>>();
    let temperature = stream.clone_htod(&field(|p| p.temperature)).unwrap();
    let top_p = stream.clone_htod(&field(|p| p.top_p)).unwrap();
    let top_k = stream
        .clone_htod(&params.iter().map(|p| p.top_k).collect::<Vec<u32>>())
        .unwrap();
    let step = stream
        .clone_htod(&params.iter().map(|p| p.step).collect::<Vec<u64>>())
        .unwrap();
    let mut tokens = stream.alloc_zeros::<i32>(batch).unwrap();
    let mut logprobs = stream.alloc_zeros::<f32>(batch).unwrap();
    let mut status = stream.alloc_zeros::<u32>(batch).unwrap();
    let mut top_tokens = stream.clone_htod(&vec![-7i32; batch * top_stride]).unwrap();
    let mut top_logprobs = stream.alloc_zeros::<f32>(batch * top_stride).unwrap();
    let mut workspace = gpu.alloc_workspace(batch).unwrap();
    let (logits_view, t_view, p_view, k_view, s_view) = (
        logits_dev.as_view(),
        temperature.as_view(),
        top_p.as_view(),
        top_k.as_view(),
        step.as_view(),
    );
    let mut out = SampleOutputs {
        tokens: tokens.slice_mut(..),
        logprobs: logprobs.slice_mut(..),
        status: status.slice_mut(..),
        top: Some(TopOutputs {
            tokens: top_tokens.slice_mut(..),
            logprobs: top_logprobs.slice_mut(..),
            stride: top_stride,
        }),
    };
    gpu.sample_rows_on(
        &stream,
        LogitRows {
            data: &logits_view,
            batch,
            vocab,
            row_stride: stride,
        },
        RowParams::Fields(ParamFields {
            temperature: Some(&t_view),
            top_k: Some(&k_view),
            top_p: Some(&p_view),
            step: Some(&s_view),
            scalars: SamplingParams {
                seed: 7,
                ..SamplingParams::default()
            },
            ..ParamFields::default()
        }),
        BatchFilters::Any,
        &opts,
        &mut out,
        &mut workspace,
    )
    .unwrap();
    let ids = stream.clone_dtoh(&tokens).unwrap();
    let lp = stream.clone_dtoh(&logprobs).unwrap();
    let st = stream.clone_dtoh(&status).unwrap();
    let tt = stream.clone_dtoh(&top_tokens).unwrap();
    let tl = stream.clone_dtoh(&top_logprobs).unwrap();
    stream.synchronize().unwrap();
    let got = batchsample::gpu::decode_rows(&ids, &lp, &st, &tt, &tl, 3, top_stride);
    assert_eq!(
        got, expected,
        "strided, per-field rows are the dense, packed ones"
    );
    for r in 0..batch {
        assert!(
            tt[r * top_stride + 3..(r + 1) * top_stride]
                .iter()
                .all(|&t| t == -7),
            "row {r}: a slot past top_n was written"
        );
    }
}

#[test]
fn gpu_samples_memory_it_borrows_on_a_borrowed_stream_and_frees_neither() {
    // The Python package's path: device memory and a stream that another library owns (here:
    // raw pointers and a CUstream taken out of cudarc), seen through borrow_slice and
    // borrow_stream; the results are the sampler's own, and the memory stays the owner's.
    let Some(gpu) = sampler(16, 0) else { return };
    let mut g = rng(0x5eed_0019);
    let (vocab, batch) = (4096, 16);
    let (logits, params) = mixed_batch(&mut g, batch, vocab);
    let opts = SampleOptions::default();
    let expected = sample_on_device(&gpu, &logits, vocab, &params, BatchFilters::Any, &opts);

    let owner = gpu.context().new_stream().unwrap();
    let logits_raw = owner.clone_htod(&logits).unwrap().leak();
    let params_raw = owner.clone_htod(&params).unwrap().leak();
    let tokens_raw = owner.alloc_zeros::<i32>(batch).unwrap().leak();
    let logprobs_raw = owner.alloc_zeros::<f32>(batch).unwrap().leak();
    let status_raw = owner.alloc_zeros::<u32>(batch).unwrap().leak();
    let mut workspace = gpu.alloc_workspace(batch).unwrap();
    owner.synchronize().unwrap();
    gpu.stream().synchronize().unwrap();
    {
        // SAFETY: live allocations of the sampler's context, of these lengths, outliving the
        // borrows; the stream is `owner`'s, alive until the end of the test.
        let stream = unsafe { gpu.borrow_stream(owner.cu_stream()) };
        let x = unsafe { gpu.borrow_slice::<f32>(&stream, logits_raw, batch * vocab) };
        let p = unsafe { gpu.borrow_slice::<SamplingParams>(&stream, params_raw, batch) };
        let mut t = unsafe { gpu.borrow_slice::<i32>(&stream, tokens_raw, batch) };
        let mut l = unsafe { gpu.borrow_slice::<f32>(&stream, logprobs_raw, batch) };
        let mut s = unsafe { gpu.borrow_slice::<u32>(&stream, status_raw, batch) };
        let mut out = batchsample::gpu::SampleOutputs {
            tokens: t.view_mut(),
            logprobs: l.view_mut(),
            status: s.view_mut(),
            top: None,
        };
        let (xv, pv) = (x.view(), p.view());
        gpu.sample_on(
            &stream,
            &xv,
            vocab,
            &pv,
            BatchFilters::Any,
            &opts,
            &mut out,
            &mut workspace,
        )
        .unwrap();
    } // every borrow dropped here: none may free its memory
    owner.synchronize().unwrap();
    // SAFETY: the allocations are still ours (the borrows leaked them back); take them over again
    // so that they are freed once, at the end.
    let (tokens, logprobs, status) = unsafe {
        (
            owner.upgrade_device_ptr::<i32>(tokens_raw, batch),
            owner.upgrade_device_ptr::<f32>(logprobs_raw, batch),
            owner.upgrade_device_ptr::<u32>(status_raw, batch),
        )
    };
    let got = batchsample::gpu::decode_rows(
        &owner.clone_dtoh(&tokens).unwrap(),
        &owner.clone_dtoh(&logprobs).unwrap(),
        &owner.clone_dtoh(&status).unwrap(),
        &[],
        &[],
        0,
        0,
    );
    assert_eq!(
        got, expected,
        "borrowed memory, borrowed stream: the sampler's rows"
    );
    drop(unsafe { owner.upgrade_device_ptr::<f32>(logits_raw, batch * vocab) });
    drop(unsafe { owner.upgrade_device_ptr::<SamplingParams>(params_raw, batch) });
}
