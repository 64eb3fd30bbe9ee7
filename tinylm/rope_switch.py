"""Sequences that cross longrope's switch length: the cached prefix is run again with the long table.

transformers rotates every position of a sequence by longrope's long table once the sequence is longer than
`original_max_position_embeddings` (`tinylm.arch.rope.switch_length`), so the keys cached while it was
shorter are stale the moment it crosses. Backends pick the table by the total length of each call; this
wrapper, once, in the core, keeps the token ids of the cached rows and, on the call that crosses the switch,
empties the cache and runs the whole sequence again. Logits then equal transformers' forward over the
whole sequence at every step; a call of several tokens on top of a cache that crosses the switch (speculative
decoding's verification) gives its positions up to the switch from a call that stays within it, as decoding them
one at a time would, and the rest from the whole sequence run again. The cost is one prefill of the sequence,
once per sequence (the page docs/families.md gives the figure). Where the backend rolls back
(`Session.truncate`), the wrapper keeps the ids past the switch too: a truncation back below the switch runs the
kept prefix again with the short table.

A rows session (`Capabilities(rows=True)`) is wrapped the same way, row by row: the wrapper keeps each row's
token ids until it outgrows the switch, and the step that makes a row cross drops that row from the backend's
session and adds it again with its whole sequence (the other rows of the step run as usual). Row ids the
wrapper hands out stay the same across that; the backend's own ids are mapped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import inputs
from .arch.rope import switch_length
from .arch.spec import ModelSpec
from .backend import Session
from .errors import GenerationError

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
        self._keep_all = hasattr(inner, "truncate")  # keep every id: a truncation may go back below the switch
        if self._keep_all:
            self.truncate = self._truncate
        self._rows: dict[int, int] = {}  # rows: our id -> the backend session's id
        self._row_ids: dict[int, np.ndarray] = {}  # rows: our id -> (length,) token ids while length <= switch
        if hasattr(inner, "add_rows"):  # only where the backend holds rows
            self.add_rows, self.step_rows = self._add_rows, self._step_rows
            self.drop_row, self.row_length = self._drop_row, self._row_length

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
        if all_positions and cached < self.switch:
            # the positions up to the switch are those of a sequence still within it (short table), as one token at
            # a time gives them (speculative decoding verifies several tokens across the switch)
            head = self.forward(ids[:, : self.switch - cached], all_positions=True)
            return np.concatenate([head, self.forward(ids[:, self.switch - cached :], all_positions=True)], axis=1)
        whole = np.concatenate([self._ids, ids.astype(np.int64)], axis=1)  # (B, cached + T)
        self.inner.reset()
        out = self.inner.forward(whole, all_positions=all_positions)
        self._ids = whole if self._keep_all else np.zeros((0, 0), np.int64)
        return out[:, cached:] if all_positions else out

    def _truncate(self, length: int) -> None:
        cached = self.inner.length
        kept = inputs.truncation(length, cached=cached, spec=self.spec)
        if cached > self.switch >= kept > 0:  # the kept keys were rotated by the long table: run them again
            prefix = self._ids[:, :kept]
            self.inner.reset()
            self.inner.forward(prefix)
        else:
            self.inner.truncate(kept)  # type: ignore[attr-defined]
        self._ids = self._ids[:, :kept]

    def _remember(self, ids: np.ndarray, cached: int) -> None:
        if ids.ndim != 2 or (self.inner.length > self.switch and not self._keep_all):
            self._ids = np.zeros((0, 0), np.int64)
        elif cached == 0:
            self._ids = ids.astype(np.int64).copy()
        else:
            self._ids = np.concatenate([self._ids, ids.astype(np.int64)], axis=1)

    def _step(self, token_id: int) -> np.ndarray:
        if self.inner.length == self.switch:  # this step crosses: the general path
            token = inputs.token_id(token_id, self.spec, "step()")
            return self.forward(np.array([[token]], np.int64))[0]
        if self.inner.length > self.switch and not self._keep_all:
            return self.inner.step(token_id)  # type: ignore[attr-defined, no-any-return]
        out = self.inner.step(token_id)  # type: ignore[attr-defined]
        self._remember(np.array([[token_id]], np.int64), self.inner.length - 1)
        return out  # type: ignore[no-any-return]

    # rows ------------------------------------------------------------------------------------

    def _inner_row(self, row: int) -> int:
        try:
            return self._rows[row]
        except (KeyError, TypeError):
            raise GenerationError(
                f"row {row!r} is not live in this session (live: {sorted(self._rows)}). "
                "Fix: use an id add_rows() returned and that was not dropped."
            ) from None

    def _add_rows(self, prompts: Any) -> tuple[list[int], np.ndarray]:
        inner, logits = self.inner.add_rows(prompts)
        ours = []
        for i, prompt in zip(inner, prompts):
            row = next(r for r in range(len(self._rows) + 1) if r not in self._rows)
            self._rows[row] = i
            ids = np.asarray(prompt, np.int64).reshape(-1)
            if len(ids) <= self.switch:
                self._row_ids[row] = ids.copy()
            ours.append(row)
        return ours, logits

    def _step_rows(self, rows: Any, token_ids: np.ndarray) -> np.ndarray:
        rows = list(rows)
        inner = [self._inner_row(r) for r in rows]
        tokens = np.asarray(token_ids)
        crossing = [i for i, r in enumerate(rows) if self.inner.row_length(inner[i]) == self.switch]
        if not crossing:
            out = self.inner.step_rows(inner, token_ids)
        else:
            rest = [i for i in range(len(rows)) if i not in crossing]
            out = np.empty((len(rows), self.spec.vocab_size), np.float32)  # (R, V)
            if rest:
                out[rest] = self.inner.step_rows([inner[i] for i in rest], tokens[rest])
            for i in crossing:  # its cached keys were rotated by the short table: run it again, whole
                token = inputs.token_id(tokens[i], self.spec, "step_rows()")
                whole = np.append(self._row_ids.pop(rows[i]), np.int64(token))
                self.inner.drop_row(inner[i])
                (self._rows[rows[i]],), logits = self.inner.add_rows([whole])
                out[i] = logits[0]
        for i, r in enumerate(rows):
            if r in self._row_ids:
                self._row_ids[r] = np.append(self._row_ids[r], np.int64(tokens[i]))
        return out

    def _drop_row(self, row: int) -> None:
        self.inner.drop_row(self._inner_row(row))
        del self._rows[row]
        self._row_ids.pop(row, None)

    def _row_length(self, row: int) -> int:
        return int(self.inner.row_length(self._inner_row(row)))

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
