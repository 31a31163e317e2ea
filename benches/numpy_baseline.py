#!/usr/bin/env python3
"""The lesson's numpy sampler, with batchsample's semantics, timed on the logits that the Rust
bench wrote (so both sides see the very same data).

Per row, as the lesson did it: temperature, softmax over the row, a full argsort into rank order
(larger logit first, equal logits by lower index: a stable sort of the negated logits), top-k,
cumsum top-p keeping the token that crosses p (all top-k survivors if rounding never reaches p),
min-p, renormalise, np.random.choice.

Usage: numpy_baseline.py --logits DIR/logits.f32 [--kept DIR/kept.txt] [--batch 64]
       [--vocab 128256] [--runs 5]
Prints `numpy_ms <ms>` (median of --runs timed passes over the batch, after one warm-up pass),
and, with --kept, how many rows keep as many tokens as the Rust reference's kept set.
"""

import argparse
import time

import numpy as np

TEMPERATURE = np.float32(0.8)
TOP_K = 50
TOP_P = 0.9
MIN_P = 0.0


def sample_row(x, rng, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P):
    """One row: returns (token, number of tokens kept)."""
    if temperature == 0:
        return int(np.argmax(x)), 1  # greedy: lowest index of the max, no random number
    z = x / temperature
    w = np.exp(z - z.max())
    probs = w / w.sum()  # softmax over the whole row
    order = np.argsort(-x, kind="stable")  # rank order by logit, ties by lower index
    if 0 < top_k < order.size:
        order = order[:top_k]
    kept = probs[order].astype(np.float64)
    kept /= kept.sum()
    if top_p < 1.0:
        cum = np.cumsum(kept)
        n = int(np.searchsorted(cum, top_p, side="left")) + 1  # the crossing token stays
        kept = kept[: min(n, kept.size)]
    if min_p > 0.0:
        kept = kept[kept >= min_p * kept[0]]
    order = order[: kept.size]
    kept /= kept.sum()
    return int(rng.choice(order, p=kept)), kept.size


def sample_batch(logits, rng):
    return [sample_row(row, rng) for row in logits]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logits", required=True)
    ap.add_argument("--kept")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    logits = np.fromfile(args.logits, dtype="<f4").reshape(args.batch, args.vocab)
    rng = np.random.RandomState(0)  # what np.random.choice uses

    out = sample_batch(logits, rng)  # warm-up, and the kept-set check
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sample_batch(logits, rng)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(f"numpy {np.__version__}, {args.batch} x {args.vocab} f32, "
          f"median of {args.runs} runs: {' '.join(f'{t:.1f}' for t in times)} ms")
    if args.kept:
        want = [int(s) for s in open(args.kept).read().split()]
        same = sum(int(k == w) for (_, k), w in zip(out, want))
        print(f"kept-set sizes equal to the Rust reference's in {same}/{len(want)} rows")
    print(f"numpy_ms {times[len(times) // 2]:.3f}")


if __name__ == "__main__":
    main()
