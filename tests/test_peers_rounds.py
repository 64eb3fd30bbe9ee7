"""benchmarks/peers.py: how rounds of the same (runtime, precision) become the one row the page shows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
peers = pytest.importorskip("peers", reason="benchmarks/peers.py imports its sibling scripts")


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
