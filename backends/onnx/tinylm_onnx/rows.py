"""Rows: one session holding several independent sequences (issue #24's contract, `tinylm.backend`).

GroupQueryAttention reads each row's own length from seqlens_k (the graph derives each row's positions from it
too), so rows of different lengths decode in one run with a batch dimension:

    K/V buffers   one per layer, (max_rows, nkv, room, hd): slot s holds row s's cache, room grows by doubling
                  (as the single-sequence session's) up to the capacity; bound as GQA's past and present
    live rows     compact in slots 0..n-1 (`tinylm.row_slots`): dropping a row moves the last slot's cache into
                  its place, so a step over all live rows runs on the contiguous view [0, n) of every buffer
    a step        one run over the slots [a, b) spanning the listed rows; a live row inside the span that was
                  not listed runs along with a placeholder token at its next position (seqlens_k = its length):
                  its keys land past what it holds and the next real step overwrites them, its logits are
                  dropped, its length stays. A row at the full context (no position to scribble on), or on the
                  other side of longrope's switch (the table is chosen per run), splits the span.
    add_rows      one run per prompt on its slot's (1, ...) view (measured against one right-padded run in
                  docs/backends/onnx.md, "Rows"), of the tokens after the longest prefix a slot already holds
                  (`RowSlots.shared_prefix`: a live row's prompt, or a dropped row's left in its slot), whose
                  keys are copied instead; at least MIN_RUN tokens run, so the logits are a whole prefill's,
                  bit for bit (`session.py`). Not across longrope's switch (its prefix keys depend on the table
                  the whole length picks)

Each span [a, b) gets its own IOBinding (bound once: 4 buffers per layer, the step's ids, lengths and logits),
kept until the buffers grow; a steady step binds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.rope import switch_length
from tinylm.arch.spec import ModelSpec
from tinylm.row_slots import RowSlots

from .session import MIN_RUN, OnnxSession, _ptr

__all__ = ["OnnxRowSession"]


class _Span:
    """An IOBinding over slots [a, b) of the row buffers, with its own step inputs and logits."""

    def __init__(self, sess: Any, buffers: list[tuple[np.ndarray, np.ndarray]], a: int, b: int, vocab: int) -> None:
        self.io = sess.io_binding()
        n = b - a
        for i, (k, v) in enumerate(buffers):
            for kind, buf in (("key", k), ("value", v)):
                part = buf[a:b]  # (n, nkv, room, hd), contiguous: slots are the outer axis
                self._bind(f"past_{kind}.{i}", part)
                self._bind(f"present_{kind}.{i}", part, output=True)
        self.ids = np.zeros((n, 1), np.int64)
        self.seqlens = np.zeros(n, np.int32)  # (n,) each row's total - 1
        self.total = np.zeros((), np.int32)
        self.first = np.zeros(1, np.int64)  # logits_from
        self.logits = np.zeros((n, 1, vocab), np.float32)  # (n, 1, V)
        self._bind("seqlens_k", self.seqlens)
        self._bind("total_sequence_length", self.total)
        self._bind("logits_from", self.first)
        self.stepping = False

    def _bind(self, name: str, a: np.ndarray, *, output: bool = False) -> None:
        (self.io.bind_output if output else self.io.bind_input)(name, "cpu", 0, a.dtype, list(a.shape), _ptr(a))

    def step(self, sess: Any) -> np.ndarray:
        """Run one token per slot (ids, seqlens, total already written); logits (n, V), a view of this span's
        buffer."""
        if not self.stepping:
            self._bind("input_ids", self.ids)
            self._bind("logits", self.logits, output=True)
            self.stepping = True
        self.first[0] = 0
        sess.run_with_iobinding(self.io)
        return self.logits[:, 0]

    def prefill(self, sess: Any, ids: np.ndarray, start: int = 0) -> np.ndarray:
        """A one-slot span: run the prompt ids (1, T) from position `start` (the slot already holds the keys
        before it); last-position logits (1, V)."""
        t = ids.shape[1]
        out = np.empty((1, 1, self.logits.shape[-1]), np.float32)
        self._bind("input_ids", ids)
        self._bind("logits", out, output=True)
        self.stepping = False
        self.seqlens[0], self.total[()], self.first[0] = start + t - 1, start + t, t - 1
        sess.run_with_iobinding(self.io)
        return out[:, 0]


class OnnxRowSession(OnnxSession):
    """An `OnnxSession` (its single-sequence methods unchanged) that also holds up to `max_rows` rows."""

    def __init__(self, session: Any, spec: ModelSpec, *, capacity: int, max_rows: int) -> None:
        super().__init__(session, spec, capacity=capacity)
        self.max_rows = max_rows
        self._rows = RowSlots(spec, max_rows=max_rows, capacity=capacity)
        self._buffers: list[tuple[np.ndarray, np.ndarray]] = []  # per layer (max_rows, nkv, room, hd) K, V
        self._row_room = 0
        self._spans: dict[tuple[int, int], _Span] = {}
        self._out = np.empty((0, spec.vocab_size), np.float32)  # (max_rows, V): step_rows' answer when reordered
        switch = switch_length(spec.rope) if spec.kind == "decoder" else None
        self._switch = switch if switch is not None and switch < capacity else None

    # buffers ----------------------------------------------------------------------------------

    def _room_for(self, total: int) -> None:
        """Grow every row buffer to hold `total` positions (doubling from 256, at most the capacity)."""
        if total <= self._row_room:
            return
        room = min(self.capacity, max(256, 2 * self._row_room, total))
        s, n = self.spec, self._rows.live
        shape = (self.max_rows, s.num_kv_heads, room, s.head_dim)  # (max_rows, nkv, room, hd)
        held = int(self._rows.lengths.max())
        grown = []
        for old in self._buffers or [(None, None)] * s.num_layers:
            pair = []
            for before in old:
                new = np.zeros(shape, np.float32)
                if before is not None:
                    new[:n, :, :held] = before[:n, :, :held]
                pair.append(new)
            grown.append((pair[0], pair[1]))
        self._buffers = grown
        self._row_room = room
        self._rows.forget_free()  # only the live rows' caches were copied
        self._spans.clear()  # bound to the old buffers

    def _span(self, a: int, b: int) -> _Span:
        span = self._spans.get((a, b))
        if span is None:
            span = self._spans[(a, b)] = _Span(self._live(), self._buffers, a, b, self.spec.vocab_size)
        return span

    def _long(self, slot: int, new: int) -> bool:
        """Whether the slot's next run reads longrope's long table (only with a switch inside the capacity)."""
        return self._switch is not None and int(self._rows.lengths[slot]) + new > self._switch

    def _runs(self, slots: np.ndarray) -> list[tuple[int, int]]:
        """Spans [a, b) covering the listed slots: consecutive listed slots join, as do the unlisted live slots
        between them that can take a placeholder token (room left, on the same side of longrope's switch)."""
        order = np.sort(slots)
        runs, a, prev = [], int(order[0]), int(order[0])
        for s in (int(x) for x in order[1:]):
            gap_ok = all(self._rows.lengths[g] < self.capacity for g in range(prev + 1, s))
            side = self._long(a, 1)
            same = all(self._long(g, 1) == side for g in range(prev + 1, s + 1))
            if not (gap_ok and same):
                runs.append((a, prev + 1))
                a = s
            prev = s
        runs.append((a, prev + 1))
        return runs

    # rows contract -----------------------------------------------------------------------------

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        self._live()
        inputs.row_states(self.spec, ("kv",))  # KV buffers only (Capabilities.row_states)
        checked = self._rows.prompts(prompts)
        if checked:
            self._room_for(max(len(p) for p in checked))
        ids, out = [], np.empty((len(checked), self.spec.vocab_size), np.float32)  # (R, V)
        try:
            for i, prompt in enumerate(checked):
                row, slot = self._rows.add(len(prompt))
                ids.append(row)
                source, start = self._rows.shared_prefix(prompt, slot, run=MIN_RUN)
                if not self._reuses:  # longrope: a prefix's keys depend on the table its whole length chose
                    start = 0
                if source != slot and start:
                    for k, v in self._buffers:  # (max_rows, nkv, room, hd)
                        k[slot, :, :start] = k[source, :, :start]
                        v[slot, :, :start] = v[source, :, :start]
                self.prefilled += len(prompt) - start
                out[i] = self._span(slot, slot + 1).prefill(self._sess, prompt[None, start:], start)
        except BaseException:
            self._unadd(ids)
            raise
        return ids, out

    def _unadd(self, rows: list[int]) -> None:
        """Drop the rows a failed `add_rows` added (all or nothing), newest first, so none moves; their slots hold
        no prompt (a failed prefill's keys may be partly written)."""
        for row in reversed(rows):
            self._rows.held_length[self._rows.slot(row)] = 0
            self.drop_row(row)

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        sess = self._live()
        slots, tokens = self._rows.step(rows, token_ids)
        lengths = self._rows.lengths
        runs = self._runs(slots)
        if len(runs) == 1 and np.array_equal(slots, np.arange(*runs[0])):  # every row of the span, in slot order
            out = None  # the span's own logits buffer is the answer
        else:
            if len(self._out) < len(slots):
                self._out = np.empty((self.max_rows, self.spec.vocab_size), np.float32)
            out = self._out[: len(slots)]  # (R, V) in the order of `rows`
        where = np.full(self.max_rows, -1, np.int64)  # slot -> index in `rows`
        where[slots] = np.arange(len(slots))
        for a, b in runs:
            self._room_for(int(lengths[a:b].max()) + 1)
            span = self._span(a, b)
            picked = where[a:b]
            listed = picked >= 0
            span.ids[:, 0] = 0  # placeholders for the unlisted live rows inside the span
            span.ids[listed, 0] = tokens[picked[listed]]
            span.seqlens[:] = lengths[a:b]  # the new token's position: each row's length
            span.total[()] = int(lengths[a:b].max()) + 1
            logits = span.step(sess)  # (b - a, V)
            if out is None:
                out = logits
            else:
                out[picked[listed]] = logits[listed]
        self._rows.fed(slots)
        return out  # a view of a buffer of this session's, valid until its next call (RowSession.step_rows)

    def drop_row(self, row: int) -> None:
        moved = self._rows.drop(row)
        if moved is not None:
            src, dst = moved
            held = int(self._rows.lengths[dst])
            for k, v in self._buffers:
                k[dst, :, :held] = k[src, :, :held]
                v[dst, :, :held] = v[src, :, :held]

    def row_length(self, row: int) -> int:
        return self._rows.length(row)

    def close(self) -> None:
        super().close()
        self._buffers = []
        self._spans.clear()
