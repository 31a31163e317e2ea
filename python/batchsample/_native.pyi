"""Type hints of the native module (python/src/lib.rs). The public API is batchsample's
__init__.py, which normalises arguments before calling these. `params` is a dict of the six
sampling parameters (temperature, top_k, top_p, min_p, seed, step), each a number or an array
of one per row; `processing` a dict of CSR arrays (see batchsample._processing)."""

from typing import Any, Optional

MAX_TOP_N: int

class NoDeviceError(RuntimeError): ...

class Sampler:
    def __init__(self, max_batch: int = 0) -> None: ...
    @property
    def device(self) -> Optional[int]: ...
    @property
    def last_logits_address(self) -> Optional[int]: ...
    def sample(
        self,
        logits: Any,
        tokens: Any,
        logprobs: Any,
        status: Any,
        top_tokens: Optional[Any],
        top_logprobs: Optional[Any],
        *,
        params: dict,
        top_n: int,
        method: str,
        numerics: str,
        processing: Optional[dict],
        logprobs_mode: str,
        u16_as_bf16: bool,
        stream: int,
    ) -> None: ...
    def verify(
        self,
        target: Any,
        draft_offsets: Any,
        draft_tokens: Any,
        draft_probs: Optional[Any],
        accepted: Any,
        tokens: Any,
        logprobs: Any,
        status: Any,
        *,
        params: dict,
        method: str,
        numerics: str,
        processing: Optional[dict],
        u16_as_bf16: bool,
        stream: int,
    ) -> None: ...
    def time_rust_calls(
        self,
        logits: Any,
        tokens: Any,
        logprobs: Any,
        status: Any,
        *,
        params: dict,
        iterations: int,
        stream: int,
    ) -> float: ...

def compare(
    logits: Any,
    tokens: Any,
    *,
    params: dict,
    method: str,
    u16_as_bf16: bool,
) -> list[tuple[str, str]]: ...
def row_seeds(base: int, rows: int) -> list[int]: ...
def gpu_available() -> bool: ...
def inspect(array: Any) -> tuple[int, list[int], list[int], str, str]: ...
