use super::{launch, HostLaunch, HostSimtError, Launch, Schedule};
use crate::cpu::{batch_size, RowOutput, SampleOptions};
use crate::dtype::Logit;
use crate::gpu::args::{
    ParamFields as ParamFieldPtrs, ProcessingArgs, RowOutputs as RowOutputPtrs, SampleArgs,
    TokenListArgs, VerifyArgs,
};
use crate::gpu::launch::{SamplerKernel, MAX_SPLITS, SAMPLER_MAX_THREADS, SPLIT_PARTIAL_WORDS};
use crate::gpu::table::{dtype_column, KernelKey};
use crate::gpu::{decode_rows, MAX_TOP_N};
use crate::params::{DrawMethod, Numerics, RowStatus, SamplingParams};
use crate::processing::{bitmask_words, Processing, TokenLists};
use crate::verify::{Drafts, VerifyOptions, VerifyOutput};
use std::ffi::c_int;

type Launcher = unsafe extern "C" fn(*const HostLaunch, *const SampleArgs) -> c_int;
// `host_launch_<family>_<dtype>` for every family of kernels/sampler_table.cuh, and
// `LAUNCHERS[family][dtype]`.
include!(concat!(env!("OUT_DIR"), "/host_simt_entries.rs"));

extern "C" {
    static host_simt_collect_fallbacks: u64;
}

/// Rows that the one-read top-k collection (kernels/collect.cuh) has handed to the two-read
/// path since the process started, over every launch (launches run one at a time).
pub fn collect_fallbacks() -> u64 {
    // SAFETY: a plain integer that only kernel launches write, under the shim's launch lock;
    // a read racing a launch on another thread sees an old or a new count, never a torn one
    // on x86-64 and aarch64.
    unsafe { std::ptr::read_volatile(std::ptr::addr_of!(host_simt_collect_fallbacks)) }
}

/// A row's parameters as the kernels take them: packed rows (one, or one per row), or one
/// optional array per field with the scalars' values for the missing ones.
#[derive(Clone, Copy, Debug)]
pub enum ShimParams<'a> {
    Packed(&'a [SamplingParams]),
    Fields {
        temperature: Option<&'a [f32]>,
        top_k: Option<&'a [u32]>,
        top_p: Option<&'a [f32]>,
        min_p: Option<&'a [f32]>,
        seed: Option<&'a [u64]>,
        step: Option<&'a [u64]>,
        scalars: SamplingParams,
    },
}

/// One shim launch of any entry point: `batch` rows of `vocab` logits `row_stride` apart,
/// the top-n pair `top_stride` slots a row, on a `(splits, batch)` grid when the key splits.
#[derive(Clone, Copy, Debug)]
pub struct ShimLaunch<'a, T> {
    pub key: KernelKey,
    pub logits: &'a [T],
    pub batch: usize,
    pub vocab: usize,
    pub row_stride: usize,
    pub params: ShimParams<'a>,
    pub top_stride: usize,
    pub threads: u32,
    pub splits: u32,
    pub schedule: Schedule,
    /// Logits processing ([`Processing::NONE`]: none); the launch sizes the workspace.
    pub processing: Processing<'a>,
    /// A speculative-verification launch: `batch` is the target rows, `params` one per
    /// request (or one for all).
    pub verify: Option<ShimVerify<'a>>,
    /// A scored launch (raw logprobs' second, `SampleArgs::scored_tokens`): the `[batch]`
    /// tokens an earlier launch wrote, which the token output starts as. A row with a
    /// negative token must come back untouched but for an emptied top-n (checked), and
    /// decodes as [`RowStatus::InvalidParams`]: the earlier launch's row is the caller's.
    pub scored: Option<&'a [i32]>,
}

/// The drafts of a verification launch and the request outputs' row length.
#[derive(Clone, Copy, Debug)]
pub struct ShimVerify<'a> {
    pub offsets: &'a [u32],
    pub drafts: &'a [u32],
    /// `[drafts, vocab]` draft distributions, or none: point masses.
    pub probs: Option<&'a [f32]>,
    /// At least `n_max + 1`.
    pub stride: usize,
}

/// What a shim launch wrote: the decoded rows, the raw top-n buffers (`[batch, top_stride]`,
/// so a test sees the slots past `top_n` untouched) and the split arrival counters after the
/// launch (the kernels must leave them at 0).
pub struct ShimResult {
    pub rows: Vec<RowOutput>,
    pub top_tokens: Vec<i32>,
    pub arrivals: Vec<u32>,
    /// The processing workspace's touched bitmap after the launch (the kernels must leave it
    /// all zero).
    pub touched: Vec<u32>,
    /// A verification launch's request results (checked: padded with -1 and NaN past the
    /// emitted tokens, the ticket counters left at 0).
    pub verify: Option<Vec<VerifyOutput>>,
}

/// The kernels' processing arguments for `processing` (host addresses), with the workspace
/// in `touched` (`[batch, ceil(vocab / 32)]`, zeroed) and `table` (`[batch, capacity]`
/// 16-byte slots as four words each).
fn processing_args(
    processing: &Processing,
    batch: usize,
    vocab: usize,
    touched: &mut [u32],
    table: &mut [u32],
    capacity: usize,
) -> ProcessingArgs {
    fn list(l: &TokenLists) -> TokenListArgs {
        TokenListArgs {
            offsets: if l.offsets.is_empty() {
                0
            } else {
                l.offsets.as_ptr() as u64
            },
            tokens: l.tokens.as_ptr() as u64,
            len: l.tokens.len() as u32,
            reserved: 0,
        }
    }
    let bias = TokenLists {
        offsets: processing.bias.offsets,
        tokens: processing.bias.tokens,
    };
    ProcessingArgs {
        bitmask: processing.bitmask.map_or(0, |m| m.as_ptr() as u64),
        bitmask_words: bitmask_words(vocab) as u32,
        penalties_stride: u32::from(processing.penalties.len() > 1 || batch == 1),
        penalties: if processing.penalties.is_empty() {
            0
        } else {
            processing.penalties.as_ptr() as u64
        },
        banned: list(&processing.banned),
        bias: list(&bias),
        bias_values: processing.bias.biases.as_ptr() as u64,
        prompt: list(&processing.prompt),
        output: list(&processing.output),
        touched: touched.as_mut_ptr() as u64,
        table: table.as_mut_ptr() as u64,
        table_capacity: capacity as u32,
        reserved: 0,
    }
}

/// The key of a dense launch of `kernel` for `opts` and `T`.
fn key_of<T: Logit>(kernel: SamplerKernel, opts: &SampleOptions, split: bool) -> KernelKey {
    KernelKey {
        kernel,
        numerics: opts.numerics,
        draw: opts.method,
        dtype: T::DTYPE,
        split,
    }
}

/// Verifies `drafts` against `target` (`[drafts.target_rows(), vocab]`) with the
/// general kernels of `opts.numerics` (`threads` per row block, under `schedule`): the
/// kernels' speculative verification, one row block per target row.
#[allow(clippy::too_many_arguments)]
pub fn verify_rows<T: Logit>(
    target: &[T],
    vocab: usize,
    drafts: &Drafts,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &VerifyOptions,
    threads: u32,
    schedule: Schedule,
) -> Result<Vec<VerifyOutput>, HostSimtError> {
    let sample_opts = SampleOptions {
        method: opts.method,
        numerics: opts.numerics,
        top_n: 0,
    };
    let launch_ = ShimLaunch {
        key: key_of::<T>(SamplerKernel::General, &sample_opts, false),
        logits: target,
        batch: drafts.target_rows(),
        vocab,
        row_stride: vocab,
        params: ShimParams::Packed(params),
        top_stride: 0,
        threads,
        splits: 1,
        schedule,
        processing: *processing,
        verify: Some(ShimVerify {
            offsets: drafts.offsets,
            drafts: drafts.tokens,
            probs: drafts.probs,
            stride: drafts.max_count() + 1,
        }),
        scored: None,
    };
    Ok(run(&launch_, &sample_opts)?
        .verify
        .expect("a verification launch"))
}

/// A dense launch: `[batch, vocab]` logits, packed params, top-n stride `top_n`.
#[allow(clippy::too_many_arguments)]
fn dense<T: Logit>(
    key: KernelKey,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    splits: u32,
    schedule: Schedule,
) -> Result<ShimResult, HostSimtError> {
    let batch = batch_size(logits.len(), vocab).expect("vocab divides the logits");
    run(
        &ShimLaunch {
            key,
            logits,
            batch,
            vocab,
            row_stride: vocab,
            params: ShimParams::Packed(params),
            top_stride: opts.top_n,
            threads,
            splits,
            schedule,
            processing: Processing::NONE,
            verify: None,
            scored: None,
        },
        opts,
    )
}

/// Runs `sample_rows_{dtype}` (or `sample_rows_invariant_{dtype}` for the invariant
/// numerics) over a host batch with `threads` per row block (a power of two in
/// [64, SAMPLER_MAX_THREADS]) under `schedule`, and decodes the outputs. Outputs start
/// poisoned so an unwritten slot shows.
pub fn sample_rows<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> Result<Vec<RowOutput>, HostSimtError> {
    let key = key_of::<T>(SamplerKernel::General, opts, false);
    Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
}

/// [`sample_rows`] through the unfiltered kernels of `opts.method` (kernels/unfiltered.cuh):
/// `sample_rows_unfiltered_{dtype}` for the Gumbel draw, `sample_rows_unfiltered_cdf_{dtype}`
/// for the inverse CDF. They ignore `opts.numerics` (they have the fast numerics only).
pub fn sample_rows_unfiltered<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> Result<Vec<RowOutput>, HostSimtError> {
    let key = key_of::<T>(SamplerKernel::Unfiltered, opts, false);
    Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
}

/// [`sample_rows`] through the collected kernels (`sample_rows_collected_{dtype}`,
/// kernels/collected.cuh): greedy rows and Gumbel rows with a small top-k. They have the
/// fast numerics and the Gumbel draw only; the key asks for those whatever `opts` says.
pub fn sample_rows_collected<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> Result<Vec<RowOutput>, HostSimtError> {
    let key = KernelKey {
        numerics: Numerics::Fast,
        draw: DrawMethod::Gumbel,
        ..key_of::<T>(SamplerKernel::Collected, opts, false)
    };
    Ok(dense(key, logits, vocab, params, opts, threads, 1, schedule)?.rows)
}

/// Runs `sample_rows_split_{dtype}` on a `(splits, batch)` grid of `threads`-thread blocks
/// under `schedule` (which also orders the blocks, so the combining block varies). Returns
/// the decoded rows and the arrival counters after the launch (the kernel must leave them
/// at 0).
#[allow(clippy::too_many_arguments)]
pub fn sample_rows_split<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    splits: u32,
    schedule: Schedule,
) -> Result<(Vec<RowOutput>, Vec<u32>), HostSimtError> {
    let key = KernelKey {
        numerics: Numerics::Fast,
        ..key_of::<T>(SamplerKernel::General, opts, true)
    };
    let r = dense(key, logits, vocab, params, opts, threads, splits, schedule)?;
    Ok((r.rows, r.arrivals))
}

/// [`sample_rows_split`] through the unfiltered split kernels of `opts.method`
/// (`sample_rows_unfiltered_split_{dtype}`, `sample_rows_unfiltered_cdf_split_{dtype}`:
/// kernels/unfiltered.cuh).
#[allow(clippy::too_many_arguments)]
pub fn sample_rows_unfiltered_split<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    opts: &SampleOptions,
    threads: u32,
    splits: u32,
    schedule: Schedule,
) -> Result<(Vec<RowOutput>, Vec<u32>), HostSimtError> {
    let key = key_of::<T>(SamplerKernel::Unfiltered, opts, true);
    let r = dense(key, logits, vocab, params, opts, threads, splits, schedule)?;
    Ok((r.rows, r.arrivals))
}

/// A launch of `kernel`'s family (split into `splits` slices when `splits > 1`: the fast
/// numerics) with `processing`, over a dense batch with packed params and top-n stride
/// `opts.top_n`. The processing's shapes must fit the batch; its values are the kernels' to
/// check (a bad row is refused alone), so a test can pass what validation would reject.
#[allow(clippy::too_many_arguments)]
pub fn sample_rows_processed<T: Logit>(
    kernel: SamplerKernel,
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    threads: u32,
    splits: u32,
    schedule: Schedule,
) -> Result<Vec<RowOutput>, HostSimtError> {
    let split = splits > 1;
    let mut key = key_of::<T>(kernel, opts, split);
    if split || kernel != SamplerKernel::General {
        key.numerics = Numerics::Fast;
    }
    if kernel == SamplerKernel::Collected {
        key.draw = DrawMethod::Gumbel;
    }
    let batch = batch_size(logits.len(), vocab).expect("vocab divides the logits");
    let launch_ = ShimLaunch {
        key,
        logits,
        batch,
        vocab,
        row_stride: vocab,
        params: ShimParams::Packed(params),
        top_stride: opts.top_n,
        threads,
        splits,
        schedule,
        processing: *processing,
        verify: None,
        scored: None,
    };
    Ok(run(&launch_, opts)?.rows)
}

/// Raw logprobs as [`crate::gpu::GpuSampler::sample_processed_on`] computes them: a
/// processed launch of the general kernels of `opts.numerics` without top-n, then a scored
/// launch of the same kernels over the raw rows at temperature 1 with no filters, which
/// reports each drawn token's logprob and the top-n; a row the first launch refused keeps
/// its result.
#[allow(clippy::too_many_arguments)]
pub fn sample_rows_raw_logprobs<T: Logit>(
    logits: &[T],
    vocab: usize,
    params: &[SamplingParams],
    processing: &Processing,
    opts: &SampleOptions,
    threads: u32,
    schedule: Schedule,
) -> Result<Vec<RowOutput>, HostSimtError> {
    let draw_opts = SampleOptions { top_n: 0, ..*opts };
    let drawn = sample_rows_processed(
        SamplerKernel::General,
        logits,
        vocab,
        params,
        processing,
        &draw_opts,
        threads,
        1,
        schedule,
    )?;
    let tokens: Vec<i32> = drawn
        .iter()
        .map(|r| r.token.map_or(-1, |t| t as i32))
        .collect();
    let scored = run(
        &ShimLaunch {
            key: key_of::<T>(SamplerKernel::General, opts, false),
            logits,
            batch: drawn.len(),
            vocab,
            row_stride: vocab,
            params: ShimParams::Fields {
                temperature: None,
                top_k: None,
                top_p: None,
                min_p: None,
                seed: None,
                step: None,
                scalars: SamplingParams::default(),
            },
            top_stride: opts.top_n,
            threads,
            splits: 1,
            schedule,
            processing: Processing::NONE,
            verify: None,
            scored: Some(&tokens),
        },
        opts,
    )?;
    Ok(drawn
        .into_iter()
        .zip(scored.rows)
        .map(|(first, raw)| if first.token.is_some() { raw } else { first })
        .collect())
}

/// Runs `launch` through the shim: the entry point its key names, outputs poisoned first
/// (a slot the kernel must write and did not fails an assertion), split scratch and the
/// processing's edit table poisoned too (a read of a slot no block wrote shows), and the
/// touched bitmap checked all zero after the launch.
pub fn run<T: Logit>(
    launch_: &ShimLaunch<'_, T>,
    opts: &SampleOptions,
) -> Result<ShimResult, HostSimtError> {
    let ShimLaunch {
        key,
        logits,
        batch,
        vocab,
        row_stride,
        params,
        top_stride,
        threads,
        splits,
        schedule,
        processing,
        verify,
        scored,
    } = *launch_;
    assert_eq!(key.dtype, T::DTYPE, "the key's dtype is the logits'");
    let family = key.family().expect("a family serves the key");
    let entry = LAUNCHERS[family][dtype_column(key.dtype)];
    assert!(row_stride >= vocab);
    assert!(batch == 0 || logits.len() >= (batch - 1) * row_stride + vocab);
    assert!(opts.top_n <= MAX_TOP_N && top_stride >= opts.top_n);
    assert!(threads.is_power_of_two() && (64..=SAMPLER_MAX_THREADS).contains(&threads));
    let splits = if key.split { splits } else { 1 };
    assert!((1..=MAX_SPLITS as u32).contains(&splits));
    let mut tokens = match scored {
        Some(t) => {
            assert_eq!(t.len(), batch, "a scored token a row");
            t.to_vec()
        }
        None => vec![i32::MIN; batch],
    };
    let mut logprobs = vec![f32::NAN; batch];
    let mut status = vec![u32::MAX; batch];
    let mut top_tokens = vec![i32::MIN; (batch * top_stride).max(1)];
    let mut top_logprobs = vec![f32::NAN; (batch * top_stride).max(1)];
    // u64 words: a slice's candidates are 8-byte values (SPLIT_PARTIAL_WORDS is even).
    const _: () = assert!(SPLIT_PARTIAL_WORDS % 2 == 0);
    let mut partials = vec![u64::MAX; (batch * splits as usize * SPLIT_PARTIAL_WORDS / 2).max(1)];
    let mut arrivals = vec![0u32; batch.max(1)];
    let mut args = SampleArgs {
        logits: logits.as_ptr() as u64,
        row_stride: row_stride as u64,
        vocab: u32::try_from(vocab).expect("vocab fits 32 bits"),
        method: match opts.method {
            DrawMethod::Gumbel => 0,
            DrawMethod::InverseCdf => 1,
        },
        out: RowOutputPtrs {
            tokens: tokens.as_mut_ptr() as u64,
            logprobs: logprobs.as_mut_ptr() as u64,
            status: status.as_mut_ptr() as u64,
            top_tokens: top_tokens.as_mut_ptr() as u64,
            top_logprobs: top_logprobs.as_mut_ptr() as u64,
            top_n: opts.top_n as u32,
            top_stride: top_stride as u32,
        },
        partials: partials.as_mut_ptr() as u64,
        arrivals: arrivals.as_mut_ptr() as u64,
        ..SampleArgs::default()
    };
    if scored.is_some() {
        args.scored_tokens = tokens.as_ptr() as u64;
    }
    // What memory safety needs (the kernels check each row's offsets and values
    // themselves): every array of the length the kernels index it by.
    let offsets_fit = |o: &[u32]| o.is_empty() || o.len() == batch + 1;
    assert!(
        [
            processing.banned.offsets,
            processing.bias.offsets,
            processing.prompt.offsets,
            processing.output.offsets,
        ]
        .iter()
        .all(|o| offsets_fit(o))
            && processing.bias.tokens.len() == processing.bias.biases.len()
            && processing
                .bitmask
                .is_none_or(|m| m.len() == batch * bitmask_words(vocab))
            && [0, 1, batch].contains(&processing.penalties.len()),
        "processing inputs of the batch's shape"
    );
    let capacity = processing.edit_table_capacity(batch);
    let mut touched = vec![0u32; (batch * bitmask_words(vocab)).max(1)];
    // Poisoned: each row clears the slots it uses.
    let mut table = vec![u32::MAX; (batch * capacity * 4).max(1)];
    args.proc = processing_args(
        &processing,
        batch,
        vocab,
        &mut touched,
        &mut table,
        capacity,
    );
    // A verification launch reads one parameter row per request.
    let param_rows = verify.map_or(batch, |v| v.offsets.len().saturating_sub(1));
    match params {
        ShimParams::Packed(p) => {
            assert!(p.len() == 1 || p.len() == param_rows, "1 or batch params");
            args.params = p.as_ptr() as u64;
            args.params_stride = u32::from(p.len() != 1 || param_rows == 1);
        }
        ShimParams::Fields {
            temperature,
            top_k,
            top_p,
            min_p,
            seed,
            step,
            scalars,
        } => {
            fn ptr<E>(field: Option<&[E]>, batch: usize) -> u64 {
                field.map_or(0, |f| {
                    assert!(f.len() >= batch, "a field array holds batch rows");
                    f.as_ptr() as u64
                })
            }
            args.scalars = scalars;
            args.fields = ParamFieldPtrs {
                temperature: ptr(temperature, param_rows),
                top_k: ptr(top_k, param_rows),
                top_p: ptr(top_p, param_rows),
                min_p: ptr(min_p, param_rows),
                seed: ptr(seed, param_rows),
                step: ptr(step, param_rows),
            };
        }
    }
    let mut requests = VerifyBuffers::new(verify, batch);
    if let Some(v) = verify {
        assert!(
            !key.split && key.kernel == SamplerKernel::General,
            "general kernels verify"
        );
        assert!(opts.top_n == 0, "verification launches report no top-n");
        args.verify = requests.args(v, vocab);
    }
    let grid = if key.split {
        (splits, batch as u32)
    } else {
        (batch as u32, 1)
    };
    let cfg = Launch::new(grid, threads).schedule(schedule);
    if batch > 0 {
        // SAFETY: `args` holds host addresses of buffers that hold what the kernel indexes
        // (asserted above): logits `batch` rows at `row_stride`, params 1 or batch (or batch
        // per field), outputs batch (batch * top_stride), partials batch * splits, arrivals
        // batch; f16/bf16 as their bits. They outlive the launch, which returns when done.
        launch(&cfg, |c| unsafe { entry(c, &args) })?;
    }
    let written = |ok: bool, what: &str| {
        assert!(ok, "the kernel left {what} unwritten");
    };
    // A scored launch of the general kernels leaves the rows it does not score (a negative
    // token) as they were, but for the top-n.
    if let Some(scored) = scored.filter(|_| key.kernel == SamplerKernel::General && !key.split) {
        for r in (0..batch).filter(|&r| scored[r] < 0) {
            assert!(
                tokens[r] == scored[r] && logprobs[r].is_nan() && status[r] == u32::MAX,
                "row {r}: a scored launch wrote a row it does not score"
            );
            tokens[r] = -1;
            status[r] = RowStatus::InvalidParams as u32;
        }
    }
    written(status.iter().all(|&s| s != u32::MAX), "a status");
    assert!(
        touched.iter().all(|&w| w == 0),
        "the kernel left bits of the touched bitmap set"
    );
    written(tokens.iter().all(|&t| t != i32::MIN), "a token");
    if opts.top_n > 0 {
        written(
            (0..batch).all(|r| {
                top_tokens[r * top_stride..r * top_stride + opts.top_n]
                    .iter()
                    .all(|&t| t != i32::MIN)
            }),
            "a top-n slot",
        );
    }
    let rows = decode_rows(
        &tokens,
        &logprobs,
        &status,
        &top_tokens,
        &top_logprobs,
        opts.top_n,
        top_stride,
    );
    Ok(ShimResult {
        rows,
        top_tokens,
        arrivals,
        touched,
        verify: verify.map(|_| requests.decode()),
    })
}

/// A verification launch's per-position and per-request buffers (host memory), poisoned.
struct VerifyBuffers {
    positions: Vec<u64>,
    arrivals: Vec<u32>,
    accepted: Vec<i32>,
    tokens: Vec<i32>,
    logprobs: Vec<f32>,
    status: Vec<u32>,
    stride: usize,
    requests: usize,
}

impl VerifyBuffers {
    fn new(verify: Option<ShimVerify>, rows: usize) -> Self {
        let requests = verify.map_or(0, |v| v.offsets.len().saturating_sub(1));
        let stride = verify.map_or(1, |v| v.stride);
        VerifyBuffers {
            positions: vec![u64::MAX; rows.max(1)],
            arrivals: vec![0; requests.max(1)],
            accepted: vec![i32::MIN; requests.max(1)],
            tokens: vec![i32::MIN; (requests * stride).max(1)],
            logprobs: vec![f32::INFINITY; (requests * stride).max(1)],
            status: vec![u32::MAX; requests.max(1)],
            stride,
            requests,
        }
    }

    fn args(&mut self, v: ShimVerify, vocab: usize) -> VerifyArgs {
        let requests = v.offsets.len() - 1;
        assert_eq!(v.offsets[0], 0, "CSR offsets start at 0");
        assert!(
            v.offsets.windows(2).all(|w| w[0] <= w[1]),
            "CSR offsets never decrease"
        );
        assert_eq!(
            v.offsets[requests] as usize,
            v.drafts.len(),
            "one token a draft"
        );
        assert!(
            v.probs.is_none_or(|q| q.len() == v.drafts.len() * vocab),
            "a distribution row a draft"
        );
        let n_max = v.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(
            v.stride > n_max as usize,
            "the stride holds n_max + 1 tokens"
        );
        VerifyArgs {
            offsets: v.offsets.as_ptr() as u64,
            drafts: v.drafts.as_ptr() as u64,
            draft_probs: v.probs.map_or(0, |q| q.as_ptr() as u64),
            requests: requests as u32,
            stride: v.stride as u32,
            drafts_len: v.drafts.len() as u32,
            rows: self.positions.len() as u32,
            positions: self.positions.as_mut_ptr() as u64,
            arrivals: self.arrivals.as_mut_ptr() as u64,
            accepted: self.accepted.as_mut_ptr() as u64,
            tokens: self.tokens.as_mut_ptr() as u64,
            logprobs: self.logprobs.as_mut_ptr() as u64,
            status: self.status.as_mut_ptr() as u64,
        }
    }

    /// The requests' results, checking what the kernels must leave.
    fn decode(&self) -> Vec<VerifyOutput> {
        assert!(
            self.arrivals.iter().all(|&a| a == 0),
            "ticket counters left at 0"
        );
        (0..self.requests)
            .map(|r| {
                let status = RowStatus::from_code(self.status[r]).expect("a status code");
                let row = r * self.stride..(r + 1) * self.stride;
                let (tokens, logprobs) = (&self.tokens[row.clone()], &self.logprobs[row]);
                let accepted = self.accepted[r];
                let emitted = if status == RowStatus::Ok {
                    accepted as usize + 1
                } else {
                    assert_eq!(accepted, 0, "a failed request accepts nothing");
                    0
                };
                // What the kernels must leave past the emitted tokens.
                assert!(tokens[emitted..].iter().all(|&t| t == -1), "padding -1");
                assert!(
                    logprobs[emitted..].iter().all(|l| l.is_nan()),
                    "padding NaN"
                );
                VerifyOutput::from_padded(self.status[r], accepted, tokens, logprobs)
            })
            .collect()
    }
}
