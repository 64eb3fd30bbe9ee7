"""`tinylm batch --ray`: the job of `tinylm.batch` on Ray Data. The driver reads the input, skips the ids the
output already has and writes the output itself, so resume works exactly as in one process."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import ray
import ray.data

from ..batch.job import BatchJob, BatchReport, drive
from ..batch.rows import Row
from .cluster import connected

__all__ = ["run_on_ray", "JsonRowsPredictor"]


class JsonRowsPredictor:
    """One actor of a `tinylm batch --ray` job: rows in as JSON text, output lines out as JSON text (exactly what
    the local run writes: no Arrow conversion of messages, ids or floats in between)."""

    def __init__(self, job: BatchJob, threads: int) -> None:
        os.environ["TINYLM_NUM_THREADS"] = str(threads)
        self.job = job
        self.model = job.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [Row(**json.loads(text)) for text in batch["row"]]
        lines = [json.dumps(r, ensure_ascii=False) for r in self.job.process(self.model, rows)]
        return {"line": np.asarray(lines, dtype=object)}


def run_on_ray(
    job: BatchJob,
    *,
    address: str | None = None,
    workers: int = 1,
    threads: int = 1,
    on_start: Callable[[int, int], Any] | None = None,
) -> BatchReport:
    """Run `job` on Ray Data: `workers` actors (each loads the model once, uses `threads` CPUs), `job.batch_size`
    rows per call. `address`: a running cluster ("auto", "ray://host:10001", "host:6379"); None starts a local
    one for the job (or uses the cluster this process is already connected to). Output as `run_local`'s."""

    def batches(todo: list[Row]) -> Iterator[Iterator[dict[str, Any]]]:
        with connected(address, cpus=workers * threads):
            ray.data.DataContext.get_current().enable_progress_bars = False  # the job has its own
            items = [{"row": json.dumps({"id": r.id, "value": r.value}, ensure_ascii=False)} for r in todo]
            # enough blocks for every actor to have work, not so many that each is a tiny task
            n_batches = math.ceil(len(items) / job.batch_size)
            blocks = min(len(items), max(workers, min(n_batches, 8 * workers)))
            ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                JsonRowsPredictor,
                fn_constructor_kwargs={"job": job, "threads": threads},
                batch_size=job.batch_size,
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=threads,
                batch_format="numpy",
            )
            # Ray Data restarts an actor that dies and runs its batch again (max_restarts=-1 and
            # max_task_retries=-1 are its defaults for actor pools); the driver writes each id once.
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                yield (json.loads(line) for line in batch["line"])

    return drive(job, batches, on_start=on_start)
