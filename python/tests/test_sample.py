"""The CPU path through the package: zero-copy in and out, scalars and per-row arrays, seeds,
dtypes, processing, and a chi-square test of the draw."""

import numpy as np
import pytest

import batchsample as bs
from conftest import make_logits


def test_logits_are_read_in_place():
    x = make_logits(4, 500)
    s = bs.Sampler()
    s.sample(x, seed=1)
    assert s.last_logits_address == x.ctypes.data
    addr, shape, strides, dtype, device = bs.inspect(x)
    assert (addr, shape, strides, dtype, device) == (x.ctypes.data, [4, 500], [500, 1], "float32", "cpu")
    # A view of a larger buffer: its own address and row stride, no copy on the way in.
    wide = make_logits(4, 512)
    view = wide[:, :500]
    s.sample(view, seed=1)
    assert s.last_logits_address == view.ctypes.data == wide.ctypes.data
    assert bs.inspect(view)[2] == [512, 1]


def test_any_dlpack_producer_and_read_only_arrays_are_read_in_place():
    x = make_logits(3, 50)

    class Producer:
        """A DLPack producer that is not a NumPy array (a stand-in for CuPy, JAX, ...)."""

        def __dlpack__(self, **kwargs):
            return x.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return x.__dlpack_device__()

    s = bs.Sampler()
    got = s.sample(Producer(), seed=1)
    assert s.last_logits_address == x.ctypes.data
    np.testing.assert_array_equal(got.tokens, bs.sample(x, seed=1).tokens)
    frozen = np.frombuffer(x.tobytes(), np.float32).reshape(3, 50)
    assert not frozen.flags.writeable  # logits are only read: a read-only array will do
    np.testing.assert_array_equal(s.sample(frozen, seed=1).tokens, got.tokens)
    assert s.last_logits_address == frozen.ctypes.data


def test_module_functions_from_several_threads():
    from concurrent.futures import ThreadPoolExecutor

    xs = [make_logits(8, 2000, salt=s) for s in range(8)]
    want = [bs.sample(x, seed=5, top_p=0.9).tokens for x in xs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: bs.sample(x, seed=5, top_p=0.9).tokens, xs))
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_outputs_are_written_in_place():
    x = make_logits(3, 100)
    out = bs.SampleResult(
        tokens=np.full(3, -7, np.int32), logprobs=np.zeros(3, np.float32),
        top_tokens=np.zeros((3, 2), np.int32), top_logprobs=np.zeros((3, 2), np.float32),
        status=np.full(3, 9, np.int32),
    )
    got = bs.sample(x, seed=3, top_n=2, out=out)
    assert got is out
    fresh = bs.sample(x, seed=3, top_n=2)
    for a, b in zip(out, fresh):
        np.testing.assert_array_equal(a, b)
    assert out.status.tolist() == [0, 0, 0]


def test_strided_rows_sample_as_the_dense_copy():
    wide = make_logits(5, 260, salt=2)
    a = bs.sample(wide[:, :257], seed=11, top_k=30, top_n=3)
    b = bs.sample(np.ascontiguousarray(wide[:, :257]), seed=11, top_k=30, top_n=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_scalars_equal_per_row_arrays():
    x = make_logits(6, 400, salt=1)
    scalar = bs.sample(x, temperature=0.9, top_k=40, top_p=0.95, min_p=0.02, seed=21, step=4)
    arrays = bs.sample(
        x, temperature=[0.9] * 6, top_k=np.full(6, 40), top_p=np.full(6, 0.95, np.float32),
        min_p=[0.02] * 6, seed=bs.row_seeds(21, 6), step=np.full(6, 4, np.uint64),
    )
    np.testing.assert_array_equal(scalar.tokens, arrays.tokens)
    np.testing.assert_array_equal(scalar.logprobs, arrays.logprobs)


def test_per_row_parameters_apply_to_their_row():
    x = make_logits(3, 300, salt=4)
    got = bs.sample(x, temperature=[0.0, 1.0, 0.0], seed=[1, 2, 3])
    assert got.tokens[0] == np.argmax(x[0]) and got.tokens[2] == np.argmax(x[2])
    assert got.logprobs[0] == 0.0
    # Row 1 alone, with its seed, gives the same token: rows never see their batch position.
    alone = bs.sample(x[1:2], temperature=1.0, seed=[2])
    assert alone.tokens[0] == got.tokens[1]


def test_same_seed_and_step_same_tokens_new_step_new_draws():
    x = make_logits(64, 1000, salt=5)
    a = bs.sample(x, seed=99, step=0)
    b = bs.sample(x, seed=99, step=0)
    c = bs.sample(x, seed=99, step=1)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert (a.tokens != c.tokens).sum() > 10


@pytest.mark.parametrize("numerics", ["fast", "invariant"])
def test_float16_and_bfloat16_rows(numerics):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = make_logits(4, 300, salt=6)
    for dtype in (np.float16, ml_dtypes.bfloat16):
        low = x.astype(dtype)
        got = bs.sample(low, seed=5, numerics=numerics)
        # The same values widened to f32 draw the same tokens: the dtype is only storage.
        want = bs.sample(low.astype(np.float32), seed=5, numerics=numerics)
        np.testing.assert_array_equal(got.tokens, want.tokens)
        np.testing.assert_array_equal(got.logprobs, want.logprobs)
    s = bs.Sampler()
    b = x.astype(ml_dtypes.bfloat16)
    s.sample(b, seed=1)
    assert s.last_logits_address == b.ctypes.data  # bf16 too: viewed, not converted


def test_invariant_numerics_do_not_depend_on_the_batch():
    x = make_logits(16, 700, salt=7)
    seeds = bs.row_seeds(3, 16)
    whole = bs.sample(x, seed=seeds, numerics="invariant", top_p=0.9)
    for r in (0, 5, 15):
        one = bs.sample(x[r:r + 1], seed=seeds[r:r + 1], numerics="invariant", top_p=0.9)
        assert one.tokens[0] == whole.tokens[r]
        assert one.logprobs[0] == whole.logprobs[r]


def test_chi_square_of_the_draw():
    """4000 rows of one 8-token distribution, each with its own seed: the token counts fit the
    softmax of logits / T restricted to top-k (chi-square, df 5, p > 0.001 at this seed)."""
    logits = np.array([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0], np.float32)
    rows, t, k = 4000, 0.8, 6
    x = np.tile(logits, (rows, 1))
    for method in ("gumbel", "inverse-cdf"):
        tokens = bs.sample(x, temperature=t, top_k=k, seed=2024, method=method).tokens
        p = np.exp(logits[:k] / t)
        p /= p.sum()
        counts = np.bincount(tokens, minlength=8)
        assert counts[k:].sum() == 0  # filtered tokens are never drawn
        chi2 = (((counts[:k] - rows * p) ** 2) / (rows * p)).sum()
        assert chi2 < 20.52, (method, chi2, counts)  # the 0.999 quantile of chi-square(5)


def test_processing_masks_are_never_drawn():
    x = make_logits(8, 256, salt=8)
    allowed = np.zeros((8, 256), dtype=bool)
    allowed[:, 100:110] = True
    got = bs.sample(x, allowed_mask=allowed, seed=1, temperature=2.0)
    assert ((got.tokens >= 100) & (got.tokens < 110)).all()
    # The same mask as int32 words (xgrammar's layout) draws the same tokens.
    words = np.packbits(allowed, axis=1, bitorder="little").view(np.int32)
    again = bs.sample(x, allowed_mask=words, seed=1, temperature=2.0)
    np.testing.assert_array_equal(got.tokens, again.tokens)
    banned = [list(range(0, 256, 2))] * 8
    odd = bs.sample(x, banned_tokens=banned, seed=2, temperature=2.0)
    assert (odd.tokens % 2 == 1).all()
    biased = bs.sample(x, logit_bias=[{7: 1000.0}] * 8, seed=3)
    assert (biased.tokens == 7).all()


def test_failed_rows_get_their_status_and_others_are_sampled():
    x = make_logits(4, 100, salt=9)
    x[1, 5] = np.nan
    x[2, :] = -np.inf
    got = bs.sample(x, seed=4, top_n=2)
    assert got.status.tolist() == [bs.Status.OK, bs.Status.NON_FINITE_LOGIT, bs.Status.NO_FINITE_LOGIT, bs.Status.OK]
    assert got.tokens[1] == -1 and got.tokens[2] == -1 and np.isnan(got.logprobs[1])
    assert got.top_tokens[1].tolist() == [-1, -1]
    alone = bs.sample(x[3:4], seed=[bs.row_seeds(4, 4)[3]], top_n=2)
    assert alone.tokens[0] == got.tokens[3]


def test_compare_agrees_with_the_reference_and_flags_other_tokens():
    x = make_logits(5, 300, salt=10)
    got = bs.sample(x, seed=8, top_p=0.9)
    assert [k for k, _ in bs.compare(x, got.tokens, seed=8, top_p=0.9)] == ["same"] * 5
    wrong = got.tokens.copy()
    wrong[0] = int(np.argmin(x[0]))
    verdicts = bs.compare(x, wrong, seed=8, top_p=0.9)
    assert verdicts[0][0] == "unexplained" and verdicts[1][0] == "same"


def test_reference_is_the_cpu_path():
    x = make_logits(3, 200, salt=11)
    np.testing.assert_array_equal(bs.reference(x, seed=1).tokens, bs.sample(x, seed=1).tokens)


def test_verify_lists_and_csr_agree_and_greedy_accepts_the_argmax():
    vocab = 64
    target = make_logits(7, vocab, salt=12)
    arg = np.argmax(target, axis=1)
    drafts = [[int(arg[0]), int(arg[1])], [int(arg[3]) ^ 1], [int(arg[5])]]
    got = bs.verify(target, drafts, temperature=0.0)
    assert got.accepted.tolist() == [2, 0, 1]
    assert got.tokens[0].tolist() == [arg[0], arg[1], arg[2]]
    assert got.tokens[1].tolist() == [arg[3], -1, -1]
    assert got.tokens[2].tolist() == [arg[5], arg[6], -1]
    offsets = np.array([0, 2, 3, 4], np.uint32)
    flat = np.array([t for d in drafts for t in d], np.uint32)
    csr = bs.verify(target, (offsets, flat), temperature=0.0)
    for a, b in zip(got, csr):
        np.testing.assert_array_equal(a, b)


def test_the_gpu_edit_table_is_sized_by_the_longest_row():
    """The GPU's per-row edit table holds the most entries one row's lists have (banned + bias +
    prompt + output), known on the host without reading device offsets back."""
    place = bs._arrays.Place(False, False, None, 0)
    d = bs._processing(place, 3, 100, None, [[1], [1, 2], []], [{}, {3: 1.0}, {}], None,
                       [[5, 5, 5], [], [7]], 1.2, 0.0, 0.0)
    assert d["max_row_entries"] == 4
    offsets = np.array([0, 1, 3, 3], np.uint32)
    again = bs._processing(place, 3, 100, None, (offsets, np.array([1, 1, 2], np.uint32)),
                           None, None, None, 1.0, 0.0, 0.0)
    assert again["max_row_entries"] == 2
    assert bs._processing(place, 3, 100, None, None, None, None, None, 1.0, 0.0, 0.0) is None


def test_max_list_entries_is_taken_as_given():
    """The caller's bound sizes the edit table as is: no offsets are read (the graph-capture
    case, where CUDA offsets cannot be copied back)."""
    place = bs._arrays.Place(False, False, None, 0)
    offsets = np.array([0, 1, 3, 3], np.uint32)
    d = bs._processing(place, 3, 100, None, (offsets, np.array([1, 1, 2], np.uint32)),
                       None, None, None, 1.0, 0.0, 0.0, max_list_entries=64)
    assert d["max_row_entries"] == 64
    x = make_logits(3, 100)
    a = bs.sample(x, seed=1, banned_tokens=(offsets, np.array([1, 1, 2], np.uint32)))
    b = bs.sample(x, seed=1, banned_tokens=(offsets, np.array([1, 1, 2], np.uint32)),
                  max_list_entries=64)
    np.testing.assert_array_equal(a.tokens, b.tokens)
