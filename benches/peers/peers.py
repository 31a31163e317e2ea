#!/usr/bin/env python3
"""Peers of `batchsample bench`, timed the same way on the same GPU (run by scripts/gpu-check).

* torch-sort: the PyTorch pipeline vLLM falls back to — temperature, sort, top-k and top-p masks
  through a cumulative sum, min-p, softmax, and an exponential-race draw (probs / Exp(1), argmax).
* torch-processing: vLLM's logits processing in PyTorch (grammar bitmask fill, then
  `apply_penalties` over 1024 prompt + 1024 output tokens a row), timed alone; compare.py sets
  it plus our unprocessed sampler against our fused `--processing all` case of the same run.
* torch-raw-logprobs: vLLM's `logprobs_mode = "raw_logprobs"` in PyTorch — `log_softmax` of the
  whole batch in f32 and the sampled token's logprob gathered (the argmax stands in for it),
  timed alone; compare.py sets our `--processing all-raw` case against `all` plus it.
* torch-verify (`--mode verify`): chain verification of point-mass drafts in PyTorch as vLLM's
  rejection sampler does it — softmax of the target logits at temperature 0.8, p(draft) gathered,
  accept while u < p(draft), the recovered token from p without the draft (exponential race),
  the bonus token from the last position — from logits to emitted tokens.
* flashinfer-verify (`--mode verify`): `chain_speculative_sampling` on the softmax of the target
  logits (the softmax timed too: we start from logits) with one-hot draft probabilities (FlashInfer
  takes dense drafts only; building them is not timed).
* flashinfer: `sampling_from_logits` (temperature only) and `top_k_top_p_sampling_from_logits`
  (top-k / top-p / combined; it has no min-p, so "combined" is top-k 50 + top-p 0.9 there), on
  logits already divided by the temperature (the division is not timed: it favours FlashInfer).
  Only if `import flashinfer` works on this machine.

Same shapes and modes as `batchsample bench` (temperature 0.8, top-k 50, top-p 0.9, min-p 0.05),
CUDA events around each call, inputs rotated so the L2 cache does not hold the next call's logits,
median of the iterations after warm-up. Writes JSON with one record per case.
"""
import argparse
import json
import statistics
import sys

import torch

MODES = {
    "temperature": dict(k=0, p=1.0, min_p=0.0),
    "top-k": dict(k=50, p=1.0, min_p=0.0),
    "top-p": dict(k=0, p=0.9, min_p=0.0),
    "combined": dict(k=50, p=0.9, min_p=0.05),
}
TEMPERATURE = 0.8


def torch_sort_sample(logits, k, p, min_p):
    """vLLM's PyTorch fallback, with this project's semantics (the crossing token kept)."""
    x = logits.float() / TEMPERATURE
    sorted_x, order = x.sort(dim=-1, descending=True)
    vocab = x.shape[-1]
    if k:
        ranks = torch.arange(vocab, device=x.device)
        sorted_x = sorted_x.masked_fill(ranks >= k, float("-inf"))
    if p < 1.0:
        probs = sorted_x.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass strictly before each token
        sorted_x = sorted_x.masked_fill(before >= p, float("-inf"))
    if min_p > 0.0:
        probs = sorted_x.softmax(dim=-1)
        sorted_x = sorted_x.masked_fill(probs < min_p * probs[:, :1], float("-inf"))
    probs = sorted_x.softmax(dim=-1)
    q = torch.empty_like(probs).exponential_()
    return order.gather(-1, (probs / q).argmax(dim=-1, keepdim=True)).squeeze(-1)


PROMPT_TOKENS, OUTPUT_TOKENS = 1024, 1024  # `batchsample bench --processing penalties`
REPETITION, FREQUENCY, PRESENCE = 1.1, 0.5, 0.5


def token_bin_counts_and_mask(tokens, vocab):
    """vLLM's `get_token_bin_counts_and_mask`: per-row counts of each token, and count > 0."""
    counts = torch.zeros(tokens.shape[0], vocab + 1, dtype=torch.long, device=tokens.device)
    counts.scatter_add_(1, tokens, torch.ones_like(tokens))
    counts = counts[:, :vocab]
    return counts, counts > 0


def torch_processing(logits, prompt, output, bitmask):
    """The processing vLLM runs before its sampler, in PyTorch: the grammar bitmask fill
    (xgrammar's layout unpacked to a bool mask, then masked_fill), and `apply_penalties`
    (repetition over prompt and output, then frequency and presence over the output). Returns
    new f32 logits: the caller's are not modified, as ours are not."""
    vocab = logits.shape[-1]
    x = logits.float()
    bits = (bitmask.unsqueeze(-1) >> torch.arange(32, device=x.device, dtype=torch.int32)) & 1
    allowed = bits.view(bitmask.shape[0], -1)[:, :vocab].bool()
    x = x.masked_fill(~allowed, float("-inf"))
    _, prompt_mask = token_bin_counts_and_mask(prompt, vocab)
    output_counts, output_mask = token_bin_counts_and_mask(output, vocab)
    rep = torch.full((x.shape[0], 1), REPETITION, device=x.device).repeat(1, vocab)
    rep[~(prompt_mask | output_mask)] = 1.0
    x = torch.where(x > 0, x / rep, x * rep)
    x -= FREQUENCY * output_counts
    x -= PRESENCE * output_mask
    return x


def torch_raw_logprobs(logits):
    """vLLM's raw logprobs: `log_softmax` of the raw logits in f32, before any processing, and
    the sampled token's entry gathered (here the argmax: which token does not change the cost)."""
    logprobs = logits.float().log_softmax(dim=-1)
    token = logits.argmax(dim=-1, keepdim=True)
    return logprobs.gather(-1, token)


def flashinfer_sampler(mode):
    import flashinfer  # noqa: F401  (import errors are reported by the caller)
    from flashinfer import sampling

    m = MODES[mode]
    if mode == "temperature":
        return lambda x: sampling.sampling_from_logits(x, deterministic=True)
    k = m["k"] or None
    return lambda x: sampling.top_k_top_p_sampling_from_logits(
        x, k if k else x.shape[-1], m["p"], deterministic=True
    )


def torch_verify(target, drafts, n):
    """vLLM-style chain verification of point-mass drafts: target [batch * (n + 1), vocab],
    drafts [batch, n]; returns the emitted tokens [batch, n + 1] (-1 after the last)."""
    batch = drafts.shape[0]
    probs = torch.softmax(target.float() / TEMPERATURE, dim=-1).view(batch, n + 1, -1)
    p_draft = probs[:, :n].gather(2, drafts.unsqueeze(2)).squeeze(2)
    accept = torch.rand_like(p_draft) < p_draft
    accepted = torch.cumprod(accept.int(), dim=1).sum(dim=1)  # leading accepts
    residual = probs[:, :n].scatter(2, drafts.unsqueeze(2), 0.0)
    race = residual / torch.empty_like(residual).exponential_()
    recovered = race.argmax(dim=2)
    bonus = (probs[:, n] / torch.empty_like(probs[:, n]).exponential_()).argmax(dim=1)
    out = torch.full((batch, n + 1), -1, dtype=torch.long, device=target.device)
    pos = torch.arange(n + 1, device=target.device).unsqueeze(0)
    out = torch.where(pos < accepted.unsqueeze(1), torch.nn.functional.pad(drafts, (0, 1)), out)
    last = torch.cat([recovered, bonus.unsqueeze(1)], dim=1).gather(1, accepted.unsqueeze(1))
    return out.scatter(1, accepted.unsqueeze(1), last)


def flashinfer_verify(n, vocab, drafts):
    from flashinfer import sampling

    batch = drafts.shape[0]
    one_hot = torch.zeros(batch, n, vocab, device="cuda")
    one_hot.scatter_(2, drafts.unsqueeze(2), 1.0)

    def run(target):
        probs = torch.softmax(target.float() / TEMPERATURE, dim=-1).view(batch, n + 1, vocab)
        return sampling.chain_speculative_sampling(one_hot, drafts.int(), probs, deterministic=True)

    return run


def time_calls(fn, buffers, iterations):
    for i in range(3):
        fn(buffers[i % len(buffers)])
    times = []
    for i in range(iterations):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(buffers[i % len(buffers)])
        b.record()
        times.append((a, b))
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in times)
    return statistics.median(ms) * 1e3, ms[len(ms) // 10] * 1e3, ms[(len(ms) * 9) // 10] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,64,256")
    ap.add_argument("--vocab", default="32000,128256")
    ap.add_argument("--dtype", default="f32,bf16")
    ap.add_argument("--mode", default="temperature,top-k,top-p,combined")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--peers", default="torch-sort,flashinfer")
    ap.add_argument("--drafts", default="4", help="draft counts for --mode verify")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    torch.manual_seed(0)
    wanted = args.peers.split(",")
    try:
        if "flashinfer" not in wanted and "flashinfer-verify" not in wanted:
            raise RuntimeError("not requested")
        import flashinfer

        flashinfer_status = f"flashinfer {getattr(flashinfer, '__version__', '?')}"
    except Exception as e:  # report why, keep going with torch
        flashinfer_status = f"flashinfer unavailable: {type(e).__name__}: {e}"
    print(flashinfer_status, file=sys.stderr)
    records = []
    for vocab in map(int, args.vocab.split(",")):
        for dname in args.dtype.split(","):
            for mode in args.mode.split(","):
                if mode == "verify":
                    for n in map(int, args.drafts.split(",")):
                        for batch in map(int, args.batch.split(",")):
                            records += verify_peers(batch, vocab, dname, dtypes[dname], n, wanted,
                                                    flashinfer_status, args.iterations)
                    continue
                for batch in map(int, args.batch.split(",")):
                    bytes_ = batch * vocab * torch.tensor([], dtype=dtypes[dname]).element_size()
                    copies = max(1, min(8, -(-(128 << 20) // bytes_)))
                    # LM-like rows: a normal bulk plus a few dozen high tokens.
                    base = torch.randn(batch, vocab, device="cuda") * 2.0
                    spikes = torch.randint(0, vocab, (batch, 32), device="cuda")
                    heights = 14.0 - 2.2 * torch.log(torch.arange(1, 33, device="cuda").float())
                    base.scatter_(1, spikes, heights.expand(batch, 32).contiguous())
                    buffers = [base.to(dtypes[dname]).clone() for _ in range(copies)]
                    m = MODES[mode]
                    peers = []
                    if "torch-processing" in wanted:
                        # The `all` workload of `bench --processing`: a bitmask allowing a random
                        # half of the vocabulary, 1024 prompt + 1024 output tokens a row. Timed
                        # alone: compare.py adds our unprocessed sampler's time of the same case.
                        words = -(-vocab // 32)
                        mask = torch.randint(-(2**31), 2**31 - 1, (batch, words), device="cuda", dtype=torch.int32)
                        prompt = torch.randint(0, vocab, (batch, PROMPT_TOKENS), device="cuda")
                        output = torch.randint(0, vocab, (batch, OUTPUT_TOKENS), device="cuda")
                        peers.append(("torch-processing", lambda x, mask=mask, prompt=prompt, output=output:
                                      torch_processing(x, prompt, output, mask), buffers))
                    if "torch-raw-logprobs" in wanted:
                        peers.append(("torch-raw-logprobs", torch_raw_logprobs, buffers))
                    if "torch-sort" in wanted:
                        peers.append(("torch-sort", lambda x, m=m: torch_sort_sample(x, m["k"], m["p"], m["min_p"]), buffers))
                    if not flashinfer_status.startswith("flashinfer unavailable"):
                        scaled = [(b.float() / TEMPERATURE).to(b.dtype) for b in buffers]
                        try:
                            peers.append(("flashinfer", flashinfer_sampler(mode), scaled))
                        except Exception as e:
                            print(f"flashinfer {mode}: {e}", file=sys.stderr)
                    for name, fn, bufs in peers:
                        try:
                            med, p10, p90 = time_calls(fn, bufs, args.iterations)
                        except Exception as e:
                            print(f"{name} {batch}x{vocab} {dname} {mode}: {type(e).__name__}: {e}", file=sys.stderr)
                            continue
                        records.append(dict(peer=name, batch=batch, vocab=vocab, dtype=dname, mode=mode,
                                            median_us=med, p10_us=p10, p90_us=p90))
                        print(f"{name:<11} {batch:>5} {vocab:>7} {dname:<5} {mode:<12} {med:>10.1f} us", flush=True)
    with open(args.json, "w") as f:
        json.dump(dict(device=torch.cuda.get_device_name(), flashinfer=flashinfer_status, results=records), f, indent=1)


def verify_peers(batch, vocab, dname, dtype, n, wanted, flashinfer_status, iterations):
    """Timed verification peers of one `--mode verify` case: `batch` requests of `n` drafts."""
    rows = batch * (n + 1)
    bytes_ = rows * vocab * torch.tensor([], dtype=dtype).element_size()
    copies = max(1, min(8, -(-(128 << 20) // bytes_)))
    base = torch.randn(rows, vocab, device="cuda") * 2.0
    buffers = [base.to(dtype).clone() for _ in range(copies)]
    # Half the requests draft each position's top token, half a random one (as `bench` does).
    top = base.view(batch, n + 1, vocab)[:, :n].argmax(dim=2)
    drafts = torch.where(torch.arange(batch, device="cuda").unsqueeze(1) % 2 == 0, top,
                         torch.randint(0, vocab, (batch, n), device="cuda"))
    peers = []
    if "torch-verify" in wanted:
        peers.append(("torch-verify", lambda x: torch_verify(x, drafts, n)))
    if "flashinfer-verify" in wanted and not flashinfer_status.startswith("flashinfer unavailable"):
        peers.append(("flashinfer-verify", flashinfer_verify(n, vocab, drafts)))
    records = []
    for name, fn in peers:
        try:
            med, p10, p90 = time_calls(fn, buffers, iterations)
        except Exception as e:
            print(f"{name} {batch}x{n} {vocab} {dname}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        records.append(dict(peer=name, batch=batch, vocab=vocab, dtype=dname, mode="verify",
                            drafts=n, median_us=med, p10_us=p10, p90_us=p90))
        print(f"{name:<17} {batch:>5}x{n} {vocab:>7} {dname:<5} {med:>10.1f} us", flush=True)
    return records


if __name__ == "__main__":
    main()
