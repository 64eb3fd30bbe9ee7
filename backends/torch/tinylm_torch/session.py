"""The tinylm `Session` over a `Transformer`: numpy in, float32 numpy out, KV cache kept here."""

from __future__ import annotations

import numpy as np
import torch

from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import CapabilityError, GenerationError, PromptTooLong

from .cache import KVCache
from .transformer import Transformer
from .weights import build_transformer

__all__ = ["TorchSession", "open_session", "DTYPES"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}  # int8: the compute dtype


class TorchSession:
    """One model on torch. Used by one thread at a time (the core serialises calls)."""

    def __init__(
        self, model: Transformer, *, dtype: torch.dtype, device: str = "cpu", capacity: int | None = None
    ) -> None:
        self.model: Transformer | None = model
        self.spec: ModelSpec = model.spec
        self.device = torch.device(device)
        self.dtype = dtype
        self.capacity = capacity or self.spec.max_positions
        self._cache: KVCache | None = None

    # helpers --------------------------------------------------------------------------------

    def _live(self) -> Transformer:
        if self.model is None:
            raise GenerationError("this torch session was closed. Fix: load the model again with tinylm.load(...).")
        return self.model

    def _ids(self, token_ids: np.ndarray, what: str) -> torch.Tensor:
        ids = np.asarray(token_ids)
        if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1 or not np.issubdtype(ids.dtype, np.integer):
            raise GenerationError(
                f"{what} takes integer token ids of shape (batch, length), got {ids.dtype} {ids.shape}. "
                "Fix: pass e.g. np.array([[1, 2, 3]], dtype=np.int64)."
            )
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.spec.vocab_size:
            raise GenerationError(
                f"token id {low if low < 0 else high} is outside the vocabulary [0, {self.spec.vocab_size}). "
                "Fix: encode text with this model's tokenizer."
            )
        return torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)).to(self.device)

    def _cache_for(self, batch: int) -> KVCache:
        cache = self._cache
        if cache is not None and cache.batch == batch:
            return cache
        if cache is not None and cache.length:
            raise GenerationError(
                f"batch size changed from {cache.batch} to {batch} with {cache.length} tokens cached. "
                "Fix: call reset() before starting sequences of another batch size."
            )
        self._cache = None  # free the old buffers before allocating new ones
        with torch.device(self.device):
            self._cache = KVCache(self.spec, batch=batch, capacity=self.capacity, dtype=self.dtype)
        return self._cache

    # Session ----------------------------------------------------------------------------------

    @property
    def length(self) -> int:
        return self._cache.length if self._cache is not None else 0

    def reset(self) -> None:
        if self._cache is not None:
            self._cache.length = 0

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        model = self._live()
        if self.spec.kind != "decoder":
            raise CapabilityError(
                f"forward() needs a decoder; this {self.spec.family} model is an encoder. Fix: use embed()."
            )
        ids = self._ids(token_ids, "forward()")
        batch, new = ids.shape
        cache = self._cache_for(batch)
        if cache.length + new > self.capacity:
            raise PromptTooLong(
                f"{cache.length} cached + {new} new tokens exceed the model's context of {self.capacity}. "
                "Fix: shorten the prompt or max_new_tokens, or call reset() to start a new sequence."
            )
        with torch.inference_mode():
            logits = model.step(ids, cache, last_only=not all_positions)  # (B, V) or (B, T, V)
            return logits.to(device="cpu", dtype=torch.float32).numpy()

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        ids = self._ids(token_ids, "embed()")
        if ids.shape[1] > self.spec.max_positions:
            raise PromptTooLong(
                f"{ids.shape[1]} tokens exceed the model's {self.spec.max_positions} positions. "
                "Fix: truncate the texts (the tokenizer's max_length does)."
            )
        mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)).to(self.device)
        types = torch.from_numpy(np.ascontiguousarray(token_type_ids, dtype=np.int64)).to(self.device)
        if mask.shape != ids.shape or types.shape != ids.shape:
            raise GenerationError(
                f"embed(): token_ids {tuple(ids.shape)}, attention_mask {tuple(mask.shape)} and token_type_ids "
                f"{tuple(types.shape)} must have the same shape. Fix: pad all three to (batch, length)."
            )
        with torch.inference_mode():
            hidden = model.hidden(ids, mask, types)  # (B, T, H)
            return hidden.to(device="cpu", dtype=torch.float32).numpy()

    def close(self) -> None:
        self.model = None
        self._cache = None


def open_session(request: OpenRequest) -> TorchSession:
    """Build the model for `request` (precision, device, threads) and open a session on it."""
    torch.set_num_threads(max(1, int(request.num_threads)))
    dtype = DTYPES[request.precision]
    if request.precision == "int8":
        from .quantize import quantize_int8

        model = quantize_int8(build_transformer(request.spec, request.weights, share_memory=True))
    else:
        share = bool(request.options.get("share_memory", False))
        model = build_transformer(request.spec, request.weights, dtype=dtype, share_memory=share, decode_layout=True)
    if request.device != "cpu":
        model = model.to(request.device)
    return TorchSession(model, dtype=dtype, device=request.device)
