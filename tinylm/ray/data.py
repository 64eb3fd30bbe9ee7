"""Ray Data: a callable class per actor that loads a tinylm model once and maps batches through it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.data import ActorPoolStrategy

from ..batch.process import process_rows
from ..batch.rows import INPUT_FIELD, Row, Task
from ..errors import BatchError

__all__ = ["TinyLMPredictor", "map_batches", "plain"]


def plain(value: Any) -> Any:
    """A Ray Data cell as plain Python: numpy arrays (a list column, Arrow structs) become lists, scalars Python's."""
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _column(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class TinyLMPredictor:
    """For `Dataset.map_batches`: each Ray actor loads the model once (from its node's artifact cache), then each
    batch of rows goes through the same `process_rows` as `tinylm batch` in one process.

    Reads the column `prompt` (generate), `messages` (chat) or `text` (embed), or `input_column`; adds `text`,
    `finish_reason`, `usage` and `error` (generate, chat) or `embedding` (embed, float32) and keeps the others.

    Args:
        model: what `tinylm.load` takes; a path must exist on every node (a shared folder, or the same path).
        task: "generate", "chat" or "embed".
        backend, device, precision: as `tinylm.load` takes them.
        threads: threads this actor's backend uses (`TINYLM_NUM_THREADS`); match the actor's `num_cpus`.
        generation: keyword options of `Model.generate`.
        normalize: unit-length embeddings.
        input_column: the column to read instead of the task's default.
    """

    def __init__(
        self,
        model: str,
        *,
        task: Task,
        backend: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        threads: int | None = None,
        generation: Mapping[str, Any] | None = None,
        normalize: bool = True,
        input_column: str | None = None,
    ) -> None:
        if task not in INPUT_FIELD:
            raise BatchError(f"unknown task {task!r}. Fix: use one of {', '.join(INPUT_FIELD)}.")
        if threads:
            os.environ["TINYLM_NUM_THREADS"] = str(threads)  # read when the backend opens its session, just below
        from ..model import load

        self.task = task
        self.column = input_column or INPUT_FIELD[task]
        self.generation = dict(generation or {})
        self.normalize = normalize
        self.model = load(model, backend=backend, device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise BatchError(
                f"the dataset has no column {self.column!r} (it has {', '.join(batch)}). "
                "Fix: rename the column, or pass input_column=..."
            )
        values = [plain(v) for v in batch[self.column]]
        rows = [Row(id=i, value=v) for i, v in enumerate(values)]
        records = process_rows(self.model, rows, task=self.task, generation=self.generation, normalize=self.normalize)
        out = dict(batch)
        if self.task == "embed":
            out["embedding"] = np.asarray([r["embedding"] for r in records], dtype=np.float32)  # (B, H)
            return out
        out["text"] = _column([r.get("text") for r in records])
        out["finish_reason"] = _column([r.get("finish_reason") for r in records])
        out["usage"] = _column([r.get("usage") for r in records])
        out["error"] = _column([r["error"]["message"] if "error" in r else None for r in records])
        return out


def map_batches(
    ds: Any,
    model: str,
    *,
    task: Task,
    workers: int = 1,
    threads: int = 1,
    batch_size: int = 16,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    normalize: bool = True,
    input_column: str | None = None,
    **generation: Any,
) -> Any:
    """`ds.map_batches(TinyLMPredictor, ...)` with `workers` actors of `threads` CPUs each; a killed actor is
    restarted and its batch retried. `generation` holds `Model.generate`'s options (max_new_tokens, seed, ...)."""
    return ds.map_batches(
        TinyLMPredictor,
        fn_constructor_kwargs={
            "model": str(model),
            "task": task,
            "backend": backend,
            "device": device,
            "precision": precision,
            "threads": threads,
            "generation": generation,
            "normalize": normalize,
            "input_column": input_column,
        },
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=workers),
        num_cpus=threads,
        batch_format="numpy",
    )
