"""Turning what a caller passes into what the native module reads in place.

The native side takes DLPack arrays (read and written without a copy) and Python numbers.
Here the logits' framework decides where everything else goes: outputs are allocated in it,
on its device, and per-row parameters given as lists move to that device once per call.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


def _torch():
    """PyTorch if the caller has imported it (an array can only be a tensor then)."""
    return sys.modules.get("torch")


def is_torch(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


@dataclass
class Place:
    """Where a call runs: the logits' framework and device, and the CUDA stream."""

    torch: bool
    cuda: bool
    device: Any  # torch.device for tensors, None for NumPy
    stream: int  # CUstream as an integer; 0 on the CPU

    def empty(self, shape, kind: str):
        """An output array of `kind` ('i32' or 'f32') in the logits' framework and device."""
        if self.torch:
            torch = _torch()
            dtype = {"i32": torch.int32, "f32": torch.float32}[kind]
            return torch.empty(shape, dtype=dtype, device=self.device)
        return np.empty(shape, dtype={"i32": np.int32, "f32": np.float32}[kind])


_HOST_PLACE = Place(False, False, None, 0)


def logits_in(logits: Any, name: str = "logits"):
    """(array the native side imports, Place, whether uint16 holds bf16 bits)."""
    if is_torch(logits):
        torch = _torch()
        if logits.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{name}: dtype {logits.dtype} (expected float32, float16 or bfloat16)")
        # DLPack refuses tensors that require grad; detaching makes a new tensor object, so
        # only when needed.
        x = logits.detach() if logits.requires_grad else logits
        if logits.device.type == "cuda":
            stream = torch.cuda.current_stream(logits.device).cuda_stream
            return x, Place(True, True, logits.device, stream), False
        if logits.device.type != "cpu":
            raise ValueError(f"{name}: tensors on {logits.device} are not supported (CPU or CUDA)")
        return x, Place(True, False, logits.device, 0), False
    if not isinstance(logits, np.ndarray):
        if hasattr(logits, "__dlpack__"):
            # CuPy, JAX, ...: through PyTorch when it is there (CUDA outputs need it).
            torch = _torch()
            if torch is not None:
                return logits_in(torch.from_dlpack(logits), name)
            logits = np.from_dlpack(logits)
        else:
            logits = np.asarray(logits, dtype=np.float32)
    dtype = logits.dtype
    if dtype == np.float32 or dtype == np.float16:  # (not dtype.name: a Python-level property)
        return logits, _HOST_PLACE, False
    if dtype.name == "bfloat16":  # ml_dtypes.bfloat16: NumPy cannot export it
        return logits.view(np.uint16), _HOST_PLACE, True
    raise ValueError(f"{name}: dtype {dtype} (expected float32, float16 or bfloat16)")


_HOST = {"f32": np.float32, "u32": np.uint32, "u64": np.uint64, "i32": np.int32}


def host_array(value: Any, name: str, kind: str) -> np.ndarray:
    """`value` as a contiguous host array of `kind`, with a ValueError for what does not fit."""
    target = _HOST[kind]
    if isinstance(value, np.ndarray) and value.dtype == target and value.flags.c_contiguous:
        return value  # already what the native side reads: nothing to check or convert
    if is_torch(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
        if kind in ("u32", "u64") and arr.dtype.kind in "iu" and arr.size and arr.min() < 0:
            raise ValueError("negative")
        if kind != "f32" and arr.dtype.kind == "f":
            raise ValueError("not integers")
        return np.ascontiguousarray(arr.astype(_HOST[kind], copy=False))
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{name}: cannot be read as {np.dtype(_HOST[kind]).name} ({e})") from None


def device_array(value: Any, name: str, kind: str, place: Place):
    """`value` as an array of `kind` where the logits are: host arrays for CPU logits (in the
    logits' framework is not needed: the native side reads either), device tensors for CUDA
    ones. A CUDA tensor given for CUDA logits is used in place (converted on the device if its
    dtype differs); anything else is copied to the device, which waits for the host copy."""
    if place.cuda:
        torch = _torch()
        # The kernels read uint32 / uint64 bits; PyTorch holds them as int32 / int64.
        tdtype = {"f32": torch.float32, "u32": torch.int32, "u64": torch.int64, "i32": torch.int32}[kind]
        if is_torch(value) and value.device == place.device:
            # The serving loop's case, kept to attribute reads: the tensor as it is.
            if value.dtype == tdtype and not value.requires_grad and value.is_contiguous():
                return value
            if kind != "f32" and value.dtype.is_floating_point:
                raise ValueError(f"{name}: cannot be read as integers (dtype {value.dtype})")
            return value.detach().to(tdtype).contiguous()
        host = host_array(value, name, kind)
        signed = {"u32": np.int32, "u64": np.int64}.get(kind)
        if signed is not None:
            host = host.view(signed)
        return torch.from_numpy(host).to(place.device)
    return host_array(value, name, kind)


def is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def param(value: Any, name: str, kind: str, place: Place, rows: int):
    """A sampling parameter: a Python number (every row) or one value per row."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a number")
    if is_scalar(value):
        if kind == "f32":
            return float(value)
        if isinstance(value, (float, np.floating)) or value < 0:
            raise ValueError(f"{name}: {value!r} is not a non-negative integer")
        return int(value)
    arr = device_array(value, name, kind, place)
    if tuple(arr.shape) != (rows,):
        raise ValueError(f"{name}: shape {tuple(arr.shape)} (expected ({rows},): one value per row)")
    return arr


def csr(lists: Any, name: str, rows: int, place: Place, values: bool = False):
    """Per-row token lists as CSR arrays `(offsets, tokens[, values])` where the logits are,
    and each row's list length where the host knows it (int64; None for CUDA offsets, which
    only a wait for the device could read, and for offsets that do not fit `rows`).

    `lists` is a list of `rows` lists (of tokens; with `values`, of `{token: value}` dicts), or
    the CSR arrays themselves: `(offsets, tokens)` / `(offsets, tokens, values)`."""
    if isinstance(lists, tuple):
        want = 3 if values else 2
        if len(lists) != want:
            raise ValueError(f"{name}: a CSR tuple holds {want} arrays")
        kinds = ("u32", "u32", "f32")
        arrays = tuple(device_array(a, name, k, place) for a, k in zip(lists, kinds))
        on_device = is_torch(arrays[0]) and arrays[0].device.type == "cuda"
        return arrays, None if on_device else row_lengths(arrays[0], rows)
    lists = list(lists)
    if len(lists) != rows:
        raise ValueError(f"{name}: {len(lists)} lists for {rows} rows (one a row)")
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.zeros(rows + 1, dtype=np.uint32)
    offsets[1:] = np.cumsum(lengths)
    if values:
        tokens = [t for row in lists for t in row.keys()]
        vals = [v for row in lists for v in row.values()]
        arrays = (
            device_array(offsets, name, "u32", place),
            device_array(np.asarray(tokens, dtype=np.int64), name, "u32", place),
            device_array(np.asarray(vals, dtype=np.float32), name, "f32", place),
        )
    else:
        tokens = [t for row in lists for t in row]
        arrays = (
            device_array(offsets, name, "u32", place),
            device_array(np.asarray(tokens, dtype=np.int64), name, "u32", place),
        )
    return arrays, lengths


def row_lengths(offsets: Any, rows: int) -> Optional[np.ndarray]:
    """Each row's list length from CSR offsets (CUDA ones are copied back: a wait for the
    device); None when the offsets do not fit `rows` (the native side says what is wrong)."""
    host = np.asarray(to_host(offsets)).astype(np.int64)
    return np.diff(host) if host.shape == (rows + 1,) else None


def allowed_mask(mask: Any, rows: int, vocab: int, place: Place):
    """An allowed-token mask: int32 `[rows, ceil(vocab / 32)]` bits (xgrammar's and vLLM's
    layout: bit `t % 32` of word `t / 32`), used in place; or a boolean `[rows, vocab]` array,
    packed here (one copy)."""
    words = (vocab + 31) // 32
    dtype = str(getattr(mask, "dtype", ""))
    if dtype.endswith("bool"):
        host = host_bool(mask)
        if host.shape != (rows, vocab):
            raise ValueError(f"allowed_mask: shape {host.shape} (expected ({rows}, {vocab}))")
        padded = np.zeros((rows, words * 32), dtype=bool)
        padded[:, :vocab] = host
        packed = np.packbits(padded, axis=1, bitorder="little").view(np.int32)
        return device_array(packed, "allowed_mask", "i32", place)
    arr = device_array(mask, "allowed_mask", "i32", place)
    if tuple(arr.shape) != (rows, words):
        raise ValueError(
            f"allowed_mask: shape {tuple(arr.shape)} (expected ({rows}, {words}) int32 words, "
            f"or ({rows}, {vocab}) booleans)"
        )
    return arr


def host_bool(mask: Any) -> np.ndarray:
    if is_torch(mask):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask, dtype=bool)


def to_host(x: Any) -> Optional[Any]:
    """A CUDA tensor's host copy (waits for the device); anything else unchanged."""
    if is_torch(x) and x.device.type == "cuda":
        return x.detach().cpu()
    return x
