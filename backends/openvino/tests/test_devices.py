"""Devices, the stateful cache, and the artifact cache: what `tinylm backends` lists, typed errors for absent
devices and for NPU's static shapes, the KV cache living in OpenVINO state, warm loads converting nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm
from tinylm.errors import CapabilityError, DeviceUnavailable


def test_devices_are_openvinos_and_listed_by_the_cli():
    import openvino as ov
    from tinylm_openvino.plugin import OpenVINOBackend

    devices = OpenVINOBackend().devices()
    assert devices[0] == "cpu" and devices[-1] == "auto"
    assert {d.lower() for d in ov.Core().available_devices} <= set(devices)
    out = subprocess.run(
        [sys.executable, "-m", "tinylm.cli", "backends", "--json"], capture_output=True, text=True, check=True
    ).stdout
    row = next(r for r in json.loads(out)["backends"] if r["name"] == "openvino")
    assert row["status"] == "available" and row["devices"] == devices


def test_a_load_naming_no_device_runs_on_the_cpu_without_probing_the_others(model_folder, monkeypatch):
    from tinylm_openvino import devices
    from tinylm_openvino.plugin import OpenVINOBackend

    assert devices.default().lower() == OpenVINOBackend().devices()[0] == "cpu"
    monkeypatch.delenv("TINYLM_DEVICE", raising=False)
    monkeypatch.setattr(devices, "present", lambda: pytest.fail("probed every device plugin"))
    with tinylm.load(model_folder("llama"), backend="openvino", parity=False) as m:
        assert m.device == "cpu"


def test_absent_device_is_a_typed_error_listing_the_present_ones(model_folder, monkeypatch):
    with pytest.raises(DeviceUnavailable, match="present: cpu"):
        tinylm.load(model_folder("llama"), backend="openvino", device="GPU.7")
    monkeypatch.setenv("TINYLM_DEVICE", "npu")
    with pytest.raises(DeviceUnavailable, match="TINYLM_DEVICE"):
        tinylm.load(model_folder("llama"), backend="openvino")


def test_device_names_match_case_insensitively(model_folder):
    with tinylm.load(model_folder("llama"), backend="openvino", device="CPU", parity=False) as m:
        assert m.device == "cpu"
    with tinylm.load(model_folder("llama"), backend="openvino", device="Auto", parity=False) as m:
        assert m.device == "auto" and m.generate([5, 6], max_new_tokens=3).usage.completion_tokens == 3


def test_npu_explains_static_shapes(model_folder, monkeypatch):
    from tinylm_openvino import devices

    monkeypatch.setattr(devices, "present", lambda: ["CPU", "NPU", "AUTO"])
    with pytest.raises(CapabilityError, match="static shapes"):
        tinylm.load(model_folder("llama"), backend="openvino", device="NPU", parity=False)


def test_kv_cache_lives_in_openvino_state(model_folder):
    with tinylm.load(model_folder("qwen3"), backend="openvino", parity=False) as m:
        session = m._live()
        session.reset()
        session.forward(np.array([[5, 6, 7, 8]]))
        states = session._req.query_state()
        assert len(states) == 2 * m.spec.num_layers
        assert all(s.state.shape[2] == 4 for s in states)  # (B, nkv, S, hd): the 4 positions fed
        session.reset()
        assert session.length == 0


def test_warm_load_in_a_fresh_process_converts_nothing(model_folder, tmp_path):
    code = (
        "import json, tinylm, tinylm_openvino.convert as c\n"
        "calls = []\n"
        "orig = c.prepare\n"
        "c.prepare = lambda *a, **k: calls.append(1) or orig(*a, **k)\n"
        f"m = tinylm.load({str(model_folder('llama'))!r}, backend='openvino', precision='int8', parity=False)\n"
        "blobs = len(list((m.artifact / 'compiled').glob('*.blob')))\n"
        "tokens = m.generate([5, 6, 7], max_new_tokens=4).token_ids\n"
        "print(json.dumps({'converted': len(calls), 'blobs': blobs, 'tokens': tokens}))\n"
    )
    env = {**os.environ, "TINYLM_HOME": str(tmp_path / "home")}
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.splitlines()[-1]))
    assert runs[0]["converted"] == 1 and runs[1]["converted"] == 0
    assert runs[0]["blobs"] == runs[1]["blobs"] == 1  # the first open compiled it; the warm one imported it
    assert runs[0]["tokens"] == runs[1]["tokens"]


def test_compiled_cache_off_writes_no_blob_and_shares_the_artifact(model_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))  # no blob from another test's load
    with tinylm.load(model_folder("llama"), backend="openvino", parity=False, compiled_cache=False) as m:
        assert m.artifact is not None and not (m.artifact / "compiled").exists()
        assert len(m.generate([5, 6, 7], max_new_tokens=2).token_ids) == 2
        off = m.artifact
    # compiled_cache only changes how the artifact is opened: the default load reuses it, converting nothing
    monkeypatch.setattr("tinylm_openvino.convert.prepare", lambda *a, **k: pytest.fail("converted again"))
    with tinylm.load(model_folder("llama"), backend="openvino", parity=False) as m:
        assert m.artifact == off and len(list((off / "compiled").glob("*.blob"))) == 1


@pytest.mark.parametrize(
    ("capabilities", "flags", "bf16"),
    [
        (["BF16", "FP32", "INT8"], {"avx512_bf16", "amx_bf16", "amx_tile"}, True),  # Xeon with AMX
        (["BF16", "FP32", "INT8"], {"avx512_bf16", "avx512_vnni"}, False),  # Zen 4: bf16 no faster than f32
        (["FP32", "INT8"], {"avx2"}, False),  # bf16 emulated
    ],
)
def test_bf16_counts_as_native_on_a_cpu_only_with_amx(capabilities, flags, bf16, monkeypatch):
    from tinylm_openvino import devices

    class Core:
        def get_property(self, device, name):
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return capabilities

    monkeypatch.setattr(devices, "core", lambda: Core())
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    assert ("bf16" in devices.native("cpu")) is bf16
    assert {"fp32", "int8"} <= set(devices.native("cpu"))
