//! Speculative verification on the GPU (skipped, with a SKIP line, where there is none): 64
//! requests x 4 drafts at vocab 128256 — the shape — in f32 and bf16 (and dense drafts
//! in f32), the
//! invariant kernels bit for bit with the invariant twin and the fast kernels making the f64
//! reference's decisions; requests of 0-4 drafts with greedy and filtered rows; a second launch on
//! the same buffers (a ticket counter left above 0 would corrupt it); and a launch over a fixed
//! grid larger than the requests' rows (the serving loop's graph shape).

mod common;

use batchsample::cpu::verify_batch;
use batchsample::processing::Processing;
use batchsample::verify::{uniform_offsets, Drafts, VerifyOptions, VerifyOutput};
use batchsample::{DrawMethod, Logit, Numerics, SamplingParams};
use common::{gpu_sampler, lm_like_row, rng};
use half::bf16;
use rand::rngs::StdRng;
use rand::Rng;

const VOCAB: usize = 128256;

/// `requests` requests of `n` drafts (each the row's maximum or a random likely token).
fn workload(
    g: &mut StdRng,
    requests: usize,
    n: usize,
) -> (Vec<f32>, Vec<u32>, Vec<SamplingParams>) {
    let mut target = Vec::with_capacity(requests * (n + 1) * VOCAB);
    let mut drafts = Vec::with_capacity(requests * n);
    for _ in 0..requests {
        for j in 0..=n {
            let row = lm_like_row(g, VOCAB);
            if j < n {
                let top = (0..VOCAB)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap();
                drafts.push(if g.random_bool(0.6) {
                    top as u32
                } else {
                    g.random_range(0..VOCAB as u32)
                });
            }
            target.extend(row);
        }
    }
    let params = (0..requests as u64)
        .map(|i| SamplingParams {
            temperature: if i % 7 == 6 { 0.0 } else { 0.7 },
            top_k: [0, 50, 1000][(i % 3) as usize],
            top_p: if i % 2 == 0 { 0.9 } else { 1.0 },
            min_p: if i % 5 == 0 { 0.02 } else { 0.0 },
            seed: g.random(),
            step: i * 10,
        })
        .collect();
    (target, drafts, params)
}

fn assert_same_decisions(got: &[VerifyOutput], want: &[VerifyOutput], label: &str) {
    for (r, (k, e)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            (k.status, k.accepted, &k.tokens),
            (e.status, e.accepted, &e.tokens),
            "{label}: request {r}"
        );
        for (a, b) in k.logprobs.iter().zip(&e.logprobs) {
            assert!(
                (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                "{label}: request {r}: {a} vs {b}"
            );
        }
    }
}

fn check<T: Logit + cudarc::driver::DeviceRepr>(
    gpu: &batchsample::gpu::GpuSampler,
    target: &[T],
    reference_target: &[f32],
    drafts: &Drafts,
    params: &[SamplingParams],
    label: &str,
) {
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        for numerics in [Numerics::Fast, Numerics::Invariant] {
            let opts = VerifyOptions { method, numerics };
            let want = verify_batch(
                reference_target,
                VOCAB,
                drafts,
                params,
                &Processing::NONE,
                &opts,
            )
            .unwrap();
            let got = gpu
                .verify_host(target, VOCAB, drafts, params, &Processing::NONE, &opts)
                .unwrap();
            let label = format!("{label} {method:?} {numerics:?}");
            match numerics {
                Numerics::Invariant => assert_eq!(got, want, "{label}"),
                Numerics::Fast => assert_same_decisions(&got, &want, &label),
            }
        }
    }
}

#[test]
fn gpu_verification_matches_the_reference_and_the_twin() {
    let Some(gpu) = gpu_sampler(1, 0) else {
        return;
    };
    let mut g = rng(71);
    let (target, tokens, params) = workload(&mut g, 64, 4);
    let offsets = uniform_offsets(64, 4);
    let drafts = Drafts {
        offsets: &offsets,
        tokens: &tokens,
        probs: None,
    };
    check(&gpu, &target, &target, &drafts, &params, "f32 64x4");
    // Dense drafts: each draft's distribution the softmax of its target row at temperature 1.25.
    let probs: Vec<f32> = (0..64 * 4)
        .flat_map(|d| {
            let (r, j) = (d / 4, d % 4);
            let row = &target[(r * 5 + j) * VOCAB..(r * 5 + j + 1) * VOCAB];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let w: Vec<f64> = row
                .iter()
                .map(|&x| ((x as f64 - max) / 1.25).exp())
                .collect();
            let total: f64 = w.iter().sum();
            w.into_iter().map(move |x| (x / total) as f32)
        })
        .collect();
    let dense = Drafts {
        probs: Some(&probs),
        ..drafts
    };
    check(&gpu, &target, &target, &dense, &params, "f32 64x4 dense");
    let halves: Vec<bf16> = target.iter().map(|&x| bf16::from_f32(x)).collect();
    let widened: Vec<f32> = halves.iter().map(|x| x.to_f32()).collect();
    check(&gpu, &halves, &widened, &drafts, &params, "bf16 64x4");
    // Varied draft counts, including none.
    let counts = [0usize, 1, 4, 2, 0, 3];
    let mut offsets = vec![0u32];
    let mut target = Vec::new();
    let mut tokens = Vec::new();
    let mut params = Vec::new();
    for &n in &counts {
        let (t, d, p) = workload(&mut g, 1, n);
        offsets.push(offsets.last().unwrap() + n as u32);
        target.extend(t);
        tokens.extend(d);
        params.extend(p);
    }
    let drafts = Drafts {
        offsets: &offsets,
        tokens: &tokens,
        probs: None,
    };
    check(&gpu, &target, &target, &drafts, &params, "varied n");
}

/// The CPU reference's results for point-mass drafts without processing.
fn point_mass_reference(
    target: &[f32],
    offsets: &[u32],
    tokens: &[u32],
    params: &[SamplingParams],
    opts: &VerifyOptions,
) -> Vec<VerifyOutput> {
    let drafts = Drafts {
        offsets,
        tokens,
        probs: None,
    };
    verify_batch(target, VOCAB, &drafts, params, &Processing::NONE, opts).unwrap()
}

/// A serving loop's device inputs: the target rows (the whole grid), point-mass drafts in CSR
/// form and packed parameters.
struct DeviceBatch<'a> {
    target: &'a cudarc::driver::CudaSlice<f32>,
    offsets: &'a cudarc::driver::CudaSlice<u32>,
    tokens: &'a cudarc::driver::CudaSlice<u32>,
    params: &'a cudarc::driver::CudaSlice<SamplingParams>,
}

impl DeviceBatch<'_> {
    /// One verification launch over every row of `target` on the sampler's stream.
    fn verify_on(
        &self,
        gpu: &batchsample::gpu::GpuSampler,
        opts: &VerifyOptions,
        out: &mut batchsample::gpu::VerifyBuffers,
        workspace: &mut batchsample::gpu::Workspace,
    ) {
        use batchsample::gpu::{DeviceDrafts, LogitRows, RowParams};
        let target = self.target.as_view();
        let (mut views, scratch) = out.views();
        gpu.verify_on(
            gpu.stream(),
            LogitRows::dense(&target, VOCAB).unwrap(),
            DeviceDrafts {
                offsets: &self.offsets.as_view(),
                tokens: &self.tokens.as_view(),
                probs: None,
            },
            RowParams::Packed(&self.params.as_view()),
            None,
            opts,
            &mut views,
            workspace,
            scratch,
        )
        .unwrap();
    }
}

#[test]
fn gpu_verification_buffers_serve_launch_after_launch_on_a_fixed_grid() {
    let Some(gpu) = gpu_sampler(1, 0) else {
        return;
    };
    let mut g = rng(72);
    let (requests, n) = (8, 3);
    let rows = requests * (n + 1);
    // The grid holds two spare rows: a serving loop sizes it for its largest step.
    let grid = rows + 2;
    let opts = VerifyOptions {
        method: DrawMethod::Gumbel,
        numerics: Numerics::Invariant,
    };
    let s = gpu.stream();
    let mut out = gpu.alloc_verify_buffers(requests, grid, n).unwrap();
    let mut workspace = gpu.alloc_workspace(grid).unwrap();
    for launch in 0..2 {
        let (mut target, tokens, params) = workload(&mut g, requests, n);
        let offsets = uniform_offsets(requests, n);
        let want = point_mass_reference(&target, &offsets, &tokens, &params, &opts);
        target.resize(grid * VOCAB, 0.0);
        let target_dev = s.clone_htod(&target).unwrap();
        let offsets_dev = s.clone_htod(&offsets).unwrap();
        let tokens_dev = s.clone_htod(&tokens).unwrap();
        let params_dev = s.clone_htod(&params).unwrap();
        let inputs = DeviceBatch {
            target: &target_dev,
            offsets: &offsets_dev,
            tokens: &tokens_dev,
            params: &params_dev,
        };
        inputs.verify_on(&gpu, &opts, &mut out, &mut workspace);
        let got = gpu.download_verify(&out, requests).unwrap();
        assert_eq!(got, want, "launch {launch}");
    }
}

#[test]
fn gpu_verification_replays_in_a_cuda_graph_with_drafts_rewritten_in_place() {
    use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
    let Some(gpu) = gpu_sampler(1, 0) else {
        return;
    };
    let mut g = rng(73);
    let (requests, n) = (16, 4);
    let grid = requests * (n + 1);
    let opts = VerifyOptions {
        method: DrawMethod::Gumbel,
        numerics: Numerics::Invariant,
    };
    let s = gpu.stream();
    // The serving loop's buffers, allocated once: the graph holds their addresses.
    let (target, tokens, params) = workload(&mut g, requests, n);
    let mut target_dev = s.clone_htod(&target).unwrap();
    let mut offsets_dev = s.clone_htod(&uniform_offsets(requests, n)).unwrap();
    let mut tokens_dev = s.clone_htod(&tokens).unwrap();
    let mut params_dev = s.clone_htod(&params).unwrap();
    let mut out = gpu.alloc_verify_buffers(requests, grid, n).unwrap();
    let mut workspace = gpu.alloc_workspace(grid).unwrap();
    s.synchronize().unwrap();
    s.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .unwrap();
    let inputs = DeviceBatch {
        target: &target_dev,
        offsets: &offsets_dev,
        tokens: &tokens_dev,
        params: &params_dev,
    };
    inputs.verify_on(&gpu, &opts, &mut out, &mut workspace);
    let graph = s
        .end_capture(CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)
        .unwrap()
        .expect("a graph was captured");
    // Two steps: new logits, drafts and varying draft counts (request r drafts r % (n + 1)),
    // written in place; the replayed launch must verify what the buffers hold now.
    for step in 0..2u64 {
        let (target, tokens, mut params) = workload(&mut g, requests, n);
        let counts: Vec<usize> = (0..requests)
            .map(|r| (r + step as usize) % (n + 1))
            .collect();
        let mut offsets = vec![0u32];
        let mut packed_tokens = Vec::new();
        let mut packed_target = Vec::new();
        for (r, &c) in counts.iter().enumerate() {
            offsets.push(offsets.last().unwrap() + c as u32);
            packed_tokens.extend_from_slice(&tokens[r * n..r * n + c]);
            let first = r * (n + 1);
            packed_target.extend_from_slice(&target[first * VOCAB..(first + c + 1) * VOCAB]);
        }
        params.iter_mut().for_each(|p| p.step += 100 * step);
        let want = point_mass_reference(&packed_target, &offsets, &packed_tokens, &params, &opts);
        packed_target.resize(grid * VOCAB, 0.0);
        packed_tokens.resize(requests * n, 0);
        s.memcpy_htod(&packed_target, &mut target_dev).unwrap();
        s.memcpy_htod(&offsets, &mut offsets_dev).unwrap();
        s.memcpy_htod(&packed_tokens, &mut tokens_dev).unwrap();
        s.memcpy_htod(&params, &mut params_dev).unwrap();
        graph.launch().unwrap();
        let got = gpu.download_verify(&out, requests).unwrap();
        assert_eq!(got, want, "replay {step}");
    }
}

/// A serving engine's own output tensors: `verify_on` writes the request results straight into
/// them at their stride (wider than `n + 1` here), and refuses outputs too short for the batch
/// before launching anything.
#[test]
fn gpu_verification_writes_caller_owned_outputs_at_their_stride() {
    use batchsample::gpu::{DeviceDrafts, LogitRows, RowParams, VerifyOutputs};
    let Some(gpu) = gpu_sampler(1, 0) else {
        return;
    };
    let mut g = rng(74);
    let (requests, n) = (6, 2);
    let rows = requests * (n + 1);
    let stride = n + 4;
    let opts = VerifyOptions {
        method: DrawMethod::InverseCdf,
        numerics: Numerics::Invariant,
    };
    let (target, tokens, params) = workload(&mut g, requests, n);
    let offsets = uniform_offsets(requests, n);
    let want = point_mass_reference(&target, &offsets, &tokens, &params, &opts);
    let s = gpu.stream();
    let (target_dev, offsets_dev, tokens_dev, params_dev) = (
        s.clone_htod(&target).unwrap(),
        s.clone_htod(&offsets).unwrap(),
        s.clone_htod(&tokens).unwrap(),
        s.clone_htod(&params).unwrap(),
    );
    let mut accepted = s.alloc_zeros::<i32>(requests).unwrap();
    let mut status = s.alloc_zeros::<u32>(requests).unwrap();
    let mut out_tokens = s.alloc_zeros::<i32>(requests * stride).unwrap();
    let mut out_logprobs = s.alloc_zeros::<f32>(requests * stride).unwrap();
    let mut workspace = gpu.alloc_workspace(rows).unwrap();
    let mut scratch = gpu.alloc_verify_workspace(requests, rows).unwrap();
    let target_view = target_dev.as_view();
    let (offsets_view, tokens_view, params_view) = (
        offsets_dev.as_view(),
        tokens_dev.as_view(),
        params_dev.as_view(),
    );
    let mut launch = |token_len: usize| {
        let mut out = VerifyOutputs {
            accepted: accepted.slice_mut(..),
            tokens: out_tokens.slice_mut(..token_len),
            logprobs: out_logprobs.slice_mut(..),
            status: status.slice_mut(..),
            stride,
        };
        gpu.verify_on(
            s,
            LogitRows::dense(&target_view, VOCAB).unwrap(),
            DeviceDrafts {
                offsets: &offsets_view,
                tokens: &tokens_view,
                probs: None,
            },
            RowParams::Packed(&params_view),
            None,
            &opts,
            &mut out,
            &mut workspace,
            &mut scratch,
        )
    };
    let short = launch(requests * stride - 1).unwrap_err().to_string();
    assert!(short.contains("tokens"), "{short}");
    launch(requests * stride).unwrap();
    let accepted = s.clone_dtoh(&accepted).unwrap();
    let status = s.clone_dtoh(&status).unwrap();
    let out_tokens = s.clone_dtoh(&out_tokens).unwrap();
    let out_logprobs = s.clone_dtoh(&out_logprobs).unwrap();
    for r in 0..requests {
        let row = r * stride..(r + 1) * stride;
        let got = VerifyOutput::from_padded(
            status[r],
            accepted[r],
            &out_tokens[row.clone()],
            &out_logprobs[row],
        );
        assert_eq!(got, want[r], "request {r}");
    }
}
