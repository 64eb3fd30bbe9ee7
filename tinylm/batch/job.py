"""A batch job: what to run on which file, and running it in this process (no Ray imported)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .output import OutputFile
from .process import process_rows
from .rows import Row, Task, id_key, read_rows

__all__ = ["BatchJob", "BatchReport", "pending_rows", "run_local"]


@dataclass(frozen=True, kw_only=True)
class BatchJob:
    """One `tinylm batch` job.

    Attributes:
        model: what `tinylm.load` takes (a folder, a bundled name, a hub id, a converted folder).
        input: JSON Lines, one row a line: `id` (default: the line number) and `prompt` | `messages` | `text`.
        output: JSON Lines written by the job; an existing file is resumed (its ids are skipped).
        task: "generate", "chat" or "embed".
        backend, device, precision: as `tinylm.load` takes them.
        generation: keyword options of `Model.generate` (max_new_tokens, temperature, seed, ...).
        normalize: unit-length embeddings (task "embed").
        batch_size: rows per call of `process_rows` (and per fsync of the output).
    """

    model: str
    input: Path
    output: Path
    task: Task
    backend: str | None = None
    device: str | None = None
    precision: str | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)
    normalize: bool = True
    batch_size: int = 16

    def load(self) -> Any:
        from ..model import load

        return load(self.model, backend=self.backend, device=self.device, precision=self.precision)

    def process(self, model: Any, rows: Sequence[Row]) -> list[dict[str, Any]]:
        return process_rows(model, rows, task=self.task, generation=self.generation, normalize=self.normalize)


@dataclass(frozen=True, kw_only=True)
class BatchReport:
    """How a run went: `rows` in the input, `skipped` (already in the output), `written` now, `seconds`."""

    rows: int
    skipped: int
    written: int
    seconds: float


def pending_rows(job: BatchJob, out: OutputFile) -> tuple[list[Row], int]:
    """(the input rows not yet in the output, the number of input rows)."""
    rows = read_rows(job.input, task=job.task)
    return [r for r in rows if id_key(r.id) not in out.done], len(rows)


def drive(
    job: BatchJob,
    batches: Callable[[list[Row]], Iterable[Iterable[dict[str, Any]]]],
    *,
    on_start: Callable[[int, int], Any] | None = None,
) -> BatchReport:
    """The driver every runner shares: resume from the output, give the pending rows to `batches`, write each
    batch of results it yields as it comes (each id once), report.

    `on_start(total, already_done)` may return a progress object with `update(n)` and `close()`.
    """
    start = time.perf_counter()
    with OutputFile.open(job.output) as out:
        todo, total = pending_rows(job, out)
        progress = on_start(total, total - len(todo)) if on_start else None
        written = 0
        if todo:
            for results in batches(todo):
                n = out.write(results)
                written += n
                if progress:
                    progress.update(n)
        if progress:
            progress.close()
    return BatchReport(rows=total, skipped=total - len(todo), written=written, seconds=time.perf_counter() - start)


def run_local(job: BatchJob, *, on_start: Callable[[int, int], Any] | None = None) -> BatchReport:
    """Run `job` in this process, `job.batch_size` rows at a time, resuming an existing output (see `drive`)."""

    def batches(todo: list[Row]) -> Iterator[list[dict[str, Any]]]:
        with job.load() as model:
            for i in range(0, len(todo), job.batch_size):
                yield job.process(model, todo[i : i + job.batch_size])

    return drive(job, batches, on_start=on_start)
