//! Speculative verification on the CPU reference (`cpu::verify_batch`): the emitted tokens are
//! distributed exactly as sampling the target alone, position by position (chi-square at a fixed
//! seed, for dense drafts far from the target, point-mass drafts, filtered and processed targets,
//! both draw methods); the acceptance rate is `sum_x min(p, q)`; a rejected position emits the
//! residual; greedy requests follow the greedy tokens; `n = 0` is plain sampling; results do not
//! depend on the batch; bad requests are isolated and malformed batches are errors.

mod common;

use batchsample::cpu::{final_distribution, sample_batch, sample_row, verify_batch};
use batchsample::processing::{
    bitmask_words, process_row, Processing, ProcessingBuf, RowProcessing,
};
use batchsample::verify::{uniform_offsets, Drafts, VerifyOptions, VerifyOutput};
use batchsample::{DrawMethod, Numerics, RowStatus, SampleError, SampleOptions, SamplingParams};
use common::*;
use rand::rngs::StdRng;
use rand::Rng;

const VOCAB: usize = 24;
/// How much of each draft distribution is the target's own ([`proposals`]).
const SHARE: f64 = 0.5;

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let w: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|&x| (x / total) as f32).collect()
}

/// A token drawn from `probs` by the test's own generator (independent of Philox).
fn draw_from(rng: &mut StdRng, probs: &[f32]) -> u32 {
    let total: f64 = probs.iter().map(|&x| x as f64).sum();
    let mut u = rng.random::<f64>() * total;
    for (t, &x) in probs.iter().enumerate() {
        u -= x as f64;
        if u < 0.0 && x > 0.0 {
            return t as u32;
        }
    }
    probs.iter().rposition(|&x| x > 0.0).unwrap() as u32
}

/// One chain verified many times: `trials` requests of `n = targets.len() - 1` drafts, the same
/// target rows for each, request `k` at step `k * (n + 1)` so that no two share a uniform.
struct Chain {
    /// The `n + 1` target rows (processed already when `processing` is set; see `raw`).
    targets: Vec<Vec<f32>>,
    /// What `verify_batch` is given, when it differs from `targets` (processing on).
    raw: Option<(Vec<Vec<f32>>, RowProcessing, Vec<i32>)>,
    /// The distributions drafts are drawn from, one per draft.
    proposals: Vec<Vec<f32>>,
    /// Whether the verifier is given the proposals (dense drafts) or not (point masses).
    dense: bool,
    params: SamplingParams,
    method: DrawMethod,
    numerics: Numerics,
}

struct Trials {
    drafts: Vec<Vec<u32>>,
    outputs: Vec<VerifyOutput>,
}

impl Chain {
    /// A chain over `targets` whose drafts come from [`proposals`] with `share` of the target.
    fn new(
        rng: &mut StdRng,
        targets: Vec<Vec<f32>>,
        params: SamplingParams,
        dense: bool,
        method: DrawMethod,
        share: f64,
    ) -> Chain {
        Chain {
            proposals: proposals(rng, &targets, &params, share),
            targets,
            raw: None,
            dense,
            params,
            method,
            numerics: Numerics::Fast,
        }
    }

    fn n(&self) -> usize {
        self.proposals.len()
    }

    /// `p_j`, dense, from the plainly written stages (not the reference's own code).
    fn target_probs(&self, j: usize) -> Vec<f64> {
        final_distribution(&self.targets[j], &self.params).expect("valid target row")
    }

    /// The probability of accepting draft `j` (drawn from its proposal): `sum_x min(p, q)` for a
    /// dense draft, `sum_x g(x) p(x)` for a point mass drawn from `g`.
    fn acceptance(&self, j: usize) -> f64 {
        let p = self.target_probs(j);
        let g = &self.proposals[j];
        p.iter()
            .zip(g)
            .map(|(&p, &g)| {
                if self.dense {
                    p.min(g as f64)
                } else {
                    p * g as f64
                }
            })
            .sum()
    }

    /// Enough trials that every position reaches the chi-square test's draw count.
    fn trials_needed(&self) -> usize {
        let mut reach = 1.0;
        let mut most = 0.0f64;
        for j in 0..=self.n() {
            most = most.max(draws_needed(&self.target_probs(j)) as f64 / reach);
            if j < self.n() {
                reach *= self.acceptance(j);
            }
        }
        ((most * 1.15) as usize).min(1_500_000)
    }

    fn run(&self, trials: usize, seed: u64) -> Trials {
        let n = self.n();
        let mut rng = rng(seed);
        let drafts: Vec<Vec<u32>> = (0..trials)
            .map(|_| {
                self.proposals
                    .iter()
                    .map(|g| draw_from(&mut rng, g))
                    .collect()
            })
            .collect();
        let tokens: Vec<u32> = drafts.iter().flatten().copied().collect();
        let offsets = uniform_offsets(trials, n);
        let probs: Vec<f32> = if self.dense {
            (0..trials).flat_map(|_| self.proposals.concat()).collect()
        } else {
            Vec::new()
        };
        let rows = match &self.raw {
            Some((raw, _, _)) => raw,
            None => &self.targets,
        };
        let one_request: Vec<f32> = rows.concat();
        let target: Vec<f32> = (0..trials).flat_map(|_| one_request.clone()).collect();
        let params: Vec<SamplingParams> = (0..trials)
            .map(|k| self.params.at_step((k * (n + 1)) as u64))
            .collect();
        let buf = self.raw.as_ref().map(|(_, lists, mask)| {
            let rows = trials * (n + 1);
            ProcessingBuf::from_rows(
                &vec![lists.clone(); rows],
                Some((0..rows).flat_map(|_| mask.clone()).collect()),
            )
        });
        let processing = buf.as_ref().map_or(Processing::NONE, |b| b.view());
        let d = Drafts {
            offsets: &offsets,
            tokens: &tokens,
            probs: self.dense.then_some(probs.as_slice()),
        };
        let opts = VerifyOptions {
            method: self.method,
            numerics: self.numerics,
        };
        let outputs = verify_batch(&target, VOCAB, &d, &params, &processing, &opts).unwrap();
        Trials { drafts, outputs }
    }

    /// The emitted token at each position follows `p_j` among the trials that reach it; the
    /// acceptance rate at each position is `acceptance(j)`; every logprob is the right one.
    fn check(&self, name: &str, seed: u64) {
        let trials = self.trials_needed();
        let t = self.run(trials, seed);
        let n = self.n();
        for j in 0..=n {
            let p = self.target_probs(j);
            let mut counts = vec![0u64; VOCAB];
            for o in &t.outputs {
                assert_eq!(o.status, RowStatus::Ok, "{name}");
                if let Some(&tok) = o.tokens.get(j) {
                    counts[tok as usize] += 1;
                }
            }
            let fit = chi_square(&counts, &p);
            assert!(
                fit.draws >= draws_needed(&p),
                "{name}: position {j} reached {} times, need {}",
                fit.draws,
                draws_needed(&p)
            );
            assert!(fit.fits(ALPHA), "{name}: position {j}: {fit:?}");
        }
        for j in 0..n {
            let reached: Vec<&VerifyOutput> =
                t.outputs.iter().filter(|o| o.accepted >= j).collect();
            let accepted = reached.iter().filter(|o| o.accepted > j).count() as f64;
            let expected = self.acceptance(j);
            let m = reached.len() as f64;
            let sigma = (expected * (1.0 - expected) / m).sqrt();
            let rate = accepted / m;
            assert!(
                (rate - expected).abs() <= 5.0 * sigma,
                "{name}: acceptance at {j}: {rate} vs {expected} (sigma {sigma}, {m} trials)"
            );
        }
        for (o, drafts) in t.outputs.iter().zip(&t.drafts) {
            self.check_logprobs(name, o, drafts);
        }
    }

    /// Accepted drafts and the bonus token have their position's logprob, a resampled token the
    /// residual's.
    fn check_logprobs(&self, name: &str, o: &VerifyOutput, drafts: &[u32]) {
        assert_eq!(o.tokens.len(), o.accepted + 1, "{name}");
        assert_eq!(o.logprobs.len(), o.tokens.len(), "{name}");
        for (j, (&tok, &lp)) in o.tokens.iter().zip(&o.logprobs).enumerate() {
            let p = self.target_probs(j);
            let expected = if j < o.accepted || j == self.n() {
                p[tok as usize]
            } else {
                let d = drafts[j] as usize;
                let residual: Vec<f64> = if self.dense {
                    let q = &self.proposals[j];
                    (0..VOCAB).map(|x| (p[x] - q[x] as f64).max(0.0)).collect()
                } else {
                    (0..VOCAB)
                        .map(|x| if x == d { 0.0 } else { p[x] })
                        .collect()
                };
                residual[tok as usize] / residual.iter().sum::<f64>()
            };
            // The invariant numerics' logprobs are f32 from truncated fixed-point masses.
            let tolerance = match self.numerics {
                Numerics::Fast => 1e-9,
                Numerics::Invariant => 1e-4,
            };
            assert!(
                (lp - expected.ln()).abs() < tolerance,
                "{name}: position {j} token {tok}: logprob {lp}, expected {}",
                expected.ln()
            );
        }
    }
}

fn random_rows(rng: &mut StdRng, count: usize, spread: f64) -> Vec<Vec<f32>> {
    (0..count).map(|_| normal_row(rng, VOCAB, spread)).collect()
}

/// Draft distributions: `share` of each one the target's own distribution (so that chains get
/// past their first draft often enough to test the later positions), the rest the softmax of an
/// unrelated row — far from the target, and putting mass where the target has none.
fn proposals(
    rng: &mut StdRng,
    targets: &[Vec<f32>],
    params: &SamplingParams,
    share: f64,
) -> Vec<Vec<f32>> {
    targets[..targets.len() - 1]
        .iter()
        .map(|row| {
            let p = final_distribution(row, params).unwrap();
            let far = softmax(&normal_row(rng, VOCAB, 1.5));
            p.iter()
                .zip(far)
                .map(|(&p, f)| (share * p + (1.0 - share) * f as f64) as f32)
                .collect()
        })
        .collect()
}

fn temperature(t: f32) -> SamplingParams {
    SamplingParams {
        temperature: t,
        seed: 0x5eed_cafe,
        ..Default::default()
    }
}

#[test]
fn dense_drafts_far_from_the_target_emit_the_target_distribution() {
    let cases = [
        (DrawMethod::Gumbel, Numerics::Fast),
        (DrawMethod::InverseCdf, Numerics::Fast),
        (DrawMethod::Gumbel, Numerics::Invariant),
        (DrawMethod::InverseCdf, Numerics::Invariant),
    ];
    for (i, (method, numerics)) in cases.into_iter().enumerate() {
        let mut rng = rng(100 + i as u64);
        let targets = random_rows(&mut rng, 3, 1.2);
        let mut chain = Chain::new(&mut rng, targets, temperature(0.9), true, method, SHARE);
        chain.numerics = numerics;
        chain.check(&format!("dense {method:?} {numerics:?}"), 7 + i as u64);
    }
}

#[test]
fn point_mass_drafts_emit_the_target_distribution() {
    let cases = [
        (DrawMethod::Gumbel, Numerics::Fast),
        (DrawMethod::InverseCdf, Numerics::Fast),
        (DrawMethod::Gumbel, Numerics::Invariant),
        (DrawMethod::InverseCdf, Numerics::Invariant),
    ];
    for (i, (method, numerics)) in cases.into_iter().enumerate() {
        let mut rng = rng(200 + i as u64);
        let targets = random_rows(&mut rng, 3, 2.5);
        let mut chain = Chain::new(&mut rng, targets, temperature(0.8), false, method, SHARE);
        chain.numerics = numerics;
        chain.check(
            &format!("point mass {method:?} {numerics:?}"),
            17 + i as u64,
        );
    }
}

#[test]
fn filtered_targets_emit_the_filtered_distribution() {
    let filters = [
        (5, 1.0, 0.0),
        (0, 0.7, 0.0),
        (0, 1.0, 0.15),
        (8, 0.85, 0.05),
    ];
    for (i, &(top_k, top_p, min_p)) in filters.iter().enumerate() {
        for dense in [true, false] {
            let mut rng = rng(300 + i as u64);
            let chain = {
                let targets = random_rows(&mut rng, 3, 1.5);
                Chain::new(
                    &mut rng,
                    targets,
                    SamplingParams {
                        top_k,
                        top_p,
                        min_p,
                        ..temperature(0.8)
                    },
                    dense,
                    DrawMethod::Gumbel,
                    SHARE,
                )
            };
            chain.check(
                &format!("filters {top_k}/{top_p}/{min_p} dense {dense}"),
                27 + i as u64,
            );
        }
    }
}

#[test]
fn processed_targets_emit_the_processed_distribution() {
    let mut rng = rng(400);
    let raw = random_rows(&mut rng, 3, 1.5);
    // A mask dropping every third token, a ban, a bias and penalties: the verifier processes
    // each target row; the expected p_j come from the rows processed separately.
    let lists = RowProcessing {
        banned_tokens: vec![4],
        logit_bias: vec![(5, 1.5), (6, -2.0)],
        prompt_tokens: vec![1, 2, 7],
        output_tokens: vec![7, 7, 8],
        penalties: batchsample::processing::Penalties {
            repetition: 1.2,
            frequency: 0.3,
            presence: 0.2,
        },
    };
    let mut mask = vec![-1i32; bitmask_words(VOCAB)];
    for t in (0..VOCAB).step_by(3) {
        mask[t / 32] &= !(1i32 << (t % 32));
    }
    let buf = ProcessingBuf::from_rows(std::slice::from_ref(&lists), Some(mask.clone()));
    let targets: Vec<Vec<f32>> = raw
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            process_row(r, &buf.view().row(0, VOCAB), &mut out);
            out
        })
        .collect();
    for dense in [true, false] {
        let mut chain = Chain::new(
            &mut rng,
            targets.clone(),
            temperature(0.7),
            dense,
            DrawMethod::Gumbel,
            SHARE,
        );
        chain.raw = Some((raw.clone(), lists.clone(), mask.clone()));
        chain.check(&format!("processed dense {dense}"), 37);
    }
}

#[test]
fn a_rejected_position_emits_the_residual() {
    // Among the trials rejected at the first draft, the emitted token follows
    // max(0, p - q) renormalised (dense) — the correction that makes the chain exact.
    let mut rng = rng(500);
    let targets = random_rows(&mut rng, 2, 1.0);
    // A small share of the target: many rejections.
    let chain = Chain::new(
        &mut rng,
        targets,
        temperature(1.0),
        true,
        DrawMethod::Gumbel,
        0.2,
    );
    let t = chain.run(120_000, 57);
    let p = chain.target_probs(0);
    let q = &chain.proposals[0];
    let residual: Vec<f64> = (0..VOCAB).map(|x| (p[x] - q[x] as f64).max(0.0)).collect();
    let mut counts = vec![0u64; VOCAB];
    for o in t.outputs.iter().filter(|o| o.accepted == 0) {
        counts[o.tokens[0] as usize] += 1;
    }
    let fit = chi_square(&counts, &residual);
    assert!(fit.draws >= draws_needed(&residual), "{fit:?}");
    assert!(fit.fits(ALPHA), "{fit:?}");
}

#[test]
fn a_rejected_point_mass_emits_the_plain_draw_when_it_differs_from_the_draft() {
    // A point mass's residual race is the plain draw's race without the draft: wherever the
    // plain Gumbel draw at that step is not the draft, verification emits exactly that token.
    let mut rng = rng(600);
    let chain = {
        let targets = random_rows(&mut rng, 2, 1.0);
        Chain::new(
            &mut rng,
            targets,
            temperature(0.7),
            false,
            DrawMethod::Gumbel,
            SHARE,
        )
    };
    let t = chain.run(4000, 67);
    let opts = SampleOptions::default();
    let mut compared = 0;
    for (k, (o, drafts)) in t.outputs.iter().zip(&t.drafts).enumerate() {
        let plain = sample_row(
            &chain.targets[0],
            &chain.params.at_step(2 * k as u64),
            &opts,
        );
        let plain = plain.token.unwrap();
        if o.accepted == 0 && plain != drafts[0] {
            assert_eq!(o.tokens[0], plain, "trial {k}");
            compared += 1;
        }
        if plain == drafts[0] {
            // The plain draw is the draft: rejecting it would need u >= p(d); allowed, but
            // then the emitted token is another one.
            assert!(o.accepted == 1 || o.tokens[0] != drafts[0]);
        }
    }
    assert!(compared > 1000, "{compared}");
}

#[test]
fn greedy_requests_follow_the_greedy_tokens() {
    let mut rng = rng(700);
    let opts = SampleOptions::default();
    for case in 0..200 {
        let n = case % 5;
        let rows = random_rows(&mut rng, n + 1, 2.0);
        let params = SamplingParams {
            temperature: 0.0,
            ..temperature(0.0)
        };
        let greedy: Vec<u32> = rows
            .iter()
            .map(|r| sample_row(r, &params, &opts).token.unwrap())
            .collect();
        // Drafts match the greedy tokens for a random prefix, then differ.
        let matching = rng.random_range(0..=n);
        let drafts: Vec<u32> = (0..n)
            .map(|j| {
                if j < matching {
                    greedy[j]
                } else {
                    (greedy[j] + 1 + rng.random_range(0..VOCAB as u32 - 1)) % VOCAB as u32
                }
            })
            .collect();
        let offsets = uniform_offsets(1, n);
        let d = Drafts {
            offsets: &offsets,
            tokens: &drafts,
            probs: None,
        };
        let out = verify_batch(
            &rows.concat(),
            VOCAB,
            &d,
            &[params],
            &Processing::NONE,
            &VerifyOptions::default(),
        )
        .unwrap()
        .remove(0);
        assert_eq!(out.accepted, matching, "case {case}");
        assert_eq!(out.tokens, greedy[..=matching].to_vec(), "case {case}");
        assert!(out.logprobs.iter().all(|&l| l == 0.0));
    }
}

#[test]
fn no_drafts_is_plain_sampling() {
    let mut rng = rng(800);
    for case in 0..400 {
        let row = lm_like_row(&mut rng, 300);
        let params = random_params(&mut rng, Filters::Any);
        let method = [DrawMethod::Gumbel, DrawMethod::InverseCdf][case % 2];
        let numerics = [Numerics::Fast, Numerics::Invariant][(case / 2) % 2];
        let opts = SampleOptions {
            method,
            numerics,
            top_n: 0,
        };
        let plain = sample_batch(&row, 300, &[params], &opts).unwrap().remove(0);
        let offsets = [0u32, 0];
        let d = Drafts {
            offsets: &offsets,
            tokens: &[],
            probs: None,
        };
        let opts = VerifyOptions { method, numerics };
        let out = verify_batch(&row, 300, &d, &[params], &Processing::NONE, &opts)
            .unwrap()
            .remove(0);
        assert_eq!(out.accepted, 0);
        assert_eq!(out.tokens, vec![plain.token.unwrap()], "case {case}");
        assert_eq!(
            out.logprobs[0].to_bits(),
            plain.logprob.to_bits(),
            "case {case}"
        );
    }
}

/// A random batch: requests of 0-4 drafts, dense or point mass, varied parameters.
#[derive(Clone)]
struct Batch {
    offsets: Vec<u32>,
    tokens: Vec<u32>,
    probs: Vec<f32>,
    target: Vec<f32>,
    params: Vec<SamplingParams>,
}

impl Batch {
    fn random(rng: &mut StdRng, batch: usize, vocab: usize) -> Batch {
        let counts: Vec<usize> = (0..batch).map(|_| rng.random_range(0..=4)).collect();
        let mut offsets = vec![0u32];
        let mut tokens = Vec::new();
        let mut probs = Vec::new();
        let mut target = Vec::new();
        let mut params = Vec::new();
        for &n in &counts {
            offsets.push(offsets.last().unwrap() + n as u32);
            let rows: Vec<Vec<f32>> = (0..=n).map(|_| normal_row(rng, vocab, 2.0)).collect();
            for row in &rows[..n] {
                // A draft model that roughly agrees with the target: its logits plus noise.
                let noisy: Vec<f32> = row.iter().map(|&x| x + normal(rng) as f32).collect();
                let q = softmax(&noisy);
                tokens.push(draw_from(rng, &q));
                probs.extend(q);
            }
            target.extend(rows.concat());
            params.push(if rng.random_bool(0.2) {
                temperature(0.0)
            } else {
                random_params(rng, Filters::Any)
            });
        }
        Batch {
            offsets,
            tokens,
            probs,
            target,
            params,
        }
    }

    fn drafts(&self, dense: bool) -> Drafts<'_> {
        Drafts {
            offsets: &self.offsets,
            tokens: &self.tokens,
            probs: dense.then_some(self.probs.as_slice()),
        }
    }

    /// Request `r` as a batch of its own.
    fn request(&self, r: usize, vocab: usize) -> Batch {
        let (a, b) = (self.offsets[r] as usize, self.offsets[r + 1] as usize);
        Batch {
            offsets: vec![0, (b - a) as u32],
            tokens: self.tokens[a..b].to_vec(),
            probs: self.probs[a * vocab..b * vocab].to_vec(),
            target: self.target[(a + r) * vocab..(b + r + 1) * vocab].to_vec(),
            params: vec![self.params[r]],
        }
    }

    fn verify(&self, vocab: usize, dense: bool) -> Vec<VerifyOutput> {
        self.verify_in(vocab, dense, Numerics::Fast)
    }

    fn verify_in(&self, vocab: usize, dense: bool, numerics: Numerics) -> Vec<VerifyOutput> {
        let opts = VerifyOptions {
            numerics,
            ..Default::default()
        };
        verify_batch(
            &self.target,
            vocab,
            &self.drafts(dense),
            &self.params,
            &Processing::NONE,
            &opts,
        )
        .unwrap()
    }
}

#[test]
fn results_depend_only_on_the_request() {
    let vocab = 64;
    let mut rng = rng(900);
    let batch = Batch::random(&mut rng, 40, vocab);
    for numerics in [Numerics::Fast, Numerics::Invariant] {
        for dense in [true, false] {
            let all = batch.verify_in(vocab, dense, numerics);
            let again = batch.verify_in(vocab, dense, numerics);
            assert_eq!(all, again, "same seed and step, same result");
            assert!(all.iter().any(|o| o.accepted > 0) && all.iter().any(|o| o.accepted == 0));
            for (r, out) in all.iter().enumerate() {
                let alone = batch.request(r, vocab).verify_in(vocab, dense, numerics);
                assert_eq!(out, &alone[0], "request {r} alone ({numerics:?})");
            }
        }
    }
}

#[test]
fn the_invariant_numerics_make_the_same_decisions_but_at_rounding_boundaries() {
    // The same semantics in other arithmetic: the same accepted counts and tokens except where
    // a uniform falls within rounding of a boundary (none in this batch), logprobs within f32.
    let vocab = 64;
    let mut rng = rng(950);
    let batch = Batch::random(&mut rng, 300, vocab);
    for dense in [true, false] {
        let fast = batch.verify_in(vocab, dense, Numerics::Fast);
        let invariant = batch.verify_in(vocab, dense, Numerics::Invariant);
        for (r, (f, i)) in fast.iter().zip(&invariant).enumerate() {
            assert_eq!(
                (f.accepted, &f.tokens),
                (i.accepted, &i.tokens),
                "request {r}"
            );
            for (a, b) in f.logprobs.iter().zip(&i.logprobs) {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                    "request {r}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn bad_requests_get_their_status_and_the_others_are_unharmed() {
    let vocab = 64;
    let mut rng = rng(1000);
    let good = Batch::random(&mut rng, 12, vocab);
    let expected = good.verify(vocab, true);
    // Requests with at least one draft, so every kind of damage has a place to go.
    let with_drafts: Vec<usize> = (0..12)
        .filter(|&r| good.offsets[r + 1] > good.offsets[r])
        .collect();
    assert!(with_drafts.len() >= 6);
    let mut bad = good.clone();
    let row_of = |r: usize, j: usize| (good.offsets[r] as usize + r + j) * vocab;
    let last = |r: usize| (good.offsets[r + 1] - good.offsets[r]) as usize;
    let mut statuses = [RowStatus::Ok; 12];
    // A NaN at the bonus position (reached or not, the status is the same).
    let r = with_drafts[0];
    bad.target[row_of(r, last(r)) + 3] = f32::NAN;
    statuses[r] = RowStatus::NonFiniteLogit;
    // +inf at the first position.
    let r = with_drafts[1];
    bad.target[row_of(r, 0)] = f32::INFINITY;
    statuses[r] = RowStatus::NonFiniteLogit;
    // A position with no finite logit.
    let r = with_drafts[2];
    let at = row_of(r, 0);
    bad.target[at..at + vocab].fill(f32::NEG_INFINITY);
    statuses[r] = RowStatus::NoFiniteLogit;
    // A draft token past the vocabulary.
    let r = with_drafts[3];
    bad.tokens[good.offsets[r] as usize] = vocab as u32;
    statuses[r] = RowStatus::InvalidDraft;
    // A draft distribution with a negative entry, and one with q(d) = 0.
    let r = with_drafts[4];
    bad.probs[good.offsets[r] as usize * vocab + 1] = -0.5;
    statuses[r] = RowStatus::InvalidDraft;
    let r = with_drafts[5];
    let d = good.offsets[r] as usize;
    bad.probs[d * vocab + bad.tokens[d] as usize] = 0.0;
    statuses[r] = RowStatus::InvalidDraft;
    // Invalid parameters on a request with no drafts, or the last one.
    let r = (0..12).find(|r| !with_drafts[..6].contains(r)).unwrap();
    bad.params[r].top_p = 1.5;
    statuses[r] = RowStatus::InvalidParams;

    let out = bad.verify(vocab, true);
    for r in 0..12 {
        if statuses[r] == RowStatus::Ok {
            assert_eq!(out[r], expected[r], "request {r} unharmed");
        } else {
            assert_eq!(out[r], VerifyOutput::failed(statuses[r]), "request {r}");
        }
    }
    // Point-mass drafts: only the token range matters of the draft checks.
    let out = bad.verify(vocab, false);
    assert_eq!(out[with_drafts[3]].status, RowStatus::InvalidDraft);
    assert_eq!(out[with_drafts[4]].status, RowStatus::Ok);
}

#[test]
fn malformed_batches_are_errors() {
    let vocab = 8;
    let target = vec![0.0f32; 5 * vocab];
    let tokens = [1u32, 2, 3];
    let probs = vec![0.125f32; 3 * vocab];
    let run =
        |offsets: &[u32], target: &[f32], probs: Option<&[f32]>, params: &[SamplingParams]| {
            let d = Drafts {
                offsets,
                tokens: &tokens,
                probs,
            };
            verify_batch(
                target,
                vocab,
                &d,
                params,
                &Processing::NONE,
                &VerifyOptions::default(),
            )
        };
    let one = [SamplingParams::default()];
    assert!(run(&[0, 1, 3], &target, Some(&probs), &one).is_ok());
    let shape = |r: batchsample::Result<Vec<VerifyOutput>>| matches!(r, Err(SampleError::Shape(_)));
    assert!(shape(run(&[], &target, None, &one)));
    assert!(shape(run(&[1, 1, 3], &target, None, &one)));
    assert!(shape(run(&[0, 2, 1], &target, None, &one)));
    assert!(
        shape(run(&[0, 1, 2], &target, None, &one)),
        "offsets must end at the token count"
    );
    assert!(shape(run(&[0, 1, 3], &target[vocab..], None, &one)));
    assert!(shape(run(&[0, 1, 3], &target, Some(&probs[1..]), &one)));
    let three = [SamplingParams::default(); 3];
    assert!(shape(run(&[0, 1, 3], &target, None, &three)));
}

#[test]
fn padded_tokens_fill_to_n_max_plus_one() {
    let out = VerifyOutput {
        accepted: 1,
        tokens: vec![5, 9],
        logprobs: vec![-0.1, -0.2],
        status: RowStatus::Ok,
    };
    assert_eq!(out.padded_tokens(3), vec![5, 9, -1, -1]);
    assert_eq!(
        VerifyOutput::failed(RowStatus::InvalidDraft).padded_tokens(1),
        vec![-1, -1]
    );
}
