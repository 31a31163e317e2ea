"""What the Python binding adds to a sample call (issue 19's target: within 10 us of the Rust
call at batch 64 x 128256). Needs PyTorch and a GPU; run by scripts/gpu-check.

For each shape, three host-side times per call, each the median over REPEATS bursts of
ITERATIONS calls with a synchronisation between bursts: a burst stays well below the driver's
launch queue (about a thousand launches), so the host never waits for the kernels and the time
is the call's own (the kernel time is `batchsample bench`'s):

* python: `Sampler.sample(logits, out=..., seed=tensor, step=tensor, temperature=tensor)`;
* native: the native method with the arguments already normalised (DLPack imports included);
* rust:   the Rust call alone on arrays imported once (`time_rust_calls`).

The binding's overhead is python - rust. Prints a table and, with --json, writes the numbers.
"""

import argparse
import json
import time

import numpy as np
import torch

import batchsample as bs

ITERATIONS = 100
REPEATS = 15


def timed(fn, iterations):
    fn()
    bursts = []
    for _ in range(REPEATS):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        bursts.append((time.perf_counter() - start) / iterations)
    torch.cuda.synchronize()
    return float(np.median(bursts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="64x128256,1x128256,256x32000")
    ap.add_argument("--iterations", type=int, default=ITERATIONS)
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda", 0)
    results = []
    print(f"{'shape':>12} {'python us':>10} {'native us':>10} {'rust us':>8} {'overhead us':>12}")
    for shape in args.shapes.split(","):
        rows, vocab = (int(v) for v in shape.split("x"))
        x = torch.randn(rows, vocab, device=dev, dtype=torch.bfloat16)
        seeds = torch.from_numpy(bs.row_seeds(1, rows).view(np.int64)).to(dev)
        step = torch.zeros(rows, dtype=torch.int64, device=dev)
        temperature = torch.full((rows,), 0.8, device=dev)
        s = bs.Sampler(max_batch=rows)
        out = s.sample(x, seed=seeds, step=step, temperature=temperature)
        stream = torch.cuda.current_stream(dev).cuda_stream
        python = timed(lambda: s.sample(x, seed=seeds, step=step, temperature=temperature, out=out),
                       args.iterations)
        native = timed(lambda: s._native.sample(
            x, out.tokens, out.logprobs, out.status, None, None,
            params=dict(temperature=temperature, seed=seeds, step=step), top_n=0, method="gumbel",
            numerics="fast", processing=None, logprobs_mode="processed", u16_as_bf16=False,
            stream=stream), args.iterations)
        rust_bursts = []
        for _ in range(REPEATS):
            torch.cuda.synchronize()
            rust_bursts.append(s._native.time_rust_calls(
                x, out.tokens, out.logprobs, out.status,
                params=dict(temperature=temperature, seed=seeds, step=step),
                iterations=args.iterations, stream=stream))
        torch.cuda.synchronize()
        rust = float(np.median(rust_bursts))
        row = dict(shape=shape, python_us=python * 1e6, native_us=native * 1e6, rust_us=rust * 1e6,
                   overhead_us=(python - rust) * 1e6, device=torch.cuda.get_device_name(dev))
        results.append(row)
        print(f"{shape:>12} {row['python_us']:10.2f} {row['native_us']:10.2f} {row['rust_us']:8.2f} "
              f"{row['overhead_us']:12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
