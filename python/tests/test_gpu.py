"""CUDA tensors (needs PyTorch with a GPU; each test prints SKIP and passes over otherwise):
the kernels on the caller's current stream, in place, under CUDA-graph replay, against the CPU
path (bit for bit in invariant numerics)."""

import numpy as np
import pytest

import batchsample as bs
from conftest import make_logits

torch = pytest.importorskip("torch", reason="SKIP: PyTorch is not installed")
if not torch.cuda.is_available() or not bs.gpu_available():
    pytest.skip("SKIP: no CUDA device", allow_module_level=True)

DEV = torch.device("cuda", 0)


def cuda(x, dtype=torch.float32):
    return torch.from_numpy(np.asarray(x)).to(DEV, dtype)


def same(a, b):
    """Two SampleResults / VerifyResults, one maybe on the GPU, equal element for element."""
    for x, y in zip(a, b):
        if x is None:
            assert y is None
            continue
        np.testing.assert_array_equal(x.cpu().numpy() if torch.is_tensor(x) else x,
                                      y.cpu().numpy() if torch.is_tensor(y) else y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_invariant_tokens_are_the_cpu_twins(dtype):
    x = cuda(make_logits(32, 5000, salt=1), dtype)
    seeds = cuda(bs.row_seeds(7, 32).view(np.int64), torch.int64)
    kw = dict(numerics="invariant", temperature=0.8, top_p=0.9, top_k=100, seed=seeds, step=3, top_n=4)
    s = bs.Sampler()
    got = s.sample(x, **kw)
    assert s.last_logits_address == x.data_ptr()
    assert got.tokens.device == x.device and got.tokens.dtype == torch.int32
    same(got, bs.reference(x, **kw))


def test_fast_tokens_agree_with_the_reference():
    x = cuda(make_logits(64, 32000, salt=2))
    got = bs.sample(x, temperature=1.0, top_p=0.95, seed=5)
    verdicts = bs.compare(x, got.tokens, temperature=1.0, top_p=0.95, seed=5)
    assert all(kind != "unexplained" for kind, _ in verdicts), verdicts


def test_per_row_tensors_and_a_bad_row():
    x = cuda(make_logits(4, 1000, salt=3))
    top_p = cuda([0.9, 1.5, 0.9, 0.9])  # row 1 invalid: its status, the others sampled
    got = bs.sample(x, top_p=top_p, top_k=cuda([0, 5, 10, 0], torch.int32),
                    seed=cuda([1, 2, 3, 4], torch.int64), step=cuda([0, 0, 1, 2], torch.int64))
    assert got.status.tolist() == [0, bs.Status.INVALID_PARAMS, 0, 0]
    want = bs.reference(x[[0, 2, 3]].cpu(), top_p=0.9, top_k=[0, 10, 0], seed=[1, 3, 4], step=[0, 1, 2])
    assert got.tokens[[0, 2, 3]].tolist() == want.tokens.tolist()


def test_launches_on_the_current_stream():
    """The logits are written on a side stream behind a long sleep; sampling under that stream
    must wait for the write (on any other stream it would read the old logits)."""
    old = make_logits(8, 4096, salt=4)
    new = np.roll(old, 1, axis=1)
    x = cuda(old)
    fresh = cuda(new)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU time
        x.copy_(fresh)
        got = bs.sample(x, temperature=0.0)
    side.synchronize()
    assert got.tokens.cpu().numpy().tolist() == np.argmax(new, axis=1).tolist()


def test_graph_capture_and_replay():
    rows, vocab = 16, 8192
    sampler = bs.Sampler(max_batch=rows)
    static_x = cuda(make_logits(rows, vocab, salt=5))
    seeds = cuda(bs.row_seeds(9, rows).view(np.int64), torch.int64)
    step = torch.zeros(rows, dtype=torch.int64, device=DEV)
    temperature = cuda(np.linspace(0.0, 1.5, rows))
    kw = dict(temperature=temperature, top_p=0.9, seed=seeds, step=step, numerics="invariant")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = sampler.sample(static_x, **kw)  # warm-up: grows the workspaces
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        sampler.sample(static_x, out=out, **kw)
    for k in range(3):
        logits = make_logits(rows, vocab, salt=10 + k)
        static_x.copy_(cuda(logits))
        step.fill_(k)
        graph.replay()
        torch.cuda.synchronize()
        want = bs.reference(logits, temperature=temperature.cpu(), top_p=0.9, seed=seeds.cpu(),
                            step=np.full(rows, k, np.uint64), numerics="invariant")
        same(out, want)


def test_verify_on_the_gpu_is_the_cpu_twins():
    vocab = 3000
    target = make_logits(9, vocab, salt=6)
    # 3 + 2 + 4 = 9 target rows; request 1's draft is its target row's argmax (row 3).
    drafts = [[1, 2], [int(np.argmax(target[3]))], [5, 6, 7]]
    kw = dict(numerics="invariant", temperature=cuda([0.0, 0.7, 1.0]), seed=3)
    got = bs.verify(cuda(target), drafts, **kw)
    same(got, bs.verify(target, drafts, **dict(kw, temperature=[0.0, 0.7, 1.0])))


def test_processing_on_the_gpu_is_the_cpu_twins():
    x = make_logits(6, 2048, salt=7)
    mask = np.zeros((6, 2048), bool)
    mask[:, ::3] = True
    kw = dict(numerics="invariant", seed=2, allowed_mask=mask, banned_tokens=[[0, 3]] * 6,
              logit_bias=[{9: 3.0}] * 6, repetition_penalty=1.2, output_tokens=[[9, 12]] * 6,
              prompt_tokens=[[6]] * 6, frequency_penalty=0.1, top_n=3)
    same(bs.sample(cuda(x), **kw), bs.sample(x, **kw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_raw_logprobs_on_the_gpu_are_the_cpu_twins(dtype):
    x = make_logits(8, 3000, salt=8)
    x[3, 5] = np.nan  # refused by the draw: its status, no top-n
    kw = dict(numerics="invariant", temperature=0.7, top_k=40, seed=4, top_n=5, logprobs="raw",
              banned_tokens=[[1, 2]] * 8, repetition_penalty=1.3, output_tokens=[[7, 7, 9]] * 8)
    got = bs.sample(cuda(x, dtype), **kw)
    same(got, bs.sample(torch.from_numpy(x).to(dtype), **kw))
    # Without processing too: raw logprobs are those of temperature 1 without filters.
    kw = dict(numerics="invariant", temperature=0.5, top_p=0.8, seed=4, top_n=2, logprobs="raw")
    same(bs.sample(cuda(x, dtype), **kw), bs.sample(torch.from_numpy(x).to(dtype), **kw))
