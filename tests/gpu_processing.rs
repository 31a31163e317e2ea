//! Logits processing on the GPU (skipped, with a SKIP line, where there is none): processed
//! batches at vocab 128256 (a mask allowing half the vocabulary, penalties over 1024 prompt and
//! 1024 output tokens a row, bans and biases) against the exact reference in f32 and bf16; the
//! invariant kernels bit for bit with the invariant twin; a second launch with other lists on the
//! same workspace (a bit left set by the first would corrupt it); processing off = the
//! unprocessed bits; and a bad row written on the device refused alone.

mod common;
mod parity;

use batchsample::cpu::{raw_logprobs, sample_batch_processed, scan_row};
use batchsample::gpu::{
    DeviceProcessing, DeviceTokenLists, GpuSampler, LogitRows, RowParams, SampleOutputs, TopOutputs,
};
use batchsample::processing::{LogprobsMode, Penalties, Processing, ProcessingBuf, RowProcessing};
use batchsample::{Logit, Numerics, RowStatus, SampleOptions, SamplingParams};
use common::{lm_like_row, rng, same_bits};
use parity::batches::to_bf16;
use parity::check_parity;
use parity::processed::{random_mask, reference_logits};
use rand::rngs::StdRng;
use rand::Rng;

const VOCAB: usize = 128256;

/// The bench's penalties workload (prompt 1024 + output 1024 tokens, r 1.1, f 0.5, q 0.5), with
/// a few bans and biases, for `batch` rows.
fn serving_rows(g: &mut StdRng, batch: usize) -> Vec<RowProcessing> {
    (0..batch)
        .map(|_| {
            let token = |g: &mut StdRng| g.random_range(0..VOCAB as u32);
            let mut bias: Vec<(u32, f32)> = (0..8)
                .map(|_| (token(g), g.random_range(-5.0..5.0)))
                .collect();
            bias.sort_by_key(|b| b.0);
            bias.dedup_by_key(|b| b.0);
            let hot: Vec<u32> = (0..300).map(|_| token(g)).collect();
            RowProcessing {
                banned_tokens: (0..4).map(|_| token(g)).collect(),
                logit_bias: bias,
                prompt_tokens: (0..1024).map(|_| token(g)).collect(),
                output_tokens: (0..1024)
                    .map(|_| hot[g.random_range(0..hot.len())])
                    .collect(),
                penalties: Penalties {
                    repetition: 1.1,
                    frequency: 0.5,
                    presence: 0.5,
                },
            }
        })
        .collect()
}

fn batch_params(g: &mut StdRng, batch: usize) -> Vec<SamplingParams> {
    (0..batch as u64)
        .map(|i| SamplingParams {
            temperature: if i % 7 == 6 {
                0.0
            } else {
                0.6 + 0.1 * (i % 5) as f32
            },
            top_k: [0, 50, 1000][(i % 3) as usize],
            top_p: if i % 2 == 0 { 0.9 } else { 1.0 },
            min_p: if i % 5 == 0 { 0.02 } else { 0.0 },
            seed: g.random(),
            step: i,
        })
        .collect()
}

fn check<T: Logit + cudarc::driver::DeviceRepr>(
    gpu: &GpuSampler,
    logits: &[T],
    params: &[SamplingParams],
    buf: &ProcessingBuf,
    label: &str,
) {
    let processing = buf.view();
    let opts = SampleOptions {
        top_n: 5,
        ..Default::default()
    };
    let got = gpu
        .sample_host_processed(
            logits,
            VOCAB,
            params,
            &processing,
            LogprobsMode::Processed,
            &opts,
        )
        .unwrap();
    let reference = reference_logits(logits, VOCAB, &processing);
    let report = check_parity(&reference, VOCAB, params, &opts, &got, 2e-3);
    println!("PROCESSED {label}: {}", report.summary());
    report.assert_clean();

    // The invariant kernels are the twin's bits, with either logprobs (raw: the second,
    // scoring launch).
    let invariant = SampleOptions {
        numerics: Numerics::Invariant,
        ..opts
    };
    for mode in [LogprobsMode::Processed, LogprobsMode::Raw] {
        let got = gpu
            .sample_host_processed(logits, VOCAB, params, &processing, mode, &invariant)
            .unwrap();
        let twin =
            sample_batch_processed(logits, VOCAB, params, &processing, mode, &invariant).unwrap();
        for (r, (a, b)) in got.iter().zip(&twin).enumerate() {
            assert!(
                same_bits(a, b),
                "{label}: invariant {mode:?} row {r}: GPU {a:?} vs twin {b:?}"
            );
        }
    }

    // Raw logprobs in the fast numerics: the exact raw logprobs of the kernels' own token
    // within tolerance, the raw top-n's tokens exactly.
    let got = gpu
        .sample_host_processed(logits, VOCAB, params, &processing, LogprobsMode::Raw, &opts)
        .unwrap();
    for (r, row) in logits.chunks(VOCAB).enumerate() {
        let Some(token) = got[r].token else { continue };
        let scan = scan_row(row).unwrap();
        let (logprob, top) = raw_logprobs(row, &scan, token, opts.top_n);
        assert!(
            (got[r].logprob - logprob).abs() <= 2e-3 * (1.0 + logprob.abs()),
            "{label}: raw fast row {r}: {} vs exact {logprob}",
            got[r].logprob
        );
        let tokens =
            |t: &[batchsample::cpu::TokenLogprob]| t.iter().map(|x| x.token).collect::<Vec<_>>();
        assert_eq!(
            tokens(&got[r].top_logprobs),
            tokens(&top),
            "{label}: raw top-n row {r}"
        );
    }
}

#[test]
fn gpu_processed_batches_match_the_reference_and_the_invariant_twin() {
    let Some(gpu) = common::gpu_sampler(256, 5) else {
        return;
    };
    let mut g = rng(0x9a0c_0101);
    for batch in [64usize, 256] {
        let logits: Vec<f32> = (0..batch)
            .flat_map(|_| lm_like_row(&mut g, VOCAB))
            .collect();
        let params = batch_params(&mut g, batch);
        let rows = serving_rows(&mut g, batch);
        let masked = ProcessingBuf::from_rows(&rows, Some(random_mask(&mut g, batch, VOCAB, 0.5)));
        check(
            &gpu,
            &logits,
            &params,
            &masked,
            &format!("batch {batch} f32, mask + lists"),
        );
        check(
            &gpu,
            &to_bf16(&logits),
            &params,
            &masked,
            &format!("batch {batch} bf16, mask + lists"),
        );
        // Other lists on a fresh workspace each call, and the same batch unmasked.
        let other = ProcessingBuf::from_rows(&serving_rows(&mut g, batch), None);
        check(
            &gpu,
            &logits,
            &params,
            &other,
            &format!("batch {batch} f32, lists only"),
        );
    }
}

/// The serving path with device lists: two launches on one processing workspace with different
/// lists (the second is right only if the first left the touched bitmap clear), a row whose
/// device-written offsets decrease refused alone, and processing whose every step is off giving
/// the unprocessed bits.
#[test]
fn gpu_processed_launches_reuse_the_workspace_and_refuse_a_bad_row_alone() {
    let Some(gpu) = common::gpu_sampler(64, 5) else {
        return;
    };
    let mut g = rng(0x9a0c_0102);
    let batch = 16;
    let logits: Vec<f32> = (0..batch)
        .flat_map(|_| lm_like_row(&mut g, VOCAB))
        .collect();
    let params = batch_params(&mut g, batch);
    let opts = SampleOptions {
        top_n: 3,
        ..Default::default()
    };
    let s = gpu.stream().clone();
    let logits_dev = s.clone_htod(&logits).unwrap();
    let params_dev = s.clone_htod(&params).unwrap();
    let mut workspace = gpu.alloc_workspace(batch).unwrap();
    let mut pws = gpu.alloc_processing_workspace(batch, VOCAB, 4096).unwrap();
    let mut tokens = s.alloc_zeros::<i32>(batch).unwrap();
    let mut logprobs = s.alloc_zeros::<f32>(batch).unwrap();
    let mut status = s.alloc_zeros::<u32>(batch).unwrap();
    let mut top_tokens = s.alloc_zeros::<i32>(batch * 3).unwrap();
    let mut top_logprobs = s.alloc_zeros::<f32>(batch * 3).unwrap();
    let mut launch = |buf: &ProcessingBuf| {
        let up = |v: &[u32]| s.clone_htod(v).unwrap();
        let (bo, bt) = (up(&buf.banned_offsets), up(&buf.banned));
        let (po, pt) = (up(&buf.prompt_offsets), up(&buf.prompt));
        let (oo, ot) = (up(&buf.output_offsets), up(&buf.output));
        let pen = s.clone_htod(&buf.penalties).unwrap();
        let views = [
            bo.as_view(),
            bt.as_view(),
            po.as_view(),
            pt.as_view(),
            oo.as_view(),
            ot.as_view(),
        ];
        let pen_view = pen.as_view();
        let lists = |i: usize| DeviceTokenLists {
            offsets: &views[2 * i],
            tokens: &views[2 * i + 1],
        };
        let device = DeviceProcessing {
            banned: Some(lists(0)),
            prompt: Some(lists(1)),
            output: Some(lists(2)),
            penalties: Some(&pen_view),
            ..Default::default()
        };
        let logits_view = logits_dev.as_view();
        let params_view = params_dev.as_view();
        let mut out = SampleOutputs {
            tokens: tokens.slice_mut(..),
            logprobs: logprobs.slice_mut(..),
            status: status.slice_mut(..),
            top: Some(TopOutputs {
                tokens: top_tokens.slice_mut(..),
                logprobs: top_logprobs.slice_mut(..),
                stride: 3,
            }),
        };
        gpu.sample_processed_on(
            &s,
            LogitRows::dense(&logits_view, VOCAB).unwrap(),
            RowParams::Packed(&params_view),
            &device,
            LogprobsMode::Processed,
            &opts,
            &mut out,
            &mut workspace,
            &mut pws,
        )
        .unwrap();
        batchsample::gpu::decode_rows(
            &s.clone_dtoh(&tokens).unwrap(),
            &s.clone_dtoh(&logprobs).unwrap(),
            &s.clone_dtoh(&status).unwrap(),
            &s.clone_dtoh(&top_tokens).unwrap(),
            &s.clone_dtoh(&top_logprobs).unwrap(),
            3,
            3,
        )
    };
    let mut rows = serving_rows(&mut g, batch);
    for r in rows.iter_mut() {
        r.logit_bias.clear(); // the device lists above carry no bias
    }
    let first = ProcessingBuf::from_rows(&rows, None);
    let other_rows: Vec<RowProcessing> = serving_rows(&mut g, batch)
        .into_iter()
        .map(|r| RowProcessing {
            logit_bias: Vec::new(),
            ..r
        })
        .collect();
    let second = ProcessingBuf::from_rows(&other_rows, None);
    for buf in [&first, &second] {
        let got = launch(buf);
        let reference = reference_logits(&logits, VOCAB, &buf.view());
        let report = check_parity(&reference, VOCAB, &params, &opts, &got, 2e-3);
        println!("PROCESSED device lists: {}", report.summary());
        report.assert_clean();
    }
    // Row 15's output offsets decrease, as a device-side writer could leave them.
    let mut bad = second.clone();
    bad.output_offsets[batch] = bad.output_offsets[batch - 1] - 1;
    let got = launch(&bad);
    assert_eq!(got[batch - 1].status, RowStatus::InvalidParams);
    let good = launch(&second);
    for r in 0..batch - 1 {
        assert!(same_bits(&got[r], &good[r]), "row {r} beside the bad row");
    }
    // Every step off: lists present and empty, penalties off.
    let off_rows = vec![RowProcessing::default(); batch];
    let mut off = ProcessingBuf::from_rows(&off_rows, None);
    off.banned_offsets = vec![0; batch + 1];
    off.prompt_offsets = vec![0; batch + 1];
    off.output_offsets = vec![0; batch + 1];
    off.banned = vec![1];
    off.prompt = vec![1];
    off.output = vec![1];
    off.penalties = vec![Penalties::OFF; batch];
    let got = launch(&off);
    let plain = gpu
        .sample_host_processed(
            &logits,
            VOCAB,
            &params,
            &Processing::NONE,
            LogprobsMode::Processed,
            &opts,
        )
        .unwrap();
    for r in 0..batch {
        assert!(same_bits(&got[r], &plain[r]), "row {r}: processing off");
    }
}
