"""Shared fixtures: the CLI binary the parity tests run, and small deterministic logits."""

import os
import pathlib
import shutil

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli() -> str:
    """The `batchsample` binary: $BATCHSAMPLE_CLI (scripts/test sets it, and then it must
    exist), else the workspace's debug build, else `batchsample` on PATH; skipped if none."""
    named = os.environ.get("BATCHSAMPLE_CLI")
    if named:
        assert pathlib.Path(named).is_file(), f"BATCHSAMPLE_CLI={named} does not exist"
        return named
    for candidate in (ROOT / "target/debug/batchsample", shutil.which("batchsample")):
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    pytest.skip("SKIP: no batchsample binary (cargo build -p batchsample-cli)")


def make_logits(batch: int, vocab: int, salt: int = 0, dtype=np.float32) -> np.ndarray:
    """Peaked rows: a few large logits over a normal background, as a model gives."""
    rng = np.random.default_rng(1000 + salt)
    x = rng.normal(0.0, 1.5, size=(batch, vocab))
    x[:, rng.integers(0, vocab, size=5)] += 4.0
    return x.astype(dtype)
