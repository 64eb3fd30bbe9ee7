"""Rows: one stateful request holding several sequences (issue #24's contract, `tinylm.backend`).

The rows share one `InferRequest` of the compiled model (its own, beside the single-sequence one): the state holds
(n, nkv, S, hd) per layer, row i of the state being the row in slot i (`tinylm.row_slots`: live rows compact in
slots 0..n-1). Every run appends T keys to every row, so the state's S is common while rows hold different
lengths: the session keeps at which position each key sits, (n, S), HOLE where a row holds nothing, and writes
the masks by which each query attends only keys at positions <= its own (`masks.py`), its rotary table read at
its own position (`position_ids`). So:

    step_rows   one run over all n rows (a state run cannot leave rows out: the state is replaced by the run's
                rows): listed rows at their next position, the others a placeholder whose key is a HOLE
    drop_row    nothing runs: the next run's beam_idx takes the last row into the dropped row's place (and
                leaves the last out), as RowSlots moved it
    add_rows    each prompt prefilled alone on a second request (batch 1, from position 0), then its state
                spliced into the rows' state (read, concatenated on the batch axis, padded with HOLEs, set back)
    compaction  holes accumulate (a row joins with fewer keys than S; steps it sat out): when S passes twice
                the longest row (and 64), the state is read, each row's keys moved to the front, and set back
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.row_slots import RowSlots

from .masks import HOLE, biases
from .session import OpenVINOSession

__all__ = ["OpenVINORowSession"]


class OpenVINORowSession(OpenVINOSession):
    """An `OpenVINOSession` (its single-sequence methods unchanged) that also holds up to `max_rows` rows."""

    def __init__(self, compiled: Any, spec: ModelSpec, *, capacity: int, device: str, execution: str, max_rows: int):
        super().__init__(compiled, spec, capacity=capacity, device=device, execution=execution)
        self.max_rows = max_rows
        self._rows = RowSlots(spec, max_rows=max_rows, capacity=capacity)
        self._rreq: Any = None  # the rows' request (created at the first add_rows)
        self._preq: Any = None  # prefill request for joining rows
        self._keys = np.zeros((0, 0), np.int64)  # (n, S) key positions of the rows' state, HOLE where none
        self._beam = np.zeros(0, np.int32)  # (n,) the state row each slot continues at the next run

    # state -------------------------------------------------------------------------------------

    def _states(self) -> list[Any]:
        return list(self._rreq.query_state())

    def _read(self) -> list[tuple[Any, np.ndarray]]:
        """Every state variable and its value with the pending beam applied: (n, nkv, S, hd)."""
        return [(st, np.asarray(st.state.data)[self._beam]) for st in self._states()]

    @staticmethod
    def _tensors(values: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, Any]]:
        """Every state variable's new value as an OpenVINO tensor (made before any is set)."""
        from .runtime import openvino

        ov = openvino()
        return [(st, ov.Tensor(np.ascontiguousarray(value))) for st, value in values]

    def _write(self, tensors: list[tuple[Any, Any]]) -> None:
        """Set every state variable (tensors from `_tensors`); the next run's beam is the identity."""
        for st, tensor in tensors:
            st.state = tensor
        self._beam = np.arange(self._rows.live, dtype=np.int32)

    def _compact(self) -> None:
        """Move each row's keys to the front of the state: S becomes the longest row's length."""
        n = self._rows.live
        valid = self._keys != HOLE  # (n, S)
        longest = int(valid.sum(1).max())
        picked = [np.nonzero(v)[0] for v in valid]
        values = []
        for st, old in self._read():
            new = np.zeros((*old.shape[:2], longest, old.shape[3]), np.float32)  # (n, nkv, longest, hd)
            for b in range(n):
                new[b, :, : len(picked[b])] = old[b][:, picked[b]]
            values.append((st, new))
        keys = np.full((n, longest), HOLE, np.int64)
        for b in range(n):
            keys[b, : len(picked[b])] = self._keys[b, picked[b]]
        self._write(self._tensors(values))
        self._keys = keys

    def _prefill(self, prompt: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run one prompt (T,) alone from position 0: its last logits (V,) and its state, (1, nkv, T, hd) each."""
        if self._preq is None:
            self._preq = self._compiled.create_infer_request()
        self._preq.reset_state()
        t = len(prompt)
        at = np.arange(t, dtype=np.int64)[None]  # (1, T)
        feeds = {
            "input_ids": prompt[None],
            "beam_idx": np.zeros(1, np.int32),
            "position_ids": at,
            "logits_from": np.array([t - 1], np.int64),
            **biases(self.spec, at, at),
        }
        self._preq.infer(feeds)
        logits = np.array(self._preq.get_tensor("logits").data[0, 0], np.float32)
        return logits, [np.array(st.state.data) for st in self._preq.query_state()]

    # rows contract -----------------------------------------------------------------------------

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        self._live()
        inputs.row_states(self.spec, ("kv",))  # KV buffers only (Capabilities.row_states)
        checked = self._rows.prompts(prompts)
        if self._rreq is None:
            self._rreq = self._compiled.create_infer_request()
        ids, out = [], np.empty((len(checked), self.spec.vocab_size), np.float32)  # (R, V)
        try:
            for i, prompt in enumerate(checked):
                ids.append(self._add(prompt, out[i]))
        except BaseException:
            for row in reversed(ids):  # all or nothing: no row of a failed call stays live (newest first: none moves)
                self.drop_row(row)
            raise
        return ids, out

    def _add(self, prompt: np.ndarray, logits: np.ndarray) -> int:
        """One prompt prefilled alone and spliced into the rows' state; its last logits into `logits` (V,). Whatever
        can fail (the prefill, the new state's arrays and tensors) runs before the row is added."""
        logits[:], joined = self._prefill(prompt)
        t = len(prompt)
        if self._rows.live == 0:
            self._rreq.reset_state()
            old: list[tuple[Any, np.ndarray | None]] = [(st, None) for st in self._states()]
            s = t
        else:
            old = list(self._read())
            s = max(self._keys.shape[1], t)
        values = []
        for (st, before), new in zip(old, joined):
            if before is None:
                values.append((st, new))
                continue
            n, nkv, held, hd = before.shape
            both = np.zeros((n + 1, nkv, s, hd), np.float32)  # (n + 1, nkv, S, hd)
            both[:n, :, :held] = before
            both[n, :, :t] = new[0]
            values.append((st, both))
        tensors = self._tensors(values)
        keys = np.full((self._rows.live + 1, s), HOLE, np.int64)
        keys[:-1, : self._keys.shape[1]] = self._keys
        keys[-1, :t] = np.arange(t)
        row, _ = self._rows.add(t)
        self._write(tensors)  # after add: the beam covers the new row too
        self._keys = keys
        return row

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        self._live()
        slots, tokens = self._rows.step(rows, token_ids)
        n, lengths = self._rows.live, self._rows.lengths
        if self._keys.shape[1] >= max(64, 2 * int(lengths[:n].max())):
            self._compact()
        ids = np.zeros((n, 1), np.int64)  # placeholders for the rows sitting out
        ids[slots, 0] = tokens
        positions = np.zeros((n, 1), np.int64)
        positions[slots, 0] = lengths[slots]
        new = np.full((n, 1), HOLE, np.int64)
        new[slots, 0] = lengths[slots]
        keys = np.concatenate([self._keys, new], axis=1)  # (n, S + 1)
        feeds = {
            "input_ids": ids,
            "beam_idx": self._beam,
            "position_ids": positions,
            "logits_from": np.zeros(1, np.int64),
            **biases(self.spec, positions, keys),  # (n, 1, 1, S + 1) each
        }
        # copied into the request (not shared): it may read beam_idx after the run (the state's beam gather is
        # applied lazily, when a state is next read or written), after this step has replaced `_beam`
        self._rreq.infer(feeds, share_inputs=False)
        self._keys = keys
        self._beam = np.arange(n, dtype=np.int32)
        self._rows.fed(slots)
        return np.array(self._rreq.get_tensor("logits").data[slots, 0], np.float32)  # (R, V) in `rows` order

    def drop_row(self, row: int) -> None:
        moved = self._rows.drop(row)
        n = self._rows.live
        if moved is not None:
            src, dst = moved
            self._beam[dst] = self._beam[src]
            self._keys[dst] = self._keys[src]
        self._beam = self._beam[:n].copy()
        self._keys = self._keys[:n].copy()
        if n == 0 and self._rreq is not None:
            self._rreq.reset_state()
            self._keys = np.zeros((0, 0), np.int64)

    def row_length(self, row: int) -> int:
        return self._rows.length(row)

    def close(self) -> None:
        super().close()
        self._rreq = self._preq = None
