//! The kernels' own CUDA source, run on the CPU through the host SIMT shim, against the exact
//! reference: every entry point (f32, f16, bf16), odd and real vocabulary sizes, mixed per-row
//! parameters, ties, masks, failing rows, both draw methods, several block sizes, and three
//! thread schedules that must agree bit for bit.
#![cfg(feature = "host-simt")]

mod common;
mod parity;

use batchsample::host_simt::sampler::sample_rows;
use batchsample::host_simt::Schedule;
use batchsample::{DrawMethod, Logit, RowOutput, SampleOptions, SamplingParams};
use common::rng;
use parity::batches::{mixed_batch, to_bf16, to_f16};
use parity::{check_parity, ParityReport};

/// Runs one launch under every schedule, checks they agree bit for bit, and diffs the result
/// against the reference.
fn run_and_check<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
) -> ParityReport {
    let schedules = Schedule::all(0x5c4e_d01e ^ vocab as u64);
    let runs: Vec<Vec<RowOutput>> = schedules
        .iter()
        .map(|&s| {
            sample_rows(logits, vocab, params, opts, threads, s)
                .unwrap_or_else(|e| panic!("shim launch failed ({s:?}, {threads} threads): {e}"))
        })
        .collect();
    for (s, run) in schedules.iter().zip(&runs).skip(1) {
        for (r, (a, b)) in runs[0].iter().zip(run).enumerate() {
            assert_eq!(
                a.token, b.token,
                "row {r}: schedule {s:?} changed the token"
            );
            assert_eq!(
                a.logprob.to_bits(),
                b.logprob.to_bits(),
                "row {r}: schedule {s:?} changed the logprob"
            );
            assert_eq!(
                a.top_logprobs, b.top_logprobs,
                "row {r}: schedule {s:?} changed top-n"
            );
        }
    }
    check_parity(logits, vocab, params, opts, &runs[0], 2e-3)
}

fn sweep(vocab: usize, batch: usize, threads: &[u32], seed: u64) -> ParityReport {
    let mut g = rng(seed);
    let mut total = ParityReport::default();
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 4.min(vocab),
            ..Default::default()
        };
        let (logits, params) = mixed_batch(&mut g, batch, vocab);
        for &t in threads {
            let reports = [
                ("f32", run_and_check(&logits, vocab, &params, &opts, t)),
                (
                    "f16",
                    run_and_check(&to_f16(&logits), vocab, &params, &opts, t),
                ),
                (
                    "bf16",
                    run_and_check(&to_bf16(&logits), vocab, &params, &opts, t),
                ),
            ];
            for (name, r) in reports {
                println!(
                    "vocab {vocab} {method:?} {name} {t} threads: {}",
                    r.summary()
                );
                total.merge(r);
            }
        }
    }
    total.assert_clean();
    total
}

#[test]
fn shim_kernels_match_the_reference_at_tiny_vocabularies() {
    for vocab in [1usize, 2, 33] {
        sweep(vocab, 48, &[64], 0x11 + vocab as u64);
    }
}

#[test]
fn shim_kernels_match_the_reference_at_vocab_1000() {
    sweep(1000, 32, &[64, 256], 0x1000);
}

#[test]
fn shim_kernels_match_the_reference_at_vocab_4097() {
    // Not a multiple of 4 or 8: every row after the first starts unaligned (element loads).
    sweep(4097, 16, &[128, 512], 0x4097);
}

#[test]
fn shim_kernels_match_the_reference_at_vocab_32000() {
    sweep(32000, 6, &[512], 0x32000);
}

#[test]
fn shim_kernels_report_bad_rows_and_spare_the_rest() {
    let mut g = rng(0xbad);
    let vocab = 300;
    let (mut logits, mut params) = mixed_batch(&mut g, 8, vocab);
    logits[vocab + 3] = f32::NAN;
    logits[2 * vocab + 7] = f32::INFINITY;
    logits[3 * vocab..4 * vocab].fill(f32::NEG_INFINITY);
    params[4].top_p = 0.0; // rejected on the device: InvalidParams
    params[5].min_p = 1.0;
    params[6].temperature = -1.0;
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 3,
        ..Default::default()
    };
    let out = sample_rows(&logits, vocab, &params, &opts, 64, Schedule::Forward).unwrap();
    use batchsample::RowStatus::*;
    let want = [
        Ok,
        NonFiniteLogit,
        NonFiniteLogit,
        NoFiniteLogit,
        InvalidParams,
        InvalidParams,
        InvalidParams,
        Ok,
    ];
    for (r, o) in out.iter().enumerate() {
        assert_eq!(o.status, want[r], "row {r}");
        assert_eq!(o.token.is_some(), want[r] == Ok, "row {r}");
    }
    for r in [0usize, 7] {
        let alone = sample_rows(
            &logits[r * vocab..(r + 1) * vocab],
            vocab,
            &params[r..r + 1],
            &opts,
            64,
            Schedule::Reverse,
        )
        .unwrap();
        assert_eq!(alone[0], out[r], "row {r} alone");
    }
}

#[test]
fn shim_kernels_share_one_parameter_set_across_rows() {
    let mut g = rng(0x5a5e);
    let vocab = 777;
    let (logits, _) = mixed_batch(&mut g, 12, vocab);
    let shared = [SamplingParams {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.85,
        min_p: 0.01,
        seed: 3,
        step: 11,
    }];
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 2,
            ..Default::default()
        };
        let report = run_and_check(&logits, vocab, &shared, &opts, 128);
        println!("shared params {method:?}: {}", report.summary());
        report.assert_clean();
    }
}

#[test]
fn shim_kernels_small_k_path_and_its_fallback_match_the_reference() {
    // k up to 2048 takes the shared-memory candidate path when the top digit's tokens fit;
    // larger k, or rows whose top digit is crowded (flat or bf16-rounded rows), fall back to radix
    // select. Both must give the reference's answer.
    let mut g = rng(0x5a11_c0de);
    let vocab = 20000;
    let mut total = ParityReport::default();
    for k in [1u32, 2, 50, 500, 2048, 2049, 5000] {
        let (logits, mut params) = mixed_batch(&mut g, 8, vocab);
        for (i, p) in params.iter_mut().enumerate() {
            p.temperature = p.temperature.max(0.2);
            p.top_k = k;
            p.top_p = if i % 2 == 0 { 0.9 } else { 1.0 };
            p.min_p = if i % 3 == 0 { 0.02 } else { 0.0 };
        }
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = SampleOptions {
                method,
                top_n: 20,
                ..Default::default()
            };
            let r = run_and_check(&logits, vocab, &params, &opts, 256);
            println!("k {k} {method:?}: {}", r.summary());
            total.merge(r);
            let r = run_and_check(&to_bf16(&logits), vocab, &params, &opts, 256);
            println!("k {k} {method:?} bf16: {}", r.summary());
            total.merge(r);
        }
    }
    total.assert_clean();
}

#[test]
fn shim_kernels_top_p_candidate_path_and_its_fallback_match_the_reference() {
    // top-p without top-k first collects a prefix of the rank order in shared memory; peaked
    // rows find their cut there, flat rows and wide-bulk rows (much of the mass spread over the
    // 20000-token bulk) fall back to the radix passes. Both must give the reference's answer.
    let mut g = rng(0x70b9_c0de);
    let vocab = 20000;
    let mut total = ParityReport::default();
    for top_p in [0.3f32, 0.9, 0.99] {
        let mut logits = Vec::new();
        let mut params = Vec::new();
        for i in 0..6 {
            logits.extend(match i % 3 {
                0 => common::lm_like_row(&mut g, vocab),
                1 => common::normal_row(&mut g, vocab, 0.3),
                _ => common::normal_row(&mut g, vocab, 2.0),
            });
            params.push(SamplingParams {
                temperature: 0.8,
                top_k: 0,
                top_p,
                min_p: if i % 2 == 0 { 0.0 } else { 0.01 },
                seed: i as u64,
                step: 3,
            });
        }
        for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
            let opts = SampleOptions {
                method,
                top_n: 5,
                ..Default::default()
            };
            let r = run_and_check(&logits, vocab, &params, &opts, 512);
            println!("top-p {top_p} {method:?}: {}", r.summary());
            total.merge(r);
            let r = run_and_check(&to_bf16(&logits), vocab, &params, &opts, 128);
            println!("top-p {top_p} {method:?} bf16: {}", r.summary());
            total.merge(r);
        }
    }
    total.assert_clean();
}

#[test]
fn shim_gumbel_noise_skipping_never_drops_the_winner() {
    // Flat and nearly flat rows: every token is a contender, so any unsound skip of "hopeless"
    // tokens (those more than the noise bound below the block's best score) changes the winner.
    let vocab = 50_000;
    let rows = 12;
    let mut logits = Vec::with_capacity(rows * vocab);
    for r in 0..rows {
        logits.extend((0..vocab).map(|i| {
            if r % 2 == 0 {
                0.0
            } else {
                ((i * 7919) % 1000) as f32 * 1e-3
            }
        }));
    }
    let params: Vec<SamplingParams> = (0..rows as u64)
        .map(|r| SamplingParams {
            temperature: 1.0,
            seed: 1000 + r,
            step: r,
            ..Default::default()
        })
        .collect();
    let opts = SampleOptions {
        method: DrawMethod::Gumbel,
        top_n: 0,
        ..Default::default()
    };
    let report = run_and_check(&logits, vocab, &params, &opts, 512);
    println!("flat rows: {}", report.summary());
    report.assert_clean();
}

#[test]
fn shim_subnormal_temperatures_sample_among_the_tied_maximum() {
    // 1/T overflows for a subnormal T: the kernel must not turn the maximum's weight into NaN.
    let vocab = 40;
    let mut row: Vec<f32> = (0..vocab).map(|i| (i % 5) as f32).collect();
    row[7] = 4.0 + 1e-6;
    row[13] = 4.0 + 1e-6;
    let logits: Vec<f32> = (0..16).flat_map(|_| row.iter().copied()).collect();
    let params: Vec<SamplingParams> = (0..16u64)
        .map(|i| SamplingParams {
            temperature: 1e-40,
            seed: i,
            step: i,
            ..Default::default()
        })
        .collect();
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = SampleOptions {
            method,
            top_n: 2,
            ..Default::default()
        };
        let report = run_and_check(&logits, vocab, &params, &opts, 64);
        report.assert_clean();
        let out = sample_rows(&logits, vocab, &params, &opts, 64, Schedule::Forward).unwrap();
        assert!(
            out.iter().all(|o| matches!(o.token, Some(7) | Some(13))),
            "{out:?}"
        );
    }
}

#[test]
fn shim_every_family_reads_strided_rows_per_field_params_and_a_wide_top_n_layout() {
    // The launch ABI (kernels/args.cuh) as an engine uses it: rows `row_stride` apart with +inf
    // padding between them (read as a logit, it would fail the row), the parameters as one array
    // per field (seed and step from the scalars), the top-n pair at a stride wider than top_n.
    // Every family's entry point must give the rows of the dense, packed launch, bit for bit,
    // and leave the slots past top_n untouched.
    use batchsample::host_simt::geometry::{KernelKey, SamplerKernel};
    use batchsample::host_simt::sampler::{run, ShimLaunch, ShimParams};
    use batchsample::processing::Processing;
    use batchsample::{Dtype, Numerics};
    let mut g = rng(0xa7c5_0001);
    let (vocab, batch, row_stride, top_stride) = (3000, 6, 3000 + 21, 7);
    let (logits, mixed) = mixed_batch(&mut g, batch, vocab);
    let mut padded = vec![f32::INFINITY; (batch - 1) * row_stride + vocab];
    for r in 0..batch {
        padded[r * row_stride..r * row_stride + vocab]
            .copy_from_slice(&logits[r * vocab..(r + 1) * vocab]);
    }
    let scalars = SamplingParams {
        seed: 0x5eed,
        step: 9,
        ..SamplingParams::default()
    };
    // Each family with rows it serves: any rows; temperature-only rows; small top-k rows.
    type Shape = fn(&SamplingParams) -> SamplingParams;
    let families: [(SamplerKernel, bool, Shape); 5] = [
        (SamplerKernel::General, false, |p| *p),
        (SamplerKernel::General, true, |p| *p),
        (SamplerKernel::Unfiltered, false, |p| SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..*p
        }),
        (SamplerKernel::Unfiltered, true, |p| SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..*p
        }),
        (SamplerKernel::Collected, false, |p| SamplingParams {
            top_k: 1 + p.top_k % 40,
            ..*p
        }),
    ];
    for (kernel, split, shape) in families {
        let params: Vec<SamplingParams> = mixed
            .iter()
            .map(|p| SamplingParams {
                seed: scalars.seed,
                step: scalars.step,
                ..shape(p)
            })
            .collect();
        let opts = SampleOptions {
            top_n: if kernel == SamplerKernel::Unfiltered {
                0
            } else {
                3
            },
            ..Default::default()
        };
        let key = KernelKey {
            kernel,
            numerics: Numerics::Fast,
            draw: DrawMethod::Gumbel,
            dtype: Dtype::F32,
            split,
        };
        let launch = |logits: &[f32], row_stride, params, top_stride| {
            run(
                &ShimLaunch {
                    key,
                    logits,
                    batch,
                    vocab,
                    row_stride,
                    params,
                    top_stride,
                    threads: 256,
                    splits: if split { 3 } else { 1 },
                    schedule: Schedule::Forward,
                    processing: Processing::NONE,
                    verify: None,
                    scored: None,
                },
                &opts,
            )
            .unwrap()
        };
        let dense = launch(&logits, vocab, ShimParams::Packed(&params), opts.top_n);
        let field = |f: fn(&SamplingParams) -> f32| params.iter().map(f).collect::<Vec<f32>>();
        let (temperature, top_p, min_p) = (
            field(|p| p.temperature),
            field(|p| p.top_p),
            field(|p| p.min_p),
        );
        let top_k: Vec<u32> = params.iter().map(|p| p.top_k).collect();
        let fields = ShimParams::Fields {
            temperature: Some(&temperature),
            top_k: Some(&top_k),
            top_p: Some(&top_p),
            min_p: Some(&min_p),
            seed: None,
            step: None,
            scalars,
        };
        let strided = launch(&padded, row_stride, fields, top_stride);
        assert_eq!(strided.rows, dense.rows, "{key:?}: strided per-field rows");
        assert!(
            dense.rows.iter().filter(|r| r.token.is_some()).count() >= batch / 2,
            "{key:?}: the batch samples most rows"
        );
        for r in 0..batch {
            let past = &strided.top_tokens[r * top_stride + opts.top_n..(r + 1) * top_stride];
            assert!(
                past.iter().all(|&t| t == i32::MIN),
                "{key:?} row {r}: a slot past top_n was written"
            );
        }
        assert!(strided.arrivals.iter().all(|&a| a == 0));
    }
}
