//! `batchsample demo`: one toy distribution through every stage of the pipeline, as bar charts,
//! then a token drawn from it exactly as `sample` would.

use super::bars::{self, Cell, Row};
use super::{check_flags, check_processing_flags, DemoArgs};
use anyhow::{anyhow, bail, Result};
use batchsample::cpu::{
    processing_stages, sample_batch_processed, stage_distributions, ProcessingStages, Stages,
};
use batchsample::processing::{bitmask_words, LogprobsMode, ProcessingBuf, RowProcessing};
use batchsample::{SampleOptions, SamplingParams};
use clap::Args;
use std::fmt::Write as _;
use std::io::Write as _;

/// The demo's logits processing: the steps `sample` applies before temperature, on the toy row.
#[derive(Debug, Args)]
pub struct DemoProcessing {
    /// Allowed tokens (the bitmask, as a list for the toy vocabulary); the rest become -inf.
    #[arg(long, value_name = "T,T,...", value_delimiter = ',')]
    pub allowed_tokens: Option<Vec<u32>>,
    #[command(flatten)]
    pub shared: super::flags::ProcessingFlags,
    /// The prompt's tokens (repetition penalty).
    #[arg(long, value_name = "T,T,...", value_delimiter = ',')]
    pub prompt_tokens: Vec<u32>,
    /// The tokens generated so far (all three penalties; repeats count for frequency).
    #[arg(long, value_name = "T,T,...", value_delimiter = ',')]
    pub output_tokens: Vec<u32>,
}

impl DemoProcessing {
    fn lists(&self) -> RowProcessing {
        RowProcessing {
            prompt_tokens: self.prompt_tokens.clone(),
            output_tokens: self.output_tokens.clone(),
            ..self.shared.row()
        }
    }

    /// The bitmask row of `--allowed-tokens`, checked against the vocabulary.
    fn bitmask(&self, vocab: usize) -> Result<Option<Vec<i32>>> {
        let Some(allowed) = &self.allowed_tokens else {
            return Ok(None);
        };
        let mut mask = vec![0i32; bitmask_words(vocab)];
        for &t in allowed {
            if t as usize >= vocab {
                bail!("--allowed-tokens: token {t} is past the vocabulary ({vocab} tokens)");
            }
            mask[t as usize / 32] |= (1u32 << (t % 32)) as i32;
        }
        Ok(Some(mask))
    }
}

/// Rows beyond this many (in rank order) are summarised in one line.
const MAX_ROWS: usize = 40;

pub fn run(args: &DemoArgs) -> Result<()> {
    let raw = &args.logits;
    if raw.is_empty() {
        bail!("--logits: give at least one logit");
    }
    let (seed, random_seed) = match args.seed {
        Some(s) => (s, false),
        None => (rand::random::<u64>(), true),
    };
    let p = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        seed,
        step: args.step,
    };
    check_flags(&p)?;
    let lists = args.processing.lists();
    check_processing_flags(&lists, raw.len())?;
    let mask = args.processing.bitmask(raw.len())?;
    let buf = ProcessingBuf::from_rows(std::slice::from_ref(&lists), mask);
    let processing = buf.view();
    let steps = processing_stages(raw, &processing.row(0, raw.len()));
    let processed = !processing.row(0, raw.len()).is_off();
    let logits = if processed {
        &steps.after_penalties
    } else {
        raw
    };
    let stages = stage_distributions(logits, &p).ok_or_else(|| {
        if raw.iter().any(|x| x.is_nan() || *x == f32::INFINITY) {
            anyhow!("--logits: NaN and +inf are not valid logits (use -inf to mask a token)")
        } else if processed {
            anyhow!("processing leaves no finite logit: at least one token must stay allowed")
        } else {
            anyhow!("--logits: every logit is -inf; at least one token must be finite")
        }
    })?;
    let opts = SampleOptions {
        method: args.method.into(),
        top_n: 0,
        ..Default::default()
    };
    // What `sample` does with this row: processing, then the sampler.
    let drawn = sample_batch_processed(
        raw,
        raw.len(),
        &[p],
        &processing,
        LogprobsMode::Processed,
        &opts,
    )?
    .remove(0);
    let token = drawn
        .token
        .ok_or_else(|| anyhow!("the row could not be sampled: {:?}", drawn.status))?;

    let mut text = String::new();
    if processed {
        text.push_str(&processing_report(
            raw,
            &steps,
            &lists,
            args.processing.allowed_tokens.is_some(),
        ));
    }
    text.push_str(&report(logits, raw, &p, &stages, args.width as usize));
    let _ = writeln!(
        text,
        "\ndrawn: token {token} (logit {}) with logprob {:.4} (p = {})",
        fmt_logit(logits[token as usize]),
        drawn.logprob,
        bars::percent(drawn.logprob.exp()),
    );
    let _ = writeln!(
        text,
        "       seed {seed}{}, step {}, method {}",
        if random_seed {
            format!(" (random; repeat with --seed {seed})")
        } else {
            String::new()
        },
        p.step,
        args.method.name(),
    );
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow!("stdout: {e}")),
        _ => Ok(()),
    }
}

fn fmt_logit(x: f32) -> String {
    format!("{x:.2}")
}

/// Rank order: larger logit first, ties by lower index (the order every filter keeps a prefix of).
fn rank_order(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| {
        logits[b]
            .partial_cmp(&logits[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    order
}

/// One filter stage: what it does (`None` when it is off) and the distributions around it.
struct Filter<'a> {
    name: &'static str,
    title: String,
    what: Option<String>,
    before: &'a [f64],
    after: &'a [f64],
}

/// The whole chart: a header, then one block per stage.
fn report(
    logits: &[f32],
    raw: &[f32],
    p: &SamplingParams,
    stages: &Stages,
    width: usize,
) -> String {
    let order = rank_order(logits);
    let shown = &order[..order.len().min(MAX_ROWS)];
    let labels: Vec<String> = (0..logits.len())
        .map(|i| format!("token {i}  logit {:>6}", fmt_logit(logits[i])))
        .collect();
    let finite = logits.iter().filter(|x| **x != f32::NEG_INFINITY).count();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} tokens ({} finite); temperature {}, top-k {}, top-p {}, min-p {}",
        logits.len(),
        finite,
        p.temperature,
        p.top_k,
        p.top_p,
        p.min_p
    );
    let _ = writeln!(
        out,
        "Bars are probabilities (full width = 100%), tokens in rank order (largest logit first)."
    );

    // Why each token is out of the distribution after each stage, if it is.
    let mut removed: Vec<Option<String>> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if raw[i] == f32::NEG_INFINITY {
                Some("masked (logit -inf)".to_string())
            } else if x == f32::NEG_INFINITY {
                Some("removed by processing (logit -inf)".to_string())
            } else if p.is_greedy() && stages.softmax[i] == 0.0 {
                Some("not the top-ranked token (greedy)".to_string())
            } else {
                None
            }
        })
        .collect();
    let rows = |probs: &[f64], prev: Option<&[f64]>, removed: &[Option<String>]| -> String {
        let rows: Vec<Row> = shown
            .iter()
            .map(|&i| Row {
                label: labels[i].clone(),
                cell: match &removed[i] {
                    Some(why) => Cell::Removed(why.clone()),
                    None => Cell::Kept {
                        p: probs[i],
                        was: prev
                            .map(|prev| prev[i])
                            .filter(|was| (was - probs[i]).abs() >= 5e-5),
                    },
                },
            })
            .collect();
        let mut text = bars::render(&rows, width, "   ");
        if order.len() > shown.len() {
            let rest = &order[shown.len()..];
            let mass: f64 = rest.iter().map(|&i| probs[i]).sum();
            let _ = writeln!(
                text,
                "   … {} more tokens, {} together",
                rest.len(),
                bars::percent(mass)
            );
        }
        text
    };

    // 1. Softmax at temperature T.
    let _ = writeln!(out);
    if p.is_greedy() {
        let _ = writeln!(
            out,
            "1. softmax at temperature 0 = greedy: all probability on the top-ranked token"
        );
    } else {
        let _ = writeln!(
            out,
            "1. softmax at temperature {}: p_i = exp(logit_i / {}) / sum_j exp(logit_j / {})",
            p.temperature, p.temperature, p.temperature
        );
    }
    out.push_str(&rows(&stages.softmax, None, &removed));

    let filters = [
        Filter {
            name: "top-k",
            title: format!("top-k {}", p.top_k),
            what: (p.top_k > 0).then(|| format!("keep the {} highest-ranked tokens", p.top_k)),
            before: &stages.softmax,
            after: &stages.after_top_k,
        },
        Filter {
            name: "top-p",
            title: format!("top-p {}", p.top_p),
            what: (p.top_p < 1.0).then(|| {
                format!(
                    "keep the shortest top-ranked run whose probability reaches {}",
                    p.top_p
                )
            }),
            before: &stages.after_top_k,
            after: &stages.after_top_p,
        },
        Filter {
            name: "min-p",
            title: format!("min-p {}", p.min_p),
            what: (p.min_p > 0.0).then(|| {
                let top = stages.after_top_p.iter().copied().fold(0.0, f64::max);
                format!(
                    "drop tokens below {} x the top probability ({} x {} = {})",
                    p.min_p,
                    p.min_p,
                    bars::percent(top),
                    bars::percent(p.min_p as f64 * top)
                )
            }),
            before: &stages.after_top_p,
            after: &stages.after_min_p,
        },
    ];
    for (n, f) in filters.into_iter().enumerate() {
        let (name, title, before, after) = (f.name, f.title, f.before, f.after);
        let _ = writeln!(out);
        let Some(what) = f.what else {
            let _ = writeln!(
                out,
                "{}. {title}: off, the distribution is unchanged",
                n + 2
            );
            continue;
        };
        if p.is_greedy() {
            let _ = writeln!(
                out,
                "{}. {title}: moot at temperature 0 (the distribution is already one token)",
                n + 2
            );
            continue;
        }
        let gone: Vec<usize> = (0..logits.len())
            .filter(|&i| removed[i].is_none() && before[i] > 0.0 && after[i] == 0.0)
            .collect();
        let mass: f64 = gone.iter().map(|&i| before[i]).sum();
        let effect = match gone.len() {
            0 => "removes nothing here".to_string(),
            1 => format!(
                "removes 1 token ({} of the mass); the rest is renormalised",
                bars::percent(mass)
            ),
            k => format!(
                "removes {k} tokens ({} of the mass); the rest is renormalised",
                bars::percent(mass)
            ),
        };
        let _ = writeln!(out, "{}. {title}: {what}; {effect}", n + 2);
        for &i in &gone {
            removed[i] = Some(format!("removed by {name}"));
        }
        out.push_str(&rows(after, Some(before), &removed));
    }
    out
}

/// Step 0 when processing is on: what each processing step does to the logits, token by token.
fn processing_report(
    raw: &[f32],
    steps: &ProcessingStages,
    lists: &RowProcessing,
    masked: bool,
) -> String {
    let pen = lists.penalties;
    let stages: [(String, &[f32], &[f32]); 4] = [
        (
            "bitmask (--allowed-tokens)".into(),
            raw,
            &steps.after_bitmask,
        ),
        (
            "banned tokens".into(),
            &steps.after_bitmask,
            &steps.after_banned,
        ),
        ("logit bias".into(), &steps.after_banned, &steps.after_bias),
        (
            format!(
                "penalties: repetition {} over prompt + output, frequency {} and presence {} \
                 over output",
                pen.repetition, pen.frequency, pen.presence
            ),
            &steps.after_bias,
            &steps.after_penalties,
        ),
    ];
    let on = [
        masked,
        !lists.banned_tokens.is_empty(),
        !lists.logit_bias.is_empty(),
        !pen.is_off() && (!lists.prompt_tokens.is_empty() || !lists.output_tokens.is_empty()),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "0. logits processing, in vLLM's order, on the logits before temperature:"
    );
    for ((name, before, after), on) in stages.iter().zip(on) {
        if !on {
            let _ = writeln!(out, "   {name}: off");
            continue;
        }
        let changed: Vec<String> = (0..raw.len())
            .filter(|&i| before[i].to_bits() != after[i].to_bits())
            .map(|i| {
                format!(
                    "token {i} {} -> {}",
                    fmt_logit(before[i]),
                    fmt_logit(after[i])
                )
            })
            .collect();
        if changed.is_empty() {
            let _ = writeln!(out, "   {name}: changes nothing here");
        } else {
            let _ = writeln!(out, "   {name}: {}", changed.join(", "));
        }
    }
    let _ = writeln!(out, "The stages below start from the processed logits.\n");
    out
}
