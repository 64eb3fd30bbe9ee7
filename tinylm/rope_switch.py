"""Sequences that cross longrope's switch length: the cached prefix is run again with the long table.

transformers rotates every position of a sequence by longrope's long table once the sequence is longer than
`original_max_position_embeddings` (`tinylm.arch.rope.switch_length`), so the keys cached while it was
shorter are stale the moment it crosses. Backends pick the table by the total length of each call; this
wrapper, once, in the core, keeps the token ids of the cached rows and, on the call that crosses the switch,
empties the cache and runs the whole sequence again. Logits then equal transformers' forward over the
whole sequence at every step. The cost is one prefill of the sequence, once per sequence (the page
docs/families.md gives the figure).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import inputs
from .arch.rope import switch_length
from .arch.spec import ModelSpec
from .backend import Session

__all__ = ["with_rope_switch", "RopeSwitchSession"]


class RopeSwitchSession:
    """A `Session` that re-runs its cached prefix when a call makes the sequence outgrow `switch`."""

    def __init__(self, inner: Session, spec: ModelSpec, switch: int) -> None:
        self.inner = inner
        self.spec = spec
        self.switch = switch
        self._ids = np.zeros((0, 0), np.int64)  # (B, length) while length <= switch; then no longer needed
        if hasattr(inner, "step"):
            self.step = self._step  # only where the backend has the fast path

    def __getattr__(self, name: str) -> Any:  # capacity, spec, device, ... of the backend's session
        return getattr(self.inner, name)

    @property
    def length(self) -> int:
        return self.inner.length

    def reset(self) -> None:
        self.inner.reset()
        self._ids = np.zeros((0, 0), np.int64)

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        cached = self.inner.length
        ids = np.asarray(token_ids)
        new = ids.shape[-1] if ids.ndim == 2 else 0
        if cached == 0 or cached > self.switch or cached + new <= self.switch or ids.shape[0] != self._ids.shape[0]:
            out = self.inner.forward(token_ids, all_positions=all_positions)
            self._remember(ids, cached)
            return out
        # this call crosses the switch: every cached key was rotated by the short table. Refuse bad input
        # before the cache is emptied, so a refused call loses nothing.
        ids = inputs.token_ids(ids, self.spec, "forward()")
        inputs.room(self.spec, cached=cached, new=new, capacity=int(getattr(self.inner, "capacity", cached + new)))
        whole = np.concatenate([self._ids, ids.astype(np.int64)], axis=1)  # (B, cached + T)
        self.inner.reset()
        out = self.inner.forward(whole, all_positions=all_positions)
        self._ids = np.zeros((0, 0), np.int64)
        return out[:, cached:] if all_positions else out

    def _remember(self, ids: np.ndarray, cached: int) -> None:
        if self.inner.length > self.switch or ids.ndim != 2:
            self._ids = np.zeros((0, 0), np.int64)
        elif cached == 0:
            self._ids = ids.astype(np.int64).copy()
        else:
            self._ids = np.concatenate([self._ids, ids.astype(np.int64)], axis=1)

    def _step(self, token_id: int) -> np.ndarray:
        if self.inner.length == self.switch:  # this step crosses: the general path
            token = inputs.token_id(token_id, self.spec, "step()")
            return self.forward(np.array([[token]], np.int64))[0]
        if self.inner.length > self.switch:
            return self.inner.step(token_id)  # type: ignore[attr-defined, no-any-return]
        out = self.inner.step(token_id)  # type: ignore[attr-defined]
        self._remember(np.array([[token_id]], np.int64), self.inner.length - 1)
        return out  # type: ignore[no-any-return]

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        return self.inner.embed(token_ids, attention_mask, token_type_ids)

    def close(self) -> None:
        self.inner.close()


def with_rope_switch(spec: ModelSpec, session: Session) -> Session:
    """`session` itself, or wrapped in a `RopeSwitchSession` when the spec's rotary tables change with the
    sequence's length (longrope whose switch lies within what the session holds)."""
    switch = switch_length(spec.rope) if spec.kind == "decoder" else None
    if switch is None or switch >= int(getattr(session, "capacity", spec.max_positions)):
        return session
    return RopeSwitchSession(session, spec, switch)
