"""Every bad input raises the documented exception, with the CLI's line where the CLI has one;
never a crash."""

import numpy as np
import pytest

import batchsample as bs
from conftest import make_logits

X = make_logits(4, 100)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(temperature=-1.0), "row 0: invalid temperature = -1: must be a finite number >= 0"),
        (dict(temperature=float("nan")), "invalid temperature"),
        (dict(top_p=0.0), "row 0: invalid top_p = 0"),
        (dict(top_p=[0.5, 0.5, 1.5, 0.5]), "row 2: invalid top_p = 1.5"),
        (dict(min_p=1.0), "invalid min_p"),
        (dict(top_k=-1), "top_k: -1 is not a non-negative integer"),
        (dict(top_k=[1, 2, -3, 4]), "top_k: cannot be read as uint32"),
        (dict(top_k=2.5), "top_k: 2.5 is not a non-negative integer"),
        (dict(seed=-5), "seed: -5 is out of range"),
        (dict(seed=1 << 64), "seed: 18446744073709551616 is out of range"),
        (dict(step=[0, 1]), "step: shape (2,) (expected (4,): one value per row)"),
        (dict(temperature=True), "temperature: True is not a number"),
        (dict(top_n=bs.MAX_TOP_N + 1), "top_n"),
        (dict(method="magic"), "method: unknown 'magic'"),
        (dict(numerics="exact"), "numerics: unknown 'exact'"),
        (dict(logprobs="cooked"), "logprobs: unknown 'cooked'"),
        (dict(banned_tokens=[[1]]), "banned_tokens: 1 lists for 4 rows"),
        (dict(banned_tokens=[[100]] * 4), "banned_tokens"),
        (dict(logit_bias=[{1: float("nan")}] * 4), "logit_bias"),
        (dict(repetition_penalty=0.0), "repetition"),
        (dict(allowed_mask=np.zeros((4, 3), np.int32)), "allowed_mask: shape (4, 3)"),
        (dict(allowed_mask=np.zeros((4, 99), bool)), "allowed_mask: shape (4, 99)"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, needle):
    with pytest.raises(ValueError) as e:
        bs.sample(X, **kwargs)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "logits,needle",
    [
        (np.zeros((2, 3), np.int32), "logits: dtype int32"),
        (np.zeros((2, 3), np.float64), "logits: dtype float64"),
        (np.zeros(5, np.float32), "logits must be [batch, vocab]"),
        (np.zeros((2, 3, 4), np.float32), "logits must be [batch, vocab]"),
        (np.zeros((2, 0), np.float32), "vocab"),
        (np.zeros((4, 6), np.float32)[:, ::2], "rows must be contiguous"),
    ],
)
def test_bad_logits_raise_value_error(logits, needle):
    with pytest.raises(ValueError) as e:
        bs.sample(logits, seed=1)
    assert needle in str(e.value)


def test_bad_outputs_raise_value_error():
    good = bs.sample(X, seed=1)
    short = good._replace(tokens=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="out tokens: shape"):
        bs.sample(X, seed=1, out=short)
    wrong = good._replace(logprobs=np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="out logprobs: dtype float64"):
        bs.sample(X, seed=1, out=wrong)
    frozen = np.zeros(4, np.int32)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        bs.sample(X, seed=1, out=good._replace(tokens=frozen))


def test_empty_batch_is_no_error():
    got = bs.sample(np.zeros((0, 10), np.float32), seed=1)
    assert got.tokens.shape == (0,)


def test_bad_drafts_raise_value_error_and_bad_tokens_get_a_status():
    target = make_logits(5, 50)
    with pytest.raises(ValueError, match="target rows|shape mismatch"):
        bs.verify(target, [[1, 2], [3, 4]], seed=1)  # needs 6 target rows
    got = bs.verify(target, [[1, 2], [99]], seed=1)  # token 99 is past the vocabulary
    assert got.status.tolist() == [bs.Status.OK, bs.Status.INVALID_DRAFT]
    with pytest.raises(ValueError, match="draft probabilities"):
        bs.verify(target, [[1, 2], [3]], draft_probs=np.zeros((3, 49), np.float32), seed=1)
