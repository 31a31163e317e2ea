//! Speculative verification in the kernels' own source, run on the CPU through the host SIMT
//! shim (kernels/verify.cuh and the general row's residual draw): the invariant kernels return
//! the invariant twin's bits (`cpu::verify_batch` with `Numerics::Invariant`) and the fast
//! kernels the f64 reference's decisions, for point-mass drafts — greedy and sampling requests,
//! every filter, both draw methods, f32 and bf16, processed targets, `n = 0`, drafts that are the
//! row's maximum, bad requests — under every block schedule (the last block to arrive finishes
//! its request, whichever it is).
#![cfg(feature = "host-simt")]

mod common;

use batchsample::cpu::verify_batch;
use batchsample::host_simt::sampler::verify_rows;
use batchsample::host_simt::Schedule;
use batchsample::processing::{Penalties, Processing, ProcessingBuf, RowProcessing};
use batchsample::verify::{Drafts, VerifyOptions, VerifyOutput};
use batchsample::{DrawMethod, Logit, Numerics, RowStatus, SamplingParams};
use common::*;
use half::bf16;
use rand::rngs::StdRng;
use rand::Rng;

/// A batch of requests with point-mass drafts: 0-4 drafts each, drawn near the target so that
/// chains run long, sometimes the row's maximum (the residual race without it), varied
/// parameters (a fifth greedy).
#[derive(Clone)]
struct Batch {
    offsets: Vec<u32>,
    tokens: Vec<u32>,
    target: Vec<f32>,
    params: Vec<SamplingParams>,
    /// Dense draft distributions, `[drafts, vocab]`; empty: point masses.
    probs: Vec<f32>,
}

impl Batch {
    fn random(rng: &mut StdRng, requests: usize, vocab: usize) -> Batch {
        let mut b = Batch {
            offsets: vec![0],
            tokens: Vec::new(),
            target: Vec::new(),
            params: Vec::new(),
            probs: Vec::new(),
        };
        for _ in 0..requests {
            let n = rng.random_range(0..=4usize);
            b.offsets.push(b.offsets.last().unwrap() + n as u32);
            let rows: Vec<Vec<f32>> = (0..=n).map(|_| lm_like_row(rng, vocab)).collect();
            for row in &rows[..n] {
                let top = (0..vocab)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                    .unwrap();
                let draft = match rng.random_range(0..3) {
                    0 => top,
                    1 => rng.random_range(0..vocab),
                    _ => {
                        // One of the few most likely tokens.
                        let mut order: Vec<usize> = (0..vocab).collect();
                        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                        order[rng.random_range(0..4)]
                    }
                };
                b.tokens.push(draft as u32);
            }
            b.target.extend(rows.concat());
            b.params.push(if rng.random_bool(0.2) {
                SamplingParams {
                    temperature: 0.0,
                    seed: rng.random(),
                    step: rng.random_range(0..1000),
                    ..Default::default()
                }
            } else {
                random_params(rng, Filters::Any)
            });
        }
        b
    }

    /// The same requests with dense drafts: each draft's distribution the softmax of its
    /// target row plus noise (some mass where the target has none), the token drawn from it.
    fn dense(mut self, rng: &mut StdRng, vocab: usize) -> Batch {
        self.probs.clear();
        for r in 0..self.offsets.len() - 1 {
            for j in self.offsets[r] as usize..self.offsets[r + 1] as usize {
                let row = &self.target[(j + r) * vocab..(j + r + 1) * vocab];
                let noisy: Vec<f64> = row.iter().map(|&x| x as f64 + 2.0 * normal(rng)).collect();
                let max = noisy.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = noisy.iter().map(|&x| (x - max).exp()).collect();
                let total: f64 = w.iter().sum();
                let q: Vec<f32> = w.iter().map(|&x| (x / total) as f32).collect();
                let mut u = rng.random::<f64>();
                self.tokens[j] = q
                    .iter()
                    .position(|&x| {
                        u -= x as f64;
                        u < 0.0 && x > 0.0
                    })
                    .unwrap_or_else(|| q.iter().rposition(|&x| x > 0.0).unwrap())
                    as u32;
                self.probs.extend(q);
            }
        }
        self
    }

    fn drafts(&self) -> Drafts<'_> {
        Drafts {
            offsets: &self.offsets,
            tokens: &self.tokens,
            probs: (!self.probs.is_empty()).then_some(self.probs.as_slice()),
        }
    }

    fn reference(
        &self,
        vocab: usize,
        processing: &Processing,
        opts: &VerifyOptions,
    ) -> Vec<VerifyOutput> {
        verify_batch(
            &self.target,
            vocab,
            &self.drafts(),
            &self.params,
            processing,
            opts,
        )
        .unwrap()
    }

    fn kernels<T: Logit>(
        &self,
        target: &[T],
        vocab: usize,
        processing: &Processing,
        opts: &VerifyOptions,
        threads: u32,
        schedule: Schedule,
    ) -> Vec<VerifyOutput> {
        verify_rows(
            target,
            vocab,
            &self.drafts(),
            &self.params,
            processing,
            opts,
            threads,
            schedule,
        )
        .unwrap()
    }
}

fn options(method: DrawMethod, numerics: Numerics) -> VerifyOptions {
    VerifyOptions { method, numerics }
}

/// The fast kernels against the f64 reference: the same decisions (accepted count, tokens,
/// statuses), logprobs within f32 rounding.
fn assert_same_decisions(kernel: &[VerifyOutput], reference: &[VerifyOutput], what: &str) {
    assert_eq!(kernel.len(), reference.len());
    for (r, (k, e)) in kernel.iter().zip(reference).enumerate() {
        assert_eq!(
            (k.status, k.accepted, &k.tokens),
            (e.status, e.accepted, &e.tokens),
            "{what}: request {r}"
        );
        for (a, b) in k.logprobs.iter().zip(&e.logprobs) {
            assert!(
                (a - b).abs() <= 2e-4 * (1.0 + b.abs()),
                "{what}: request {r}: logprob {a} vs {b}"
            );
        }
    }
}

#[test]
fn invariant_kernels_return_the_twins_bits() {
    let vocab = 300;
    let mut rng = rng(41);
    let batch = Batch::random(&mut rng, 24, vocab);
    let bf16_target: Vec<bf16> = batch.target.iter().map(|&x| bf16::from_f32(x)).collect();
    let bf16_batch = Batch {
        target: bf16_target.iter().map(|x| x.to_f32()).collect(),
        ..batch.clone()
    };
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = options(method, Numerics::Invariant);
        let twin = batch.reference(vocab, &Processing::NONE, &opts);
        assert!(twin.iter().any(|o| o.accepted > 0) && twin.iter().any(|o| o.accepted == 0));
        for (threads, schedule) in [
            (64, Schedule::Forward),
            (128, Schedule::Reverse),
            (256, Schedule::Random(5)),
        ] {
            let got = batch.kernels(
                &batch.target,
                vocab,
                &Processing::NONE,
                &opts,
                threads,
                schedule,
            );
            assert_eq!(got, twin, "f32 {method:?} {threads} threads {schedule:?}");
        }
        let twin = bf16_batch.reference(vocab, &Processing::NONE, &opts);
        let got = batch.kernels(
            &bf16_target,
            vocab,
            &Processing::NONE,
            &opts,
            128,
            Schedule::Forward,
        );
        assert_eq!(got, twin, "bf16 {method:?}");
    }
}

#[test]
fn fast_kernels_make_the_references_decisions() {
    let vocab = 300;
    let mut rng = rng(42);
    let batch = Batch::random(&mut rng, 24, vocab);
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = options(method, Numerics::Fast);
        let reference = batch.reference(vocab, &Processing::NONE, &opts);
        for (threads, schedule) in [(64, Schedule::Reverse), (256, Schedule::Random(9))] {
            let got = batch.kernels(
                &batch.target,
                vocab,
                &Processing::NONE,
                &opts,
                threads,
                schedule,
            );
            assert_same_decisions(
                &got,
                &reference,
                &format!("{method:?} {threads} {schedule:?}"),
            );
        }
    }
}

#[test]
fn processed_targets_verify_as_the_reference_processes_them() {
    let vocab = 200;
    let mut rng = rng(43);
    let batch = Batch::random(&mut rng, 12, vocab);
    let rows = batch.offsets.last().copied().unwrap() as usize + 12;
    // Every target row banned a token, biased two and penalised over a short history.
    let lists: Vec<RowProcessing> = (0..rows)
        .map(|_| RowProcessing {
            banned_tokens: vec![rng.random_range(0..vocab as u32)],
            logit_bias: vec![(rng.random_range(0..vocab as u32), 2.0)],
            prompt_tokens: (0..5).map(|_| rng.random_range(0..vocab as u32)).collect(),
            output_tokens: (0..5).map(|_| rng.random_range(0..vocab as u32)).collect(),
            penalties: Penalties {
                repetition: 1.2,
                frequency: 0.3,
                presence: 0.1,
            },
        })
        .collect();
    let buf = ProcessingBuf::from_rows(&lists, None);
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        let opts = options(DrawMethod::Gumbel, numerics);
        let reference = batch.reference(vocab, &buf.view(), &opts);
        let got = batch.kernels(
            &batch.target,
            vocab,
            &buf.view(),
            &opts,
            128,
            Schedule::Forward,
        );
        match numerics {
            Numerics::Invariant => assert_eq!(got, reference),
            Numerics::Fast => assert_same_decisions(&got, &reference, "processed"),
        }
    }
}

#[test]
fn bad_requests_get_their_status_and_the_others_are_unharmed() {
    let vocab = 100;
    let mut rng = rng(44);
    let good = Batch::random(&mut rng, 16, vocab);
    let opts = options(DrawMethod::Gumbel, Numerics::Invariant);
    let expected = good.reference(vocab, &Processing::NONE, &opts);
    let with_drafts: Vec<usize> = (0..16)
        .filter(|&r| good.offsets[r + 1] > good.offsets[r])
        .collect();
    assert!(with_drafts.len() >= 4);
    let mut bad = good.clone();
    let row_of = |r: usize, j: usize| (good.offsets[r] as usize + r + j) * vocab;
    let mut statuses = [RowStatus::Ok; 16];
    let r = with_drafts[0];
    let last = (good.offsets[r + 1] - good.offsets[r]) as usize;
    bad.target[row_of(r, last) + 7] = f32::NAN;
    statuses[r] = RowStatus::NonFiniteLogit;
    let r = with_drafts[1];
    let at = row_of(r, 0);
    bad.target[at..at + vocab].fill(f32::NEG_INFINITY);
    statuses[r] = RowStatus::NoFiniteLogit;
    let r = with_drafts[2];
    bad.tokens[good.offsets[r] as usize] = vocab as u32 + 5;
    statuses[r] = RowStatus::InvalidDraft;
    let r = with_drafts[3];
    bad.params[r].temperature = -1.0;
    statuses[r] = RowStatus::InvalidParams;
    let twin = bad.reference(vocab, &Processing::NONE, &opts);
    let got = bad.kernels(
        &bad.target,
        vocab,
        &Processing::NONE,
        &opts,
        64,
        Schedule::Random(3),
    );
    assert_eq!(got, twin);
    for r in 0..16 {
        if statuses[r] == RowStatus::Ok {
            assert_eq!(got[r], expected[r], "request {r} unharmed");
        } else {
            assert_eq!(got[r], VerifyOutput::failed(statuses[r]), "request {r}");
        }
    }
}

#[test]
fn a_request_alone_is_the_same_as_in_its_batch() {
    let vocab = 150;
    let mut rng = rng(45);
    let batch = Batch::random(&mut rng, 10, vocab);
    let opts = options(DrawMethod::Gumbel, Numerics::Invariant);
    let all = batch.kernels(
        &batch.target,
        vocab,
        &Processing::NONE,
        &opts,
        64,
        Schedule::Forward,
    );
    for (r, in_batch) in all.iter().enumerate() {
        let (a, b) = (batch.offsets[r] as usize, batch.offsets[r + 1] as usize);
        let alone = Batch {
            offsets: vec![0, (b - a) as u32],
            tokens: batch.tokens[a..b].to_vec(),
            target: batch.target[(a + r) * vocab..(b + r + 1) * vocab].to_vec(),
            params: vec![batch.params[r]],
            probs: Vec::new(),
        };
        let got = alone.kernels(
            &alone.target,
            vocab,
            &Processing::NONE,
            &opts,
            128,
            Schedule::Reverse,
        );
        assert_eq!(&got[0], in_batch, "request {r}");
    }
}

#[test]
fn dense_drafts_verify_as_the_twin_and_the_reference_do() {
    let vocab = 300;
    let mut rng = rng(46);
    let batch = Batch::random(&mut rng, 24, vocab).dense(&mut rng, vocab);
    for method in [DrawMethod::Gumbel, DrawMethod::InverseCdf] {
        let opts = options(method, Numerics::Invariant);
        let twin = batch.reference(vocab, &Processing::NONE, &opts);
        assert!(twin.iter().any(|o| o.accepted > 0) && twin.iter().any(|o| o.accepted == 0));
        for (threads, schedule) in [(64, Schedule::Forward), (256, Schedule::Random(7))] {
            let got = batch.kernels(
                &batch.target,
                vocab,
                &Processing::NONE,
                &opts,
                threads,
                schedule,
            );
            assert_eq!(got, twin, "invariant {method:?} {threads} {schedule:?}");
        }
        let opts = options(method, Numerics::Fast);
        let reference = batch.reference(vocab, &Processing::NONE, &opts);
        let got = batch.kernels(
            &batch.target,
            vocab,
            &Processing::NONE,
            &opts,
            128,
            Schedule::Reverse,
        );
        assert_same_decisions(&got, &reference, &format!("fast {method:?}"));
    }
}

#[test]
fn unusable_dense_drafts_fail_their_request_before_its_target_rows() {
    let vocab = 100;
    let mut rng = rng(47);
    let good = Batch::random(&mut rng, 12, vocab).dense(&mut rng, vocab);
    let opts = options(DrawMethod::Gumbel, Numerics::Invariant);
    let expected = good.reference(vocab, &Processing::NONE, &opts);
    let with_drafts: Vec<usize> = (0..12)
        .filter(|&r| good.offsets[r + 1] > good.offsets[r])
        .collect();
    assert!(with_drafts.len() >= 3);
    let mut bad = good.clone();
    let first_draft = |r: usize| good.offsets[r] as usize;
    // A negative entry; q(draft) = 0; a NaN entry on a request whose first target row is NaN
    // too (the drafts are checked first).
    let r0 = with_drafts[0];
    bad.probs[first_draft(r0) * vocab + 3] = -0.25;
    let r1 = with_drafts[1];
    let d = first_draft(r1);
    bad.probs[d * vocab + bad.tokens[d] as usize] = 0.0;
    let r2 = with_drafts[2];
    let last = good.offsets[r2 + 1] as usize - 1;
    bad.probs[last * vocab + 5] = f32::NAN;
    bad.target[(first_draft(r2) + r2) * vocab] = f32::NAN;
    let twin = bad.reference(vocab, &Processing::NONE, &opts);
    let got = bad.kernels(
        &bad.target,
        vocab,
        &Processing::NONE,
        &opts,
        64,
        Schedule::Reverse,
    );
    assert_eq!(got, twin);
    for r in 0..12 {
        if [r0, r1, r2].contains(&r) {
            assert_eq!(
                got[r],
                VerifyOutput::failed(RowStatus::InvalidDraft),
                "request {r}"
            );
        } else {
            assert_eq!(got[r], expected[r], "request {r} unharmed");
        }
    }
}
