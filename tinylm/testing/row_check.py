"""Checking a backend's rows sessions (`Capabilities(rows=True)`) against the same model decoding alone.

`open_rows(model, n)` opens a rows session on a loaded model's artifact, as the core does for batched calls.
`RowsDriver` drives it (rows join, step, leave), keeps every row's fed tokens and the logits it returned, and
`check()` replays each row alone on the model's single-sequence session (`forward` for the prompt, then one
token at a time) and compares: logits within `atol`, and each row's greedy tokens equal to the alone run's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinylm
from tinylm import settings
from tinylm.artifacts import read_marker
from tinylm.backend import OpenRequest
from tinylm.rope_switch import with_rope_switch

__all__ = ["open_rows", "RowsDriver", "RowRecord"]


def open_rows(model: tinylm.Model, rows: int, *, options: Mapping[str, Any] | None = None) -> Any:
    """A rows session for `rows` rows on `model`'s backend and artifact (the load's `options` again)."""
    backend = model._choice.backend
    parsed = backend.capabilities.options.parse(model.precision, dict(options or {}), backend=backend.name)
    request = OpenRequest(
        spec=model.spec,
        folder=model.path,
        weights_loader=lambda: model._folder.weights(),
        precision=model.precision,
        device=model.device,
        num_threads=settings.num_threads(),
        artifact=model.artifact,
        meta=(read_marker(model.artifact) or {}) if model.artifact is not None else {},
        options=parsed,
        rows=rows,
    )
    return with_rope_switch(model.spec, backend.open(request))  # as the core wraps every session it opens


@dataclass
class RowRecord:
    """One row's life: its prompt, the tokens fed after it and the logits (V,) the rows session returned after
    the prompt and after each fed token."""

    prompt: np.ndarray
    fed: list[int] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)


class RowsDriver:
    """Drives a rows session with greedy tokens and records what each row got."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.live: dict[int, RowRecord] = {}  # row id -> its record
        self.records: list[RowRecord] = []  # every row ever added, in order

    def add(self, prompts: Sequence[np.ndarray]) -> list[int]:
        ids, logits = self.session.add_rows([np.asarray(p, np.int64) for p in prompts])
        assert logits.shape == (len(prompts), self.session.spec.vocab_size) and logits.dtype == np.float32
        for row, prompt, out in zip(ids, prompts, logits):
            assert row not in self.live, f"add_rows returned live row id {row}"
            record = RowRecord(np.asarray(prompt, np.int64), logits=[out.copy()])
            self.live[row] = record
            self.records.append(record)
            assert self.session.row_length(row) == len(prompt)
        return list(ids)

    def step(self, rows: Sequence[int] | None = None) -> None:
        """One step of `rows` (default: every live row, in id order), each fed its greedy token."""
        rows = sorted(self.live) if rows is None else list(rows)
        tokens = np.array([int(np.argmax(self.live[r].logits[-1])) for r in rows], np.int64)
        before = {r: self.session.row_length(r) for r in self.live}
        logits = self.session.step_rows(rows, tokens)
        assert logits.shape == (len(rows), self.session.spec.vocab_size)
        for r, t, out in zip(rows, tokens, logits):
            self.live[r].fed.append(int(t))
            self.live[r].logits.append(out.copy())
        for r in self.live:  # listed rows grew by one, the others are untouched
            assert self.session.row_length(r) == before[r] + (r in rows), f"row {r}: length"

    def drop(self, row: int) -> None:
        self.session.drop_row(row)
        del self.live[row]

    def check(self, alone: Any, *, atol: float = 1e-4) -> float:
        """Replay every row on `alone` (a single-sequence session); the largest logits difference seen."""
        worst = 0.0
        for i, rec in enumerate(self.records):
            alone.reset()
            expected = [np.asarray(alone.forward(rec.prompt[None])[0]).copy()]
            for t in rec.fed:
                expected.append(np.asarray(alone.forward(np.array([[t]], np.int64))[0]).copy())
            got, want = np.stack(rec.logits), np.stack(expected)  # (steps, V)
            diff = float(np.abs(got - want).max())
            assert diff <= atol, f"row {i} (prompt of {len(rec.prompt)}): logits differ by {diff:.3g} from alone"
            tokens, alone_tokens = got.argmax(-1), want.argmax(-1)
            assert (tokens == alone_tokens).all(), f"row {i}: greedy tokens {tokens} vs alone {alone_tokens}"
            worst = max(worst, diff)
        return worst
