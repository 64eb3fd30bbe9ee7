"""benchmarks/peers.py, the one peer harness: how rounds of the same (runtime, precision) become the one row the
pages show, which rows each page gets, and what the suite may import."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import peer_runs, peers, peers_page

SUITE = Path(peers.__file__).parent


def _row(**figures):
    return peers.Row(model="m", runtime="tinylm-onnx", precision="int8", **figures)


def test_rounds_combine_to_medians_extremes_and_the_first_cold_load():
    rounds = [
        _row(cold_load_s=9.0, warm_load_s=0.4, ttft_ms=40.0, decode_tps=100.0, decode_tps_min=90.0,
             decode_tps_max=110.0, peak_rss_mb=300.0),
        _row(cold_load_s=8.0, warm_load_s=0.3, ttft_ms=36.0, decode_tps=120.0, decode_tps_min=115.0,
             decode_tps_max=125.0, peak_rss_mb=310.0),
        _row(cold_load_s=7.0, warm_load_s=0.5, ttft_ms=38.0, decode_tps=110.0, decode_tps_min=105.0,
             decode_tps_max=112.0, peak_rss_mb=305.0),
    ]  # fmt: skip
    row = peers.combine(rounds)
    assert (row.decode_tps, row.ttft_ms, row.warm_load_s) == (110.0, 38.0, 0.4)  # medians
    assert (row.decode_tps_min, row.decode_tps_max, row.peak_rss_mb) == (90.0, 125.0, 310.0)
    assert row.cold_load_s == 9.0  # the first round's conversion


def test_a_failed_round_is_left_out_and_an_all_failed_row_keeps_its_reason():
    ok = _row(decode_tps=100.0, decode_tps_min=99.0, decode_tps_max=101.0)
    assert peers.combine([_row(error="crashed"), ok]).decode_tps == 100.0
    assert peers.combine([_row(error="not installed"), _row(error="not installed")]).error == "not installed"


def test_rows_are_grouped_by_runtime_and_precision_in_measured_order():
    rows = [_row(decode_tps=1.0), peers.Row(model="m", runtime="peer", precision="int8", decode_tps=2.0),
            _row(decode_tps=3.0)]  # fmt: skip
    combined = peers._combined(rows)
    assert [(r.runtime, r.decode_tps) for r in combined] == [("tinylm-onnx", 2.0), ("peer", 2.0)]


def _names(groups):
    return [[who if isinstance(who, str) else who.name for who in group] for group in groups]


def test_each_tinylm_backend_runs_back_to_back_with_the_peers_it_is_compared_with():
    args = argparse.Namespace(only={"tinylm", "peers"})
    decoders = [p for p in peers.PEERS.values() if p.kind == "decoder"]
    groups = _names(peers._groups(args, ["onnx", "openvino", "torch"], decoders, "int8"))
    assert groups == [
        ["onnx", "optimum", "onnxruntime-genai"],
        ["openvino", "openvino-genai"],
        ["torch"],  # transformers has no int8 row
        ["llama-cpp-python"],  # beside no backend in particular
    ]
    # a peer whose backend is not selected still runs, after the pairs
    assert _names(peers._groups(args, ["onnx"], decoders, "int4")) == [
        ["onnx", "onnxruntime-genai"],
        ["openvino-genai", "llama-cpp-python"],
    ]
    # a backend without the precision is not asked for it (`tinylm bench` refuses); one that cannot run here is,
    # so its row says why (Core ML off macOS)
    assert _names(peers._groups(args, ["coreml", "onnx", "torch"], [], "fp32")) == [["coreml"], ["onnx"], ["torch"]]
    assert _names(peers._groups(args, ["onnx", "torch"], [], "bf16")) == [["torch"]]
    only_peers = argparse.Namespace(only={"peers"})
    assert _names(peers._groups(only_peers, ["onnx"], [peers.PEERS["onnxruntime-genai"]], "int4")) == [
        ["onnxruntime-genai"]
    ]


def _results(tmp_path):
    """A run as `measure_all` records it: every runtime at the precisions it has, on the SmolLM2-shaped model."""
    rows = []
    for runtime, precisions in (
        ("tinylm-torch", ("fp32", "bf16", "int8")), ("transformers", ("fp32", "bf16")),
        ("tinylm-onnx", ("fp32", "int8", "int4")), ("onnxruntime-genai", ("fp32", "int8", "int4")),
        ("optimum", ("fp32", "int8")), ("tinylm-openvino", ("fp32", "int4")), ("openvino-genai", ("fp32",)),
        ("llama-cpp-python", ("fp32",)),
    ):  # fmt: skip
        for i, precision in enumerate(precisions):
            rows.append(peers.Row(model="smollm2", runtime=runtime, precision=precision, cold_load_s=1.0 + i,
                                  warm_load_s=0.5, ttft_ms=30.0, decode_tps=50.0 + i, decode_tps_min=49.0,
                                  decode_tps_max=52.0 + i, peak_rss_mb=300.0, artifact_bytes=10**8))  # fmt: skip
    rows.append(peers.Row(model="smollm2", runtime="tinylm-coreml", precision="-", error="runs only on macOS"))
    weights = {p: 10**8 for p in peers.PRECISIONS}
    record = {"name": "smollm2", "title": "random weights", "kind": "decoder", "status": "",
              "weight_bytes": weights, "all_weight_bytes": weights}  # fmt: skip
    import dataclasses

    return {
        "date": "2026-12-05", "quick": False, "runs": 3, "rounds": 3, "new_tokens": 128, "prompt_tokens": 32,
        "threads": 2, "load_average": 0.1, "bandwidth_gbs": 25.0, "machine": "test machine", "minutes": 1.0,
        "models": [record], "rows": [dataclasses.asdict(r) for r in rows],
    }  # fmt: skip


def _table_rows(page: str) -> list[tuple[str, str]]:
    return [tuple(cell.strip() for cell in line.split("|")[1:3]) for line in page.splitlines() if line[:2] == "| "][1:]


def _no_plot(monkeypatch):
    """The plot needs matplotlib (the bench extra); these tests are about the pages' text."""
    monkeypatch.setattr(peers_page, "plot", lambda results, out: out.write_bytes(b"png"))


def test_the_backend_pages_hold_the_backend_and_its_peers_rows_from_the_same_run(tmp_path, monkeypatch):
    _no_plot(monkeypatch)
    results = _results(tmp_path)
    written = peers_page.write(results, tmp_path)
    assert {p.name for p in written} == {"benchmarks-torch.md", "benchmarks-onnx.md", "benchmarks.md", "benchmarks.png"}
    torch_rows = _table_rows((tmp_path / "benchmarks-torch.md").read_text())
    assert sorted(torch_rows) == sorted(
        [("tinylm-torch", p) for p in ("fp32", "bf16", "int8")] + [("transformers", p) for p in ("fp32", "bf16")]
    )  # the rows the page had when torch_vs_transformers.py wrote it
    onnx_rows = _table_rows((tmp_path / "benchmarks-onnx.md").read_text())
    expected = {("tinylm-onnx", "int4"), ("onnxruntime-genai", "int4")}
    expected |= {(r, p) for r in ("tinylm-onnx", "onnxruntime-genai", "optimum") for p in ("fp32", "int8")}
    assert sorted(onnx_rows) == sorted(expected)  # the rows the page had when onnx_peers.py wrote it
    main = (tmp_path / "benchmarks.md").read_text()
    assert len(_table_rows(main.split("## Goals")[0])) == len(results["rows"])  # every row on the main page
    assert "python -m benchmarks.peers --write-docs" in main and "[tinylm-onnx vs" in main


def test_a_run_without_a_backend_leaves_its_page_alone(tmp_path, monkeypatch):
    _no_plot(monkeypatch)
    results = _results(tmp_path)
    results["rows"] = [r for r in results["rows"] if r["runtime"] != "tinylm-torch"]
    assert peers_page.backend_page(results, "t", "tinylm-torch", ("transformers",)) is None
    written = {p.name for p in peers_page.write(results, tmp_path)}
    assert "benchmarks-torch.md" not in written and "benchmarks-onnx.md" in written


def test_the_harness_renders_a_saved_run_from_the_command_line(tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(_results(tmp_path)))
    cmd = [sys.executable, "-m", "benchmarks.peers", "--from-json", str(saved)]
    out = subprocess.run(cmd, cwd=SUITE.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "| tinylm-onnx | int4 |" in out.stdout and "| llama-cpp-python | fp32 |" in out.stdout


def test_every_peer_has_a_measuring_loop_and_the_converters_its_table_says():
    assert set(peer_runs.CHILDREN) == set(peers.PEERS)
    assert {p.name for p in peers.PEERS.values() if p.converts} == set(peer_runs.CONVERTERS)


def test_the_suite_imports_no_backend_package_and_no_script_through_sys_path():
    """Measurement goes through the public API or `tinylm bench`; modules of the suite import each other as a
    package (`python -m benchmarks.NAME`)."""
    backends = ("tinylm_torch", "tinylm_onnx", "tinylm_openvino", "tinylm_coreml")
    for path in sorted(SUITE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in backends], f"{path}:{node.lineno} imports {names}"
            siblings = {p.stem for p in SUITE.glob("*.py")}
            assert not [n for n in names if n.split(".")[0] in siblings], f"{path}:{node.lineno}: a sibling by name"
    # the one sys.path change left puts llama.cpp's own source tree first, for its converter (a peer's code)
    uses = [p.name for p in SUITE.rglob("*.py") if "sys.path.insert" in p.read_text()]
    assert uses == ["peer_runs.py"]
