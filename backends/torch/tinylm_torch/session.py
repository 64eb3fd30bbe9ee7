"""The tinylm `Session` over a `Transformer`: numpy in, float32 numpy out, KV cache kept here.

A session opened with `OpenRequest(rows=N)` is also a `tinylm.backend.RowSession`: N independent rows in one
`RowsCache` (a padded KV of N slots with per-row lengths and a mask). A row's prompt is prefilled alone, through
a view of its slot (the single-sequence path, so its logits are the same); a decode step runs every listed row in
one forward pass, each at its own position. Sessions opened for one load share the built `Transformer`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tinylm import inputs
from tinylm.arch.rope import switch_length
from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import CapabilityError, GenerationError

from .cache import KVCache, Rows, RowsCache
from .transformer import Transformer
from .weights import build_transformer

__all__ = ["TorchSession", "open_session", "DTYPES"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.bfloat16}  # int8: the compute dtype


class TorchSession(inputs.SlotSession):
    """One model on torch. Used by one thread at a time (the core serialises calls)."""

    def __init__(
        self,
        model: Transformer,
        *,
        dtype: torch.dtype,
        device: str = "cpu",
        capacity: int | None = None,
        max_rows: int = 1,
    ) -> None:
        self.model: Transformer | None = model
        self.spec: ModelSpec = model.spec
        self.device = torch.device(device)
        self.dtype = dtype
        self.capacity = capacity or self.spec.max_positions
        self.max_rows = max_rows
        self.slot = inputs.CacheSlot(self.spec, self.capacity, self._new_cache)
        self._rows: RowsCache | None = None

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
        self._rows = None

    # RowSession ------------------------------------------------------------------------------

    def _rows_cache(self) -> RowsCache:
        if self._rows is None:
            with torch.device(self.device):
                self._rows = RowsCache(self.spec, rows=self.max_rows, capacity=self.capacity, dtype=self.dtype)
        return self._rows

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        model = self._live()
        inputs.need_kind(self.spec, "decoder", "add_rows()")
        inputs.row_states(self.spec, ("kv",))  # RowsCache keeps KV only (Capabilities.row_states)
        switch = switch_length(self.spec.rope)
        if switch is not None and switch < self.capacity:
            raise CapabilityError(
                f"rows of {self.spec.family} with longrope cannot be decoded together here: a row crossing "
                f"{switch} tokens needs its whole sequence rotated again. Fix: decode one sequence at a time "
                "(tinylm's Model does so itself for this model)."
            )
        cache = self._rows_cache()
        inputs.free_rows(len(cache.lengths), len(prompts), self.max_rows)
        checked = [inputs.row_prompt(p, self.spec, self.capacity) for p in prompts]  # all checked before any runs
        free = [slot for slot in range(self.max_rows) if slot not in cache.lengths]
        rows, logits = [], []
        try:
            with torch.inference_mode():
                for slot, prompt in zip(free, checked):
                    cache.lengths[slot] = 0
                    rows.append(slot)
                    view = cache.slot(slot)  # (1, nkv, capacity, hd) views of the slot: the single-sequence prefill
                    logits.append(model.step(self._tensor(prompt[None, :]), view)[0])  # (V,)
                    cache.lengths[slot] = view.length
                    cache.written[slot] = max(cache.written[slot], view.length)
                out = torch.stack(logits) if logits else torch.zeros(0, self.spec.vocab_size)  # (R, V)
                return rows, out.to(device="cpu", dtype=torch.float32).numpy()
        except BaseException:
            for slot in rows:  # all or nothing: no row of a failed call stays live
                cache.lengths.pop(slot, None)
            raise

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        cache = self._rows_cache()
        listed = inputs.row_ids(rows, cache.lengths)
        ids = inputs.token_ids(np.asarray(token_ids).reshape(1, -1), self.spec, "step_rows()")[0]  # (R,)
        if ids.shape[0] != len(listed):
            raise GenerationError(
                f"step_rows() got {ids.shape[0]} token ids for {len(listed)} rows. Fix: pass one id per row."
            )
        for row in listed:
            inputs.room(self.spec, cached=cache.lengths[row], new=1, capacity=self.capacity)
        cache.readable(listed, max(cache.lengths[r] for r in listed) + 1)
        consecutive = listed == list(range(listed[0], listed[0] + len(listed)))
        step = Rows(
            slots=torch.tensor(listed, dtype=torch.int64, device=self.device),
            positions=torch.tensor([cache.lengths[r] for r in listed], dtype=torch.int64, device=self.device),
            first=listed[0] if consecutive else None,
        )
        with torch.inference_mode():
            logits = model.step_rows(self._tensor(ids[:, None]), cache, step)  # (R, V)
            out = logits.to(device="cpu", dtype=torch.float32).numpy()
        for row in listed:
            cache.lengths[row] += 1
        return out

    def drop_row(self, row: int) -> None:
        if self._rows is not None:
            self._rows.lengths.pop(int(row), None)

    def row_length(self, row: int) -> int:
        if self._rows is None or int(row) not in self._rows.lengths:
            raise GenerationError(f"row {row} is not live. Fix: use a row id that add_rows returned.")
        return self._rows.lengths[int(row)]


# Sessions opened for one load (one weights loader) share the built model: the single-sequence session every load
# opens and the rows session the core opens at the first batched call hold the weights once.
_BUILT: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Transformer]] = weakref.WeakKeyDictionary()
_BUILT_LOCK = threading.Lock()


def _build(request: OpenRequest, dtype: torch.dtype) -> Transformer:
    if request.precision == "int8":
        from .quantize import quantize_int8

        model = quantize_int8(build_transformer(request.spec, request.weights, share_memory=True))
    else:
        share = bool(request.options.share_memory)
        model = build_transformer(request.spec, request.weights, dtype=dtype, share_memory=share, decode_layout=True)
    if request.device != "cpu":
        model = model.to(request.device)
    return model


def _shared_model(request: OpenRequest, dtype: torch.dtype) -> Transformer:
    key = (request.precision, request.device, request.options)
    try:
        built = _BUILT.setdefault(request.weights_loader, {})
    except TypeError:  # a loader that cannot be weakly referenced: build for this session alone
        return _build(request, dtype)
    with _BUILT_LOCK:
        if key not in built:
            built[key] = _build(request, dtype)
        return built[key]


def open_session(request: OpenRequest) -> TorchSession:
    """Build the model for `request` (precision, device, threads) and open a session on it."""
    torch.set_num_threads(max(1, int(request.num_threads)))
    dtype = DTYPES[request.precision]
    model = _shared_model(request, dtype)
    return TorchSession(model, dtype=dtype, device=request.device, max_rows=max(1, int(request.rows)))
