"""A decode loop in Python, as a serving engine runs one: a batch of requests, each with its own
sampling parameters and seed, fed logits step by step by a model and sampled once a step, `step`
advancing. The model is a small deterministic stand-in (the previous token's embedding times a
fixed random projection), so the loop runs anywhere. It shows that

(a) the same seeds reproduce the same sequences;
(b) the CPU reference reproduces the GPU's sequences token for token (invariant numerics);
(c) on a GPU the sampling step runs under CUDA-graph replay (torch.cuda.graph): captured once,
    replayed every step with the logits and the steps rewritten in place.

Without PyTorch or a GPU it runs the CPU path on NumPy arrays, says so, and shows (a) and, in
place of (b), that each request's sequence is the same when it is decoded alone.

    pip install ./python && python examples/decode_loop.py
"""

import numpy as np

import batchsample as bs

VOCAB, HIDDEN, STEPS = 4096, 64, 12
TEMPERATURE = np.array([0.0, 0.7, 1.0, 1.3], np.float32)
TOP_K = np.array([0, 50, 0, 20], np.uint32)
TOP_P = np.array([1.0, 0.9, 0.95, 1.0], np.float32)
MIN_P = np.array([0.0, 0.0, 0.05, 0.0], np.float32)
SEEDS = bs.row_seeds(2024, 4)  # what a scalar seed=2024 would give the four rows
FIRST = np.array([1, 2, 3, 4])


class Model:
    """logits = embedding[previous token] @ projection, fixed pseudo-random weights."""

    def __init__(self):
        rng = np.random.default_rng(7)
        self.embedding = rng.uniform(-1, 1, (VOCAB, HIDDEN)).astype(np.float32)
        self.projection = (rng.uniform(-1, 1, (HIDDEN, VOCAB)) * 0.9).astype(np.float32)

    def logits(self, previous):
        return self.embedding[previous] @ self.projection


def decode_cpu(model, rows=slice(None), numerics="invariant"):
    """The loop on the CPU path (NumPy arrays in, NumPy arrays out)."""
    sampler = bs.Sampler()
    sequences = [[int(t)] for t in FIRST[rows]]
    for step in range(STEPS):
        previous = np.array([s[-1] for s in sequences])
        out = sampler.sample(
            model.logits(previous), temperature=TEMPERATURE[rows], top_k=TOP_K[rows],
            top_p=TOP_P[rows], min_p=MIN_P[rows], seed=SEEDS[rows], step=step, numerics=numerics,
        )
        for s, t in zip(sequences, out.tokens.tolist()):
            s.append(t)
    return sequences


def decode_gpu(model, torch):
    """The loop on the GPU: the sampling step captured once in a CUDA graph, replayed each
    step after the new logits and steps are copied into the tensors it reads."""
    dev = torch.device("cuda", 0)
    sampler = bs.Sampler(max_batch=len(FIRST))
    projection = torch.from_numpy(model.projection).to(dev)
    embedding = torch.from_numpy(model.embedding).to(dev)
    logits = torch.zeros(len(FIRST), VOCAB, device=dev)
    step = torch.zeros(len(FIRST), dtype=torch.int64, device=dev)
    kw = dict(
        temperature=torch.from_numpy(TEMPERATURE).to(dev),
        top_k=torch.from_numpy(TOP_K.view(np.int32)).to(dev),
        top_p=torch.from_numpy(TOP_P).to(dev),
        min_p=torch.from_numpy(MIN_P).to(dev),
        seed=torch.from_numpy(SEEDS.view(np.int64)).to(dev),
        step=step,
        numerics="invariant",
    )
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = sampler.sample(logits, **kw)  # warm-up: the workspaces grow here, not in capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        sampler.sample(logits, out=out, **kw)

    sequences = [[int(t)] for t in FIRST]
    previous = torch.from_numpy(FIRST).to(dev)
    history = []  # the logits of every step, for the CPU check
    for k in range(STEPS):
        # The "model" runs on the GPU too; its logits go where the graph reads them.
        logits.copy_(embedding[previous] @ projection)
        history.append(logits.cpu().numpy())
        step.fill_(k)
        graph.replay()
        previous = out.tokens.long()
        for s, t in zip(sequences, out.tokens.tolist()):
            s.append(t)
    return sequences, history


def show(label, sequences):
    print(f"{label}:")
    for r, s in enumerate(sequences):
        print(f"  request {r}: {s}")


def main():
    model = Model()
    try:
        import torch

        have_gpu = torch.cuda.is_available() and bs.gpu_available()
    except ImportError:
        torch, have_gpu = None, False

    if not have_gpu:
        print("no GPU (or no PyTorch with CUDA): the CPU path on NumPy arrays")
        first = decode_cpu(model)
        show("CPU, invariant numerics", first)
        assert decode_cpu(model) == first
        print("(a) a second run with the same seeds: the same sequences")
        for r in range(len(FIRST)):
            assert decode_cpu(model, slice(r, r + 1))[0] == first[r]
        print("(b) needs a GPU; instead: each request decoded alone gives the same sequence")
        print("(c) needs a GPU (CUDA-graph replay)")
        show("CPU, exact f64 reference (fast numerics)", decode_cpu(model, numerics="fast"))
        return

    print(f"GPU: {torch.cuda.get_device_name(0)}")
    on_gpu, history = decode_gpu(model, torch)
    show("GPU, invariant numerics, CUDA-graph replay", on_gpu)
    print("(c) each step above was one replay of a graph captured once")
    assert decode_gpu(model, torch)[0] == on_gpu
    print("(a) a second run with the same seeds: the same sequences")
    # (b) The CPU path on the very logits the GPU sampled, step by step.
    for k, logits in enumerate(history):
        cpu = bs.reference(logits, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P,
                           min_p=MIN_P, seed=SEEDS, step=k, numerics="invariant")
        assert cpu.tokens.tolist() == [s[k + 1] for s in on_gpu], k
    print("(b) the CPU reference path (invariant twin) gives the same tokens, step by step")


if __name__ == "__main__":
    main()
