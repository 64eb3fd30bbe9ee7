"""The tinylm `Session`: checks its inputs with `tinylm.inputs`, owns the KV cache (a `tinylm.inputs.CacheSlot`),
runs the model.

Everything else a user sees — tokenization, sampling, stop strings, streaming, pooling of embeddings —
happens in the core, the same for every backend.

Rows (`Capabilities(rows=True)`, `tinylm.backend.RowSession`): the minimal version keeps one batch-1 `KVCache`
per row and runs the rows one after another inside `step_rows`. It is exact by construction (each row runs the
single-sequence path); a fast backend runs all rows in one forward pass instead (see tinylm_torch's `RowsCache`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import GenerationError, UnsupportedArchitecture

from .cache import KVCache
from .transformer import Transformer
from .weights import load_weights

__all__ = ["NumpySession", "open_session"]


class NumpySession(inputs.SlotSession):
    """One model opened on the numpy backend. Used by one thread at a time (the core serialises calls)."""

    def __init__(self, model: Transformer, *, max_rows: int = 1) -> None:
        self.model: Transformer | None = model
        self.spec: ModelSpec = model.spec
        self.capacity = self.spec.max_positions  # what the core reports as the model's context length
        self.max_rows = max_rows  # OpenRequest.rows: how many rows may be live at once
        self._rows: dict[int, KVCache] = {}  # live row id -> its own batch-1 cache
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
        self._rows = {}

    # RowSession: several independent sequences ------------------------------------------------------

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        model = self._live()
        inputs.need_kind(self.spec, "decoder", "add_rows()")
        inputs.free_rows(len(self._rows), len(prompts), self.max_rows)
        checked = [inputs.row_prompt(p, self.spec, self.capacity) for p in prompts]  # all checked before any runs
        free = (row for row in range(self.max_rows) if row not in self._rows)
        rows, logits = [], []
        try:
            for row, prompt in zip(free, checked):
                cache = KVCache(self.spec, batch=1, capacity=self.capacity)
                logits.append(model.step(prompt[None, :], cache, last_only=True)[0])  # (V,)
                self._rows[row] = cache
                rows.append(row)
        except BaseException:
            for row in rows:  # all or nothing: no row of a failed call stays live
                self._rows.pop(row, None)
            raise
        return rows, np.stack(logits).astype(np.float32) if logits else np.zeros((0, self.spec.vocab_size), np.float32)

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        listed = inputs.row_ids(rows, self._rows)
        ids = inputs.token_ids(np.asarray(token_ids).reshape(1, -1), self.spec, "step_rows()")[0]  # (R,)
        if ids.shape[0] != len(listed):
            raise GenerationError(f"step_rows() got {ids.shape[0]} ids for {len(listed)} rows. Fix: one id per row.")
        for row in listed:
            inputs.room(self.spec, cached=self._rows[row].length, new=1, capacity=self.capacity)
        # the minimal version: one row after another (a real backend runs them in one forward pass)
        out = [model.step(ids[i : i + 1, None], self._rows[row], last_only=True)[0] for i, row in enumerate(listed)]
        return np.stack(out).astype(np.float32)  # (R, V)

    def drop_row(self, row: int) -> None:
        self._rows.pop(int(row), None)

    def row_length(self, row: int) -> int:
        if int(row) not in self._rows:
            raise GenerationError(f"row {row} is not live. Fix: use a row id that add_rows returned.")
        return self._rows[int(row)].length


def open_session(request: OpenRequest) -> NumpySession:
    """A session on `request.spec` and its weights. The core has already checked the precision (fp32,
    the only one offered) and the device (cpu). `request.num_threads` is not applied: numpy's BLAS
    takes its thread count from the environment (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS)."""
    spec = request.spec
    if spec.kind == "encoder" and (spec.rope is not None or spec.no_attn_norm_layers):
        # a minimal example: it lowers the BERT-style encoders (learned positions), not ModernBERT's rotary,
        # windowed attention; refuse it by name rather than fail on a missing weight
        raise UnsupportedArchitecture(
            f"the numpy example backend runs BERT-style encoders only, not {spec.family} (rotary positions, "
            "local attention windows). Fix: load it with backend='torch', 'onnx' or 'openvino'."
        )
    return NumpySession(Transformer(request.spec, load_weights(request.spec, request.weights)), max_rows=request.rows)
