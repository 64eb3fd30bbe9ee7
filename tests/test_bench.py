"""`tinylm bench`: separate processes per row, a table, JSON, a saved ranking that auto-choice can use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tinylm
from tinylm import bench, ranking
from tinylm.cli import main

pytest.importorskip("tinylm_torch", reason="the bench test measures the torch backend (pip install -e backends/torch)")
pytest.importorskip("transformers", reason="the test model is built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tinylm.testing.models import build_model

    return build_model("smollm", tmp_path_factory.mktemp("bench") / "m")


def test_bandwidth_is_measured():
    assert 0.1 < bench.memory_bandwidth(size_mb=16, repeats=2) < 10_000


def test_bench_measures_rows_and_saves_a_ranking(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    argv = [
        "bench",
        str(folder),
        "--backends",
        "torch",
        "--precisions",
        "fp32",
        "bf16",
        "--new-tokens",
        "4",
        "--runs",
        "1",
        "--json",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bandwidth_gbs"] > 0
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    for key in (("torch", "fp32"), ("torch", "bf16")):
        row = rows[key]
        assert not row["error"], row["error"]
        assert row["cold_load_s"] > 0 and row["warm_load_s"] > 0 and row["ttft_ms"] > 0
        assert row["decode_tps_min"] <= row["decode_tps"] <= row["decode_tps_max"]
        assert row["peak_rss_mb"] > 10 and 0 < row["roofline_fraction"]
    assert sorted(ranking.saved_ranking(folder)) == [("torch", "bf16"), ("torch", "fp32")]


def test_unavailable_backends_are_reported_not_dropped(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    plan, skipped, _ = bench._plan(bench.BenchConfig(model=str(folder), backends=("Torch", "coreml")))
    assert all(b == "torch" for b, _ in plan)
    assert [r.backend for r in skipped] == ["coreml"] and "macOS" in skipped[0].error
    table = bench.format_table(skipped, 10.0)
    assert "not measured" in table and "coreml" in table


def test_an_unknown_backend_is_an_error_that_lists_the_registered_ones(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    with pytest.raises(tinylm.UnknownBackend, match=r"'nosuch'.*torch.*Fix"):
        bench._plan(bench.BenchConfig(model=str(folder), backends=("torch", "nosuch")))
    assert main(["bench", str(folder), "--backends", "nosuch"]) != 0
    assert "unknown backend 'nosuch'" in capsys.readouterr().err


def test_a_precision_no_backend_offers_is_an_error_and_a_partial_one_a_note(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    with pytest.raises(tinylm.PrecisionUnsupported, match=r"torch does not offer precision 'int3'.*Fix"):
        bench._plan(bench.BenchConfig(model=str(folder), backends=("torch",), precisions=("int3",)))
    plan, _, notes = bench._plan(bench.BenchConfig(model=str(folder), backends=("torch",), precisions=("fp32", "int3")))
    assert plan == [("torch", "fp32")]
    assert len(notes) == 1 and "'int3'" in notes[0] and "fp32" in notes[0]


def test_auto_choice_follows_the_saved_ranking_only_when_asked(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    path = ranking.ranking_path(str(folder))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"rows": [{"backend": "torch", "precision": "fp32", "decode_tps": 99.0}]}))
    monkeypatch.setenv("TINYLM_AUTO_BENCH", "1")
    from tinylm.model import _prepare

    _, choice, _ = _prepare(folder, backend=None, device=None, precision=None, options={})
    assert choice.backend.name == "torch" and choice.reason == "bench ranking"
    monkeypatch.delenv("TINYLM_AUTO_BENCH")
    _, choice, _ = _prepare(folder, backend=None, device=None, precision=None, options={})
    assert choice.reason == "auto"


def test_loading_with_the_ranking_never_imports_the_bench_command(folder, tmp_path):
    """The saved ranking is its own module: `Model` reads it without importing `tinylm.bench` (the CLI command)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TINYLM_HOME": str(tmp_path / "home"), "TINYLM_AUTO_BENCH": "1"}
    env.pop("TINYLM_BACKEND", None)
    code = (
        "import sys, tinylm\n"
        f"m = tinylm.load({str(folder)!r})\n"
        "print(m.backend, 'tinylm.ranking' in sys.modules, 'tinylm.bench' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["True", "False"]
    core = Path(tinylm.__file__).parent
    importers = [
        p.name
        for p in core.rglob("*.py")
        if "from .bench import" in p.read_text() or "from . import bench" in p.read_text()
    ]
    assert importers == ["cli.py"]


def test_measured_processes_cache_bytecode_like_a_default_python(folder, tmp_path, monkeypatch):
    """The warm process must read the bytecode the cold one wrote, as on a user's machine, even when this
    environment turns bytecode writing off (an editable install would otherwise recompile tinylm each load)."""
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    seen = []

    def spawn(job, env):
        seen.append(env)
        return {"load_s": 0.1, "device": "cpu"}

    monkeypatch.setattr(bench, "_spawn", spawn)
    monkeypatch.setattr(bench, "memory_bandwidth", lambda: 10.0)
    bench.run_bench(bench.BenchConfig(model=str(folder), backends=("torch",), precisions=("fp32",)))
    assert len(seen) == 2 and all("PYTHONDONTWRITEBYTECODE" not in env for env in seen)


def test_artifact_bytes_are_the_inventory_not_the_machine_copies(tmp_path):
    from tinylm.artifacts import MARKER

    (tmp_path / "model.onnx").write_bytes(b"g" * 10)
    (tmp_path / "model.onnx.data").write_bytes(b"w" * 1000)
    (tmp_path / "compiled" / "key").mkdir(parents=True)
    (tmp_path / "compiled" / "key" / "model.onnx.data").write_bytes(b"p" * 5000)  # this machine's packed copy
    files = {"model.onnx": {"size": 10}, "model.onnx.data": {"size": 1000}}
    (tmp_path / MARKER).write_text(json.dumps({"files": files}))
    assert bench._folder_bytes(tmp_path) == 1010
    (tmp_path / MARKER).unlink()  # a plain model folder: its weights and graphs, wherever they are
    assert bench._folder_bytes(tmp_path) == 6010


def test_backend_auto_measures_what_a_load_naming_nothing_runs(folder, tmp_path, monkeypatch):
    """`--backends auto` adds one row, whatever --precisions says: the automatic choice's backend and precision."""
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    plan, _, _ = bench._plan(bench.BenchConfig(model=str(folder), backends=("auto", "torch"), precisions=("fp32",)))
    assert plan == [("torch", "fp32"), ("auto", "auto")]
    out = bench._child({"model": str(folder), "backend": "auto", "precision": "auto", "load_only": True})
    expected = tinylm.load(folder)
    assert (out["backend"], out["precision"], out["chosen_by"]) == (
        expected.backend,
        expected.precision,
        expected.chosen_by,
    )
