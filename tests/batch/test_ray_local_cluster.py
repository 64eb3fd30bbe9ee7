"""`tinylm batch --ray` with no address starts a local Ray cluster for the job and stops it at the end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install tinylm[ray]")

from tinylm.batch import BatchJob, run_local

from .conftest import read_jsonl, texts, write_jsonl

pytestmark = pytest.mark.slow


def test_ray_without_an_address_runs_on_a_local_cluster_of_its_own(tiny_models, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", texts(6))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "tinylm.cli", "batch", str(tiny_models["encoder"]), str(src), str(out)]
    cmd += ["--task", "embed", "--backend", "torch", "--ray", "--workers", "2", "--batch-size", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "6 rows written" in done.stderr
    clean = tmp_path / "clean.jsonl"
    run_local(BatchJob(model=str(tiny_models["encoder"]), input=src, output=clean, task="embed", backend="torch"))
    expected = {r["id"]: r["embedding"] for r in read_jsonl(clean)}
    got = {r["id"]: r["embedding"] for r in read_jsonl(out)}
    assert got.keys() == expected.keys()
    for key, vec in got.items():
        np.testing.assert_allclose(vec, expected[key], atol=1e-5)
