"""`import tinylm` is light: no ML runtime imported, nothing written, nothing started."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("torch", "onnxruntime", "openvino", "coremltools", "transformers", "tokenizers", "numpy", "ray")


def test_import_tinylm_imports_no_runtime_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import sys, json, threading; import tinylm; "
        "print(json.dumps({'mods': sorted(m for m in sys.modules), 'threads': threading.active_count(), "
        "'version': tinylm.__version__}))"
    )
    env = {**os.environ, "HOME": str(home), "TINYLM_HOME": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    report = json.loads(out.stdout)
    loaded = {m.split(".")[0] for m in report["mods"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert report["threads"] == 1
    assert list(home.iterdir()) == [] and not (tmp_path / "cache").exists()


def test_public_names_resolve_lazily():
    import importlib

    import tinylm

    for name in tinylm.__all__:
        if name == "__version__":
            continue
        home = importlib.import_module(f"tinylm.{tinylm._LAZY.get(name, 'errors')}")
        assert getattr(tinylm, name) is getattr(home, name), name  # the module's own object, not a stand-in
