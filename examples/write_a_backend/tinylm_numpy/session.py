"""The tinylm `Session`: checks its inputs with `tinylm.inputs`, owns the KV cache (a `tinylm.inputs.CacheSlot`),
runs the model.

Everything else a user sees — tokenization, sampling, stop strings, streaming, pooling of embeddings —
happens in the core, the same for every backend.
"""

from __future__ import annotations

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import GenerationError

from .cache import KVCache
from .transformer import Transformer
from .weights import load_weights

__all__ = ["NumpySession", "open_session"]


class NumpySession(inputs.SlotSession):
    """One model opened on the numpy backend. Used by one thread at a time (the core serialises calls)."""

    def __init__(self, model: Transformer) -> None:
        self.model: Transformer | None = model
        self.spec: ModelSpec = model.spec
        self.capacity = self.spec.max_positions  # what the core reports as the model's context length
        # one KV cache, kept while the batch size stays and rebuilt by `_new_cache` when it changes;
        # SlotSession gives `length` and `reset` from it
        self.slot = inputs.CacheSlot(self.spec, self.capacity, self._new_cache)

    def _new_cache(self, batch: int) -> KVCache:
        return KVCache(self.spec, batch=batch, capacity=self.capacity)

    def _live(self) -> Transformer:
        if self.model is None:
            raise GenerationError("this numpy session was closed. Fix: load the model again with tinylm.load(...).")
        return self.model

    # Session --------------------------------------------------------------------------------------

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        model = self._live()
        ids, cache = self.slot.admit(token_ids)  # checked: a decoder, (B, T) int64 ids, same batch, room
        return model.step(ids, cache, last_only=not all_positions)  # (B, V) or (B, T, V)

    def step(self, token_id: int) -> np.ndarray:
        """One decode token on a batch-1 cache, as `forward([[token_id]])[0]` (declared by
        `Capabilities(step=True)`; a real backend makes it faster than `forward`, e.g. with bound buffers)."""
        token = inputs.token_id(token_id, self.spec, "step()")
        return self.forward(np.array([[token]], np.int64))[0]  # (V,)

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        ids, mask, types = inputs.embed_inputs(token_ids, attention_mask, token_type_ids, self.spec)
        return model.hidden(ids, mask, types).astype(np.float32)  # (B, T, H)

    def close(self) -> None:
        self.model = None
        self.slot.clear()


def open_session(request: OpenRequest) -> NumpySession:
    """A session on `request.spec` and its weights. The core has already checked the precision (fp32,
    the only one offered) and the device (cpu). `request.num_threads` is not applied: numpy's BLAS
    takes its thread count from the environment (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS)."""
    return NumpySession(Transformer(request.spec, load_weights(request.spec, request.weights)))
