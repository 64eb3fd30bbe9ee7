"""The onnx artifact through the core's cache and `tinylm convert`: built once, loaded warm in a fresh process
without converting, listed and pruned by `tinylm cache`, exported to a folder that runs without torch, and
external-data files past a threshold."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm
from tinylm.artifacts import list_artifacts

# Refuses to import torch or transformers: the prelude of the "no torch installed" subprocess.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "tinylm_torch"):
            raise ImportError(f"{name} is blocked: this process stands for a machine without torch")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_second_load_in_a_fresh_process_converts_nothing(model_folder, tmp_path):
    home = tmp_path / "home"
    code = (
        "import time, json, tinylm, tinylm_onnx.convert as c\n"
        "calls = []\n"
        "orig = c.prepare\n"
        "c.prepare = lambda r, o, d: calls.append(o.precision) or orig(r, o, d)\n"
        f"m = tinylm.load({str(model_folder('llama'))!r}, backend='onnx', precision='int8')\n"
        "print(json.dumps({'converted': calls, 'tokens': m.generate([5, 6, 7], max_new_tokens=4).token_ids}))\n"
    )
    first = json.loads(_run(code, {"TINYLM_HOME": str(home)}).splitlines()[-1])
    second = json.loads(_run(code, {"TINYLM_HOME": str(home)}).splitlines()[-1])
    assert first["converted"] == ["int8", "fp32"]  # the artifact, then the fp32 build its perplexity is measured by
    assert second["converted"] == []
    assert first["tokens"] == second["tokens"]

    cli = [sys.executable, "-m", "tinylm.cli"]
    env = {**os.environ, "TINYLM_HOME": str(home)}
    listed = subprocess.run([*cli, "cache", "ls"], env=env, capture_output=True, text=True, check=True).stdout
    assert "onnx" in listed and "int8" in listed and "1 entry" in listed
    pruned = subprocess.run([*cli, "cache", "prune", "--backend", "onnx"], env=env, capture_output=True, text=True)
    assert pruned.returncode == 0 and "removed 1 entry" in pruned.stdout
    assert not list(home.glob("artifacts/onnx/*/model.onnx"))


def test_a_cold_load_reads_the_weights_and_parses_the_options_once(model_folder, tmp_path, monkeypatch):
    """Conversion, the fp32 baseline, the torch reference and the session share one read of the weights; the
    options are parsed once; a warm load parses the artifact's marker once (to trust it) and hands it to open."""
    from tinylm_onnx.options import BuildOptions

    from tinylm import artifacts, source

    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    reads, scans, parses, markers = [], [], [], []
    read, scan, parse, marker = (
        source.CheckpointWeights,
        source.check_finite,
        BuildOptions.parse.__func__,
        artifacts.read_marker,
    )
    monkeypatch.setattr(source, "CheckpointWeights", lambda files: reads.append(files) or read(files))
    monkeypatch.setattr(source, "check_finite", lambda w, *, where: scans.append(where) or scan(w, where=where))
    monkeypatch.setattr(
        BuildOptions, "parse", classmethod(lambda cls, *a, **k: parses.append(a) or parse(cls, *a, **k))
    )

    def counted(folder):
        meta = marker(folder)
        if meta is not None:
            markers.append(folder)
        return meta

    monkeypatch.setattr(artifacts, "read_marker", counted)
    monkeypatch.setattr(source, "read_marker", counted)
    cold = tinylm.load(model_folder("llama"), backend="onnx", precision="int8")
    meta = json.loads((cold.artifact / "tinylm-artifact.json").read_text())
    assert meta["parity"]["reference"] == "torch fp32" and meta["perplexity"]["fp32"] > 0  # all three read weights
    assert len(reads) == len(scans) == len(parses) == 1 and markers == []
    del reads[:], scans[:], parses[:]
    warm = tinylm.load(model_folder("llama"), backend="onnx", precision="int8")
    assert warm.artifact == cold.artifact and markers == [cold.artifact]
    assert reads == scans == [] and len(parses) == 1


def test_an_option_given_at_its_default_reuses_the_artifact(model_folder, monkeypatch):
    first = tinylm.load(model_folder("llama"), backend="onnx", precision="int4", parity=False)
    monkeypatch.setattr("tinylm_onnx.convert.prepare", lambda *a, **k: pytest.fail("converted again"))
    same = tinylm.load(model_folder("llama"), backend="onnx", precision="int4", parity=False, accuracy_level=4)
    assert same.artifact == first.artifact
    monkeypatch.undo()
    other = tinylm.load(model_folder("llama"), backend="onnx", precision="int4", parity=False, block_size=16)
    assert other.artifact != first.artifact


def test_converted_folder_runs_without_torch(model_folder, tmp_path):
    out = tmp_path / "llama-int8"
    cli = [sys.executable, "-m", "tinylm.cli", "convert", str(model_folder("llama")), "--backend", "onnx"]
    subprocess.run([*cli, "--precision", "int8", "--out", str(out)], check=True, capture_output=True)
    assert (out / "model.onnx").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.safetensors"))
    meta = json.loads((out / "tinylm-artifact.json").read_text())
    assert meta["precision"] == "int8" and "perplexity" in meta and meta["parity"]["reference"] == "torch fp32"
    code = BLOCK_TORCH + (
        "import json, tinylm\n"
        f"m = tinylm.load({str(out)!r})\n"
        "done = m.generate('Hello', max_new_tokens=8, ignore_eos=True)\n"
        "assert not any(n.split('.')[0] in ('torch', 'transformers') for n in sys.modules), 'torch was imported'\n"
        "print(json.dumps({'backend': m.backend, 'precision': m.precision, 'n': done.usage.completion_tokens}))\n"
    )
    got = json.loads(_run(code, {"TINYLM_HOME": str(tmp_path / "home")}).splitlines()[-1])
    assert got == {"backend": "onnx", "precision": "int8", "n": 8}
    # the first open kept this machine's optimized copy beside the export, outside its inventory
    assert list(out.glob("compiled/*/model.onnx")) and not any(n.startswith("compiled") for n in meta["files"])


def test_conversion_without_torch_records_the_onnx_reference(model_folder, tmp_path):
    code = BLOCK_TORCH + (
        "import json, tinylm\n"
        f"m = tinylm.load({str(model_folder('qwen2'))!r}, backend='onnx', precision='int4')\n"
        "m.generate([5, 6], max_new_tokens=2)\n"
        "assert 'torch' not in sys.modules\n"
    )
    _run(code, {"TINYLM_HOME": str(tmp_path / "home")})
    meta = json.loads(next((tmp_path / "home").glob("artifacts/onnx/*/tinylm-artifact.json")).read_text())
    assert meta["parity"]["reference"].startswith("onnx fp32")


def test_external_data_past_the_threshold(model_folder):
    folder = model_folder("smollm")
    model = tinylm.load(folder, backend="onnx")  # default threshold 0: weights always in model.onnx.data
    entry = next(a for a in list_artifacts() if a.meta.get("onnx", {}).get("external_data"))
    assert (entry.path / "model.onnx.data").stat().st_size > (entry.path / "model.onnx").stat().st_size
    ref = tinylm.load(folder, backend="onnx", external_data_threshold=2**31)  # inline below the threshold
    assert any(a.meta["onnx"]["external_data"] is None for a in list_artifacts() if "onnx" in a.meta)
    ids = np.arange(3, 19)
    np.testing.assert_array_equal(model.logits(ids), ref.logits(ids))


def test_import_does_not_load_the_runtime():
    code = (
        "import sys, tinylm_onnx.plugin as p\n"
        "assert p.OnnxBackend().availability().ok\n"
        "print(sorted(m for m in ('onnxruntime', 'onnx') if m in sys.modules))"
    )
    assert _run(code, {}).strip() == "[]"


def test_unknown_option_is_a_typed_error(model_folder):
    with pytest.raises(tinylm.TinyLMError, match="Fix"):
        tinylm.load(model_folder("llama"), backend="onnx", no_such_option=1)


def test_auto_selection_prefers_onnx(model_folder):
    assert tinylm.load(model_folder("llama")).backend == "onnx"


def test_capacity_option_limits_the_session(model_folder):
    model = tinylm.load(model_folder("llama"), backend="onnx", max_length=32)
    session = model._live()
    session.reset()
    session.forward(np.arange(3, 35)[None])
    with pytest.raises(tinylm.PromptTooLong, match="Fix"):
        session.forward(np.array([[5]]))
