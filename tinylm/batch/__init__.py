"""`tinylm batch`: JSON Lines in, JSON Lines out, resumable, exactly one output line per input id.

    from tinylm.batch import BatchJob, run_local
    run_local(BatchJob(model="support-embedder", input=Path("in.jsonl"), output=Path("out.jsonl"), task="embed"))

The same job runs on a Ray cluster with `tinylm.ray.run_on_ray` (`tinylm batch --ray`). This package never
imports Ray.
"""

from .job import BatchJob, BatchReport, pending_rows, run_local
from .output import OutputFile
from .process import process_rows
from .progress import Progress
from .rows import INPUT_FIELD, TASKS, Row, Task, read_rows

__all__ = [
    "BatchJob",
    "BatchReport",
    "run_local",
    "pending_rows",
    "OutputFile",
    "process_rows",
    "Progress",
    "Row",
    "Task",
    "TASKS",
    "INPUT_FIELD",
    "read_rows",
]
