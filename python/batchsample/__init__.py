"""batchsample: fused batched LLM token sampling, with an exact f64 CPU reference.

A batch of logit rows (``[batch, vocab]``, float32 / float16 / bfloat16) becomes one token per
row, each row with its own temperature, top-k, top-p, min-p, seed and step::

    import batchsample, torch
    out = batchsample.sample(logits, temperature=0.7, top_p=0.9, seed=1234, step=step)
    next_ids = out.tokens                       # int32, on the logits' device

* **CUDA tensors** (PyTorch) run the fused kernels on the caller's current stream
  (``torch.cuda.current_stream()``), with no copy of any input or output and no host
  synchronisation; the call can be captured in a CUDA graph (``torch.cuda.graph``).
* **Host arrays** (NumPy, or CPU tensors) run the library's CPU path: the exact f64 reference
  (``numerics="fast"``) or the batch-invariant twin (``numerics="invariant"``), which gives the
  GPU's tokens bit for bit. It is what ``batchsample sample`` runs without a GPU.

Arrays are read in place through DLPack. Results are new arrays in the logits' framework and on
their device, or the caller's own (``out=``). A :class:`Sampler` holds the GPU kernels and
workspaces across calls: after its first call of the largest shape it allocates nothing.

Semantics, seeds and statuses are the Rust crate's (``cargo doc``; README). In short:
``temperature=0`` is greedy; ``top_k=0``, ``top_p=1``, ``min_p=0`` are off; top-p keeps the
token that crosses p; a scalar ``seed`` is a base from which each row gets its own seed as
``batchsample sample --seed`` derives it (:func:`row_seeds`); a per-row array is used as given;
``step`` indexes the random stream (advance it every decode step).
"""

from __future__ import annotations

import inspect as _inspect
import secrets
import threading
from typing import Any, NamedTuple, Optional

import numpy as np

from . import _arrays
from ._native import MAX_TOP_N, NoDeviceError, gpu_available, inspect
from ._native import Sampler as _NativeSampler
from ._native import compare as _compare
from ._native import row_seeds as _row_seeds

__all__ = [
    "MAX_TOP_N",
    "NoDeviceError",
    "SampleResult",
    "Sampler",
    "Status",
    "VerifyResult",
    "compare",
    "gpu_available",
    "inspect",
    "reference",
    "row_seeds",
    "sample",
    "verify",
]


class Status:
    """Per-row status codes (``SampleResult.status``, ``VerifyResult.status``)."""

    OK = 0
    NON_FINITE_LOGIT = 1  # the row holds NaN or +inf
    NO_FINITE_LOGIT = 2  # every logit is -inf (or masked)
    INVALID_PARAMS = 3  # a GPU row whose parameters or processing lists are invalid
    INVALID_DRAFT = 4  # a draft token past the vocabulary, or a bad draft distribution


class SampleResult(NamedTuple):
    """One token a row. ``tokens`` int32 ``[batch]`` (-1 where the row failed), ``logprobs``
    float32 ``[batch]`` (under the final distribution; NaN where failed), ``top_tokens`` /
    ``top_logprobs`` ``[batch, top_n]`` (best first, ``(-1, -inf)`` past the last survivor;
    None when ``top_n`` is 0), ``status`` int32 ``[batch]`` (:class:`Status`)."""

    tokens: Any
    logprobs: Any
    top_tokens: Any
    top_logprobs: Any
    status: Any


class VerifyResult(NamedTuple):
    """One verified chain a request. ``accepted`` int32 ``[requests]`` (drafts accepted),
    ``tokens`` int32 ``[requests, max_drafts + 1]`` (the accepted drafts, then the resampled or
    bonus token, then -1), ``logprobs`` float32 (same shape, NaN padding), ``status`` int32."""

    accepted: Any
    tokens: Any
    logprobs: Any
    status: Any


def row_seeds(base: int, rows: int) -> np.ndarray:
    """The seeds a scalar ``seed=base`` gives rows ``0 .. rows-1`` (uint64): what
    ``batchsample sample --seed base`` uses, so that rows draw independently."""
    return np.asarray(_row_seeds(int(base), int(rows)), dtype=np.uint64)


_PROCESSING_DOC = """
    Logits processing (applied in the order vLLM applies it, before temperature):

    * ``allowed_mask``: int32 ``[batch, ceil(vocab / 32)]`` bits (xgrammar's layout: bit
      ``t % 32`` of word ``t // 32`` allows token ``t``), or booleans ``[batch, vocab]``;
    * ``banned_tokens``: a list of token lists, one a row (or CSR ``(offsets, tokens)``);
    * ``logit_bias``: a list of ``{token: bias}`` dicts, one a row (or ``(offsets, tokens,
      values)``);
    * ``prompt_tokens`` / ``output_tokens``: each row's history, for the penalties;
    * ``repetition_penalty`` (1 = off), ``frequency_penalty``, ``presence_penalty`` (0 = off):
      a number or one a row;
    * ``max_list_entries``: the most list entries (banned + bias + prompt + output) one row
      has, which sizes the GPU's edit table; pass it with CSR CUDA tensors, whose offsets are
      otherwise read back (a wait for the device, not allowed under graph capture).
"""


class Sampler:
    """Samples batches of logits; holds one GPU's kernels and workspaces across calls.

    ``max_batch`` sizes the GPU workspace up front (it grows on demand otherwise; growing waits
    for the device once, so make the first call, or a warm-up, the largest before capturing a
    CUDA graph). Use one Sampler a device, a thread and a stream: its workspace serves one
    launch at a time, and launches on two streams could overlap. Processing lists given as CSR
    CUDA tensors are read back once a call to size the edit table (a wait for the device)
    unless ``max_list_entries`` says how long the longest row's lists are.
    """

    def __init__(self, max_batch: int = 0):
        self._native = _NativeSampler(max_batch)
        self._seed_cache: dict = {}

    @property
    def device(self) -> Optional[int]:
        """The CUDA device this sampler has opened (None until its first CUDA call)."""
        return self._native.device

    @property
    def last_logits_address(self) -> Optional[int]:
        """The address the last call read its logits from: the input's own data pointer, as
        nothing is copied (``tensor.data_ptr()``, ``array.ctypes.data``)."""
        return self._native.last_logits_address

    def _seeds(self, seed: Any, rows: int, place: _arrays.Place):
        """Per-row seeds: a scalar base becomes :func:`row_seeds`, cached on the device."""
        if seed is None:
            seed = secrets.randbits(64)
        if not _arrays.is_scalar(seed) or isinstance(seed, bool):
            return _arrays.param(seed, "seed", "u64", place, rows)
        if seed < 0 or seed >= 1 << 64:
            raise ValueError(f"seed: {seed} is out of range (0 to 2**64 - 1)")
        key = (int(seed), rows, str(place.device))
        cached = self._seed_cache.get(key)
        if cached is None:
            cached = _arrays.device_array(row_seeds(int(seed), rows), "seed", "u64", place)
            self._seed_cache = {key: cached}  # the last one: a loop keeps its base seed
        return cached

    def _params(self, place, rows, temperature, top_k, top_p, min_p, seed, step) -> dict:
        return dict(
            temperature=_arrays.param(temperature, "temperature", "f32", place, rows),
            top_k=_arrays.param(top_k, "top_k", "u32", place, rows),
            top_p=_arrays.param(top_p, "top_p", "f32", place, rows),
            min_p=_arrays.param(min_p, "min_p", "f32", place, rows),
            seed=self._seeds(seed, rows, place),
            step=_arrays.param(step, "step", "u64", place, rows),
        )

    def sample(
        self,
        logits: Any,
        *,
        temperature: Any = 1.0,
        top_k: Any = 0,
        top_p: Any = 1.0,
        min_p: Any = 0.0,
        seed: Any = None,
        step: Any = 0,
        top_n: int = 0,
        method: str = "gumbel",
        numerics: str = "fast",
        logprobs: str = "processed",
        allowed_mask: Any = None,
        banned_tokens: Any = None,
        logit_bias: Any = None,
        prompt_tokens: Any = None,
        output_tokens: Any = None,
        repetition_penalty: Any = 1.0,
        frequency_penalty: Any = 0.0,
        presence_penalty: Any = 0.0,
        max_list_entries: Optional[int] = None,
        out: Optional[SampleResult] = None,
    ) -> SampleResult:
        """Draws one token a row of ``logits`` (``[batch, vocab]``; a row stride larger than
        ``vocab`` is read in place on the GPU, copied once on the CPU).

        Each of ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``seed`` and ``step`` is a
        number (every row) or one value a row (a list, array or tensor of length ``batch``;
        for a CUDA call without any host copy, pass CUDA tensors). ``seed=None`` picks a random
        base seed. ``top_n`` (at most ``MAX_TOP_N``) adds each row's most probable survivors.
        ``method`` is ``"gumbel"`` or ``"inverse-cdf"``; ``numerics`` ``"fast"`` or
        ``"invariant"`` (the same bits at any batch size, on the GPU and the CPU).
        ``logprobs="raw"`` reports the token's and the top-n's logprobs under the raw logits'
        softmax (temperature 1, no filters, no processing: vLLM's ``raw_logprobs``); on the GPU
        that is a second launch scoring the drawn token.

        ``out`` (a :class:`SampleResult` of arrays of the right shapes, dtypes and device) is
        written instead of new arrays: a CUDA graph's static outputs, or ``input_ids`` views.

        Raises ValueError (bad parameters, shapes, dtypes; the message is the CLI's line),
        NoDeviceError (CUDA tensors without a usable GPU). A row holding NaN or whose
        parameters the GPU rejects gets its :class:`Status` instead; the other rows are
        sampled.
        """
        x, place, u16_as_bf16 = _arrays.logits_in(logits)
        if x.ndim != 2:
            raise ValueError(f"shape mismatch: logits must be [batch, vocab], got {tuple(x.shape)}")
        rows, vocab = int(x.shape[0]), int(x.shape[1])
        if not 0 <= top_n <= MAX_TOP_N:
            raise ValueError(f"top_n: {top_n} is out of range (0 to {MAX_TOP_N})")
        params = self._params(place, rows, temperature, top_k, top_p, min_p, seed, step)
        processing = _processing(
            place, rows, vocab, allowed_mask, banned_tokens, logit_bias, prompt_tokens,
            output_tokens, repetition_penalty, frequency_penalty, presence_penalty, max_list_entries,
        )
        if out is None:
            out = SampleResult(
                tokens=place.empty((rows,), "i32"),
                logprobs=place.empty((rows,), "f32"),
                top_tokens=place.empty((rows, top_n), "i32") if top_n else None,
                top_logprobs=place.empty((rows, top_n), "f32") if top_n else None,
                status=place.empty((rows,), "i32"),
            )
        self._native.sample(
            x, out.tokens, out.logprobs, out.status, out.top_tokens, out.top_logprobs,
            top_n=top_n, method=method, numerics=numerics, processing=processing,
            logprobs_mode=logprobs, u16_as_bf16=u16_as_bf16, stream=place.stream, params=params,
        )
        return out

    def verify(
        self,
        target_logits: Any,
        draft_tokens: Any,
        *,
        draft_probs: Any = None,
        max_drafts: Optional[int] = None,
        temperature: Any = 1.0,
        top_k: Any = 0,
        top_p: Any = 1.0,
        min_p: Any = 0.0,
        seed: Any = None,
        step: Any = 0,
        method: str = "gumbel",
        numerics: str = "fast",
        allowed_mask: Any = None,
        banned_tokens: Any = None,
        logit_bias: Any = None,
        prompt_tokens: Any = None,
        output_tokens: Any = None,
        repetition_penalty: Any = 1.0,
        frequency_penalty: Any = 0.0,
        presence_penalty: Any = 0.0,
        max_list_entries: Optional[int] = None,
        out: Optional[VerifyResult] = None,
    ) -> VerifyResult:
        """Speculative-decoding verification of draft chains (rejection sampling, exact in
        distribution; greedy rows accept while the draft is the argmax).

        ``draft_tokens`` is a list of token lists, one a request (lengths may differ), or CSR
        ``(offsets, tokens)`` arrays (``offsets`` ``[requests + 1]``). Request ``r``'s target
        rows are ``offsets[r] + r ..= offsets[r + 1] + r`` of ``target_logits``: one per draft
        and one for the bonus token. ``draft_probs`` (float32 ``[drafts, vocab]``) are the
        draft model's distributions; None means point masses (n-gram and greedy drafters).
        The sampling parameters are one per request; the processing inputs one per target
        row. ``max_drafts`` sets the output width (needed only for CSR offsets on the GPU,
        where reading them would wait for the device).
        """
        x, place, u16_as_bf16 = _arrays.logits_in(target_logits, "target_logits")
        if x.ndim != 2:
            raise ValueError(
                f"shape mismatch: target_logits must be [rows, vocab], got {tuple(x.shape)}"
            )
        rows, vocab = int(x.shape[0]), int(x.shape[1])
        if isinstance(draft_tokens, tuple):
            if len(draft_tokens) != 2:
                raise ValueError("draft_tokens: a CSR tuple holds 2 arrays (offsets, tokens)")
            kinds = ("u32", "u32")
            offsets, tokens = (_arrays.device_array(a, "draft_tokens", k, place)
                               for a, k in zip(draft_tokens, kinds))
            if max_drafts is None:  # read back: a wait for the device with CUDA offsets
                host = np.asarray(_arrays.to_host(offsets)).astype(np.int64)
                max_drafts = int(np.diff(host).max()) if host.size > 1 else 0
        else:
            lists = [list(d) for d in draft_tokens]
            (offsets, tokens), lengths = _arrays.csr(lists, "draft_tokens", len(lists), place)
            if max_drafts is None:
                max_drafts = int(lengths.max()) if lengths.size else 0
        requests = int(offsets.shape[0]) - 1
        if requests < 0:
            raise ValueError("draft_tokens: offsets need requests + 1 entries (at least one)")
        probs = None
        if draft_probs is not None:
            probs = _arrays.device_array(draft_probs, "draft_probs", "f32", place)
        params = self._params(place, requests, temperature, top_k, top_p, min_p, seed, step)
        processing = _processing(
            place, rows, vocab, allowed_mask, banned_tokens, logit_bias, prompt_tokens,
            output_tokens, repetition_penalty, frequency_penalty, presence_penalty, max_list_entries,
        )
        width = int(max_drafts) + 1
        if out is None:
            out = VerifyResult(
                accepted=place.empty((requests,), "i32"),
                tokens=place.empty((requests, width), "i32"),
                logprobs=place.empty((requests, width), "f32"),
                status=place.empty((requests,), "i32"),
            )
        self._native.verify(
            x, offsets, tokens, probs, out.accepted, out.tokens, out.logprobs, out.status,
            method=method, numerics=numerics, processing=processing,
            u16_as_bf16=u16_as_bf16, stream=place.stream, params=params,
        )
        return out


def _doc(*parts: Optional[str]) -> str:
    return "\n\n".join(_inspect.cleandoc(p) for p in parts if p)


def _like(method):
    """Gives a module-level function `method`'s signature (without self) and documentation."""

    def decorate(fn):
        sig = _inspect.signature(method)
        fn.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
        fn.__doc__ = _doc(fn.__doc__, method.__doc__)
        return fn

    return decorate


Sampler.sample.__doc__ = _doc(Sampler.sample.__doc__, _PROCESSING_DOC)
Sampler.verify.__doc__ = _doc(Sampler.verify.__doc__, _PROCESSING_DOC)


def _processing(
    place, rows, vocab, allowed_mask, banned, bias, prompt, output, rep, freq, pres,
    max_list_entries=None,
):
    """The processing inputs as the native side takes them (None: no processing), with the
    most list entries any one row has (what the GPU's per-row edit table is sized for): the
    caller's `max_list_entries`, else counted on the host (CUDA CSR offsets read back)."""
    off = _arrays.is_scalar
    if (allowed_mask is None and banned is None and bias is None and prompt is None
            and output is None and off(rep) and off(freq) and off(pres)
            and (rep, freq, pres) == (1.0, 0.0, 0.0)):
        return None  # the common case, decided without building anything
    d = {}
    entries = np.zeros(rows, dtype=np.int64)

    def lists(value, name, prefix, values=False):
        arrays, lengths = _arrays.csr(value, name, rows, place, values=values)
        if lengths is None and max_list_entries is None:
            lengths = _arrays.row_lengths(arrays[0], rows)
        if lengths is not None:  # else the native side says what is wrong with the offsets
            entries[:] += lengths
        keys = ["offsets", "tokens", "values"] if values else ["offsets", "tokens"]
        d.update({f"{prefix}_{k}": a for k, a in zip(keys, arrays)})

    if allowed_mask is not None:
        d["allowed_mask"] = _arrays.allowed_mask(allowed_mask, rows, vocab, place)
    if banned is not None:
        lists(banned, "banned_tokens", "banned")
    if bias is not None:
        lists(bias, "logit_bias", "bias", values=True)
    if prompt is not None:
        lists(prompt, "prompt_tokens", "prompt")
    if output is not None:
        lists(output, "output_tokens", "output")
    if rows and any(k != "allowed_mask" for k in d):  # some lists were given
        d["max_row_entries"] = int(entries.max() if max_list_entries is None else max_list_entries)
    penalties = [rep, freq, pres]
    names = ["repetition_penalty", "frequency_penalty", "presence_penalty"]
    if not all(_arrays.is_scalar(p) for p in penalties) or (rep, freq, pres) != (1.0, 0.0, 0.0):
        cols = []
        for p, name in zip(penalties, names):
            if _arrays.is_scalar(p):
                cols.append(np.full(rows, float(p), dtype=np.float32))
            else:
                col = _arrays.host_array(p, name, "f32")
                if col.shape != (rows,):
                    raise ValueError(f"{name}: shape {col.shape} (expected ({rows},))")
                cols.append(col)
        d["penalties"] = _arrays.device_array(np.stack(cols, axis=1), "penalties", "f32", place)
    return d or None


# The module-level functions' samplers: one a device and a thread (a Sampler serves one call
# at a time).
_default_samplers = threading.local()


def _default_sampler(logits: Any) -> Sampler:
    key = str(logits.device) if _arrays.is_torch(logits) else "cpu"
    samplers = _default_samplers.__dict__.setdefault("by_device", {})
    if key not in samplers:
        samplers[key] = Sampler()
    return samplers[key]


@_like(Sampler.sample)
def sample(logits: Any, **kwargs: Any) -> SampleResult:
    """:meth:`Sampler.sample` with a module-wide sampler for the logits' device (the GPU
    workspaces persist across calls). Same arguments, same results."""
    return _default_sampler(logits).sample(logits, **kwargs)


@_like(Sampler.verify)
def verify(target_logits: Any, draft_tokens: Any, **kwargs: Any) -> VerifyResult:
    """:meth:`Sampler.verify` with a module-wide sampler for the logits' device."""
    return _default_sampler(target_logits).verify(target_logits, draft_tokens, **kwargs)




def reference(logits: Any, **kwargs: Any) -> SampleResult:
    """:func:`sample` on the CPU: CUDA tensors are copied to the host first (waiting for the
    device). With ``numerics="fast"`` this is the exact f64 reference; with ``"invariant"``
    the twin that reproduces the GPU's invariant tokens bit for bit. Per-row parameter arrays
    are copied to the host too."""
    host = {k: _arrays.to_host(v) for k, v in kwargs.items()}
    return _default_sampler(np.empty(0)).sample(_arrays.to_host(logits), **host)


def compare(
    logits: Any,
    tokens: Any,
    *,
    temperature: Any = 1.0,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    seed: Any = 0,
    step: Any = 0,
    method: str = "gumbel",
) -> list:
    """Diffs each row's token (from the GPU, or any implementation) against the exact
    reference drawn with the same parameters and random stream. Returns one ``(kind, why)`` a
    row: ``"same"``, ``"explained"`` (the two differ by float rounding at a top-p / min-p
    boundary or a Gumbel near-tie, and ``why`` says which and by how much) or
    ``"unexplained"`` (a bug). CUDA arrays are copied to the host first."""
    x, _, u16_as_bf16 = _arrays.logits_in(_arrays.to_host(logits))
    place = _arrays.Place(False, False, None, 0)
    rows = int(x.shape[0]) if x.ndim == 2 else 0
    host = {k: _arrays.to_host(v) for k, v in dict(
        temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, seed=seed, step=step
    ).items()}
    params = _default_sampler(x)._params(place, rows, **host)
    drawn = _arrays.host_array(_arrays.to_host(tokens), "tokens", "i32")
    return _compare(x, drawn, method=method, u16_as_bf16=u16_as_bf16, params=params)
