"""The CPU path gives the CLI's tokens and logprobs for the same inputs (both run the library's
CPU reference; a scalar seed derives the same per-row seeds)."""

import json
import subprocess

import numpy as np
import pytest

import batchsample as bs
from conftest import make_logits


def run_cli(cli, tmp_path, logits, args):
    """The CLI's rows; a dict in `args` becomes a --params file giving every row those fields."""
    np.save(tmp_path / "x.npy", logits)
    if any(isinstance(a, dict) for a in args):
        params = tmp_path / "params.json"
        fields = next(a for a in args if isinstance(a, dict))
        params.write_text(json.dumps([fields] * logits.shape[0]))
        args = [str(params) if isinstance(a, dict) else a for a in args]
    out = tmp_path / "out.json"
    cmd = [cli, "sample", "--logits", str(tmp_path / "x.npy"), "--out", str(out), "--device", "cpu"]
    subprocess.run(cmd + args, check=True, capture_output=True)
    return json.loads(out.read_text())["draws"][0]


CASES = [
    # (CLI flags, Python keywords)
    (["--seed", "5", "-t", "0.8"], dict(seed=5, temperature=0.8)),
    (["--seed", "6", "-t", "1.1", "-k", "20", "-p", "0.9", "--min-p", "0.01", "--top-n", "4"],
     dict(seed=6, temperature=1.1, top_k=20, top_p=0.9, min_p=0.01, top_n=4)),
    (["--seed", "7", "-t", "0"], dict(seed=7, temperature=0.0)),
    (["--seed", "8", "--method", "inverse-cdf", "--step", "9"],
     dict(seed=8, method="inverse-cdf", step=9)),
    (["--seed", "9", "--numerics", "invariant", "-p", "0.8", "--top-n", "2"],
     dict(seed=9, numerics="invariant", top_p=0.8, top_n=2)),
    (["--seed", "10", "--banned-tokens", "3,4", "--logit-bias", "7:5.5,8:-2",
      "--repetition-penalty", "1.3", "--presence-penalty", "0.5", "--frequency-penalty", "0.25",
      "--params", {"prompt_tokens": [1, 2, 3], "output_tokens": [9, 9, 10]}],
     dict(seed=10, banned_tokens=[[3, 4]] * 5, logit_bias=[{7: 5.5, 8: -2.0}] * 5,
          repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.25,
          prompt_tokens=[[1, 2, 3]] * 5, output_tokens=[[9, 9, 10]] * 5)),
    (["--seed", "11", "--logprobs", "raw", "--banned-tokens", "0"],
     dict(seed=11, logprobs="raw", banned_tokens=[[0]] * 5)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("flags,kwargs", CASES)
def test_cpu_path_matches_cli(cli, tmp_path, dtype, flags, kwargs):
    logits = make_logits(5, 300, salt=len(flags), dtype=dtype)
    rows = run_cli(cli, tmp_path, logits, flags)
    got = bs.sample(logits, **kwargs)
    assert [r["token"] for r in rows] == got.tokens.tolist()
    assert [r["seed"] for r in rows] == bs.row_seeds(kwargs["seed"], 5).tolist()
    np.testing.assert_allclose(
        np.array([r["logprob"] for r in rows], dtype=np.float32), got.logprobs, rtol=1e-6, atol=1e-6
    )
    if not kwargs.get("top_n"):
        assert got.top_tokens is None and all(not r.get("top_logprobs") for r in rows)
        return
    for r, row in enumerate(rows):
        want = row["top_logprobs"]
        # The CLI lists the survivors; the arrays pad them with (-1, -inf) to top_n.
        padded = got.top_tokens[r].tolist()
        assert [t["token"] for t in want] == [t for t in padded if t >= 0]
        np.testing.assert_allclose(
            [t["logprob"] for t in want], got.top_logprobs[r][: len(want)], rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("numerics", ["fast", "invariant"])
def test_verify_matches_cli(cli, tmp_path, dense, numerics):
    batch, n, vocab = 4, 3, 64
    target = make_logits(batch * (n + 1), vocab, salt=3)
    drafts = np.argmax(target.reshape(batch, n + 1, vocab)[:, :n], axis=2).astype(np.int32)
    drafts[1, 0] = (drafts[1, 0] + 1) % vocab  # one request rejects its first draft
    np.save(tmp_path / "t.npy", target.reshape(batch, n + 1, vocab))
    np.save(tmp_path / "d.npy", drafts)
    args = ["--seed", "4", "-t", "0.7", "-p", "0.95", "--numerics", numerics]
    probs = None
    if dense:
        rng = np.random.default_rng(5)
        probs = rng.dirichlet(np.ones(vocab), size=batch * n).astype(np.float32)
        probs[np.arange(batch * n), drafts.reshape(-1)] += 0.5  # the drafts are likely under q
        probs /= probs.sum(axis=1, keepdims=True)
        np.save(tmp_path / "q.npy", probs.reshape(batch, n, vocab))
        args += ["--draft-probs", str(tmp_path / "q.npy")]
    out = tmp_path / "v.json"
    subprocess.run(
        [cli, "verify", "--target", str(tmp_path / "t.npy"), "--draft-tokens", str(tmp_path / "d.npy"),
         "--out", str(out)] + args,
        check=True, capture_output=True,
    )
    want = json.loads(out.read_text())["requests"]
    got = bs.verify(target, drafts.tolist(), draft_probs=probs, seed=4, temperature=0.7, top_p=0.95,
                    numerics=numerics)
    for r, req in enumerate(want):
        assert req["accepted"] == got.accepted[r]
        assert req["tokens"] == [t for t in got.tokens[r].tolist() if t >= 0]
        np.testing.assert_allclose(req["logprobs"], got.logprobs[r][: len(req["tokens"])], rtol=1e-6)
    assert sum(r["accepted"] for r in want) > 0
