"""Tiny random models and input files for the batch tests (torch backend, nothing downloaded)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "tinylm_torch", reason="the batch tests run models on the torch backend (pip install -e backends/torch)"
)
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("batch-models")
    return {"decoder": build_model("smollm", root / "dec"), "encoder": build_model("bert", root / "enc")}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prompts(n: int) -> list[dict]:
    """n generate rows: ids default to line numbers for even rows, named ids for odd ones."""
    return [
        {"prompt": f"Ticket {i}: my parcel is late"} if i % 2 == 0 else {"id": f"t{i}", "prompt": f"Hi {i}"}
        for i in range(n)
    ]


def chats(n: int) -> list[dict]:
    return [{"id": i, "messages": [{"role": "user", "content": f"Where is order {i}?"}]} for i in range(n)]


def texts(n: int) -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"refund request number {i} " * (1 + i % 5)} for i in range(n)]


def by_id(rows: list[dict]) -> dict[str, dict]:
    """Rows keyed by their JSON-encoded id; an id written twice fails the test."""
    keyed = {json.dumps(r["id"]): r for r in rows}
    assert len(keyed) == len(rows), "an id was written twice"
    return keyed


def run_clean(model: Path, src: Path, out: Path, task: str, **generation) -> dict[str, dict]:
    """The rows of an uninterrupted in-process run on the torch backend, keyed by id."""
    from tinylm.batch import BatchJob, run_local

    run_local(BatchJob(model=str(model), input=src, output=out, task=task, backend="torch", generation=generation))
    return by_id(read_jsonl(out))


def batch_cli(*args: str) -> list[str]:
    """`tinylm batch ARGS` on the torch backend as a subprocess command line."""
    return [sys.executable, "-m", "tinylm.cli", "batch", *args, "--backend", "torch", "--no-progress"]


def wait_for_rows(out: Path, count: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Return once `out` holds `count` rows; fail if `proc` exits first or the time runs out."""
    deadline = time.time() + timeout
    while not out.exists() or out.read_bytes().count(b"\n") < count:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else proc.returncode
        assert time.time() < deadline, "the job wrote too little in time"
        time.sleep(0.05)


def kill_9_then_rerun(args: list[str], out: Path, total: int) -> None:
    """Start `tinylm batch ARGS`, kill -9 the driver once it wrote 3 of `total` rows, rerun it: it must resume."""
    proc = subprocess.Popen(batch_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_rows(out, 3, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = out.read_bytes().count(b"\n")
    assert killed_at < total, "the job finished before it was killed; make it longer"
    rerun = subprocess.run(batch_cli(*args), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {killed_at} of {total} rows" in rerun.stderr
