"""The tinylm `Session` over a `Transformer`: numpy in, float32 numpy out, KV cache kept here."""

from __future__ import annotations

import numpy as np
import torch

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import GenerationError

from .cache import KVCache
from .transformer import Transformer
from .weights import build_transformer

__all__ = ["TorchSession", "open_session", "DTYPES"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}  # int8: the compute dtype


class TorchSession(inputs.SlotSession):
    """One model on torch. Used by one thread at a time (the core serialises calls)."""

    def __init__(
        self, model: Transformer, *, dtype: torch.dtype, device: str = "cpu", capacity: int | None = None
    ) -> None:
        self.model: Transformer | None = model
        self.spec: ModelSpec = model.spec
        self.device = torch.device(device)
        self.dtype = dtype
        self.capacity = capacity or self.spec.max_positions
        self.slot = inputs.CacheSlot(self.spec, self.capacity, self._new_cache)

    # helpers --------------------------------------------------------------------------------

    def _live(self) -> Transformer:
        if self.model is None:
            raise GenerationError("this torch session was closed. Fix: load the model again with tinylm.load(...).")
        return self.model

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def _new_cache(self, batch: int) -> KVCache:
        with torch.device(self.device):
            return KVCache(self.spec, batch=batch, capacity=self.capacity, dtype=self.dtype)

    # Session (length and reset: SlotSession) ---------------------------------------------------

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        model = self._live()
        ids, cache = self.slot.admit(token_ids)  # (B, T) int64
        with torch.inference_mode():
            logits = model.step(self._tensor(ids), cache, last_only=not all_positions)  # (B, V) or (B, T, V)
            return logits.to(device="cpu", dtype=torch.float32).numpy()

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        arrays = inputs.embed_inputs(token_ids, attention_mask, token_type_ids, self.spec)
        ids, mask, types = (self._tensor(a) for a in arrays)
        with torch.inference_mode():
            hidden = model.hidden(ids, mask, types)  # (B, T, H)
            return hidden.to(device="cpu", dtype=torch.float32).numpy()

    def close(self) -> None:
        self.model = None
        self.slot.clear()


def open_session(request: OpenRequest) -> TorchSession:
    """Build the model for `request` (precision, device, threads) and open a session on it."""
    torch.set_num_threads(max(1, int(request.num_threads)))
    dtype = DTYPES[request.precision]
    if request.precision == "int8":
        from .quantize import quantize_int8

        model = quantize_int8(build_transformer(request.spec, request.weights, share_memory=True))
    else:
        share = bool(request.options.share_memory)
        model = build_transformer(request.spec, request.weights, dtype=dtype, share_memory=share, decode_layout=True)
    if request.device != "cpu":
        model = model.to(request.device)
    return TorchSession(model, dtype=dtype, device=request.device)
