"""The plugin on this OS: convert-only off macOS (with the reason and how to convert), no runtime imported
when the plugin loads, and `tinylm.load` refusing with a typed error while `tinylm.convert` works."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import tinylm
from tinylm.cli import main as cli
from tinylm.plugins import get_manager

not_macos = pytest.mark.skipif(sys.platform == "darwin", reason="checks the behaviour off macOS")


def test_plugin_import_loads_no_runtime() -> None:
    code = (
        "import sys, tinylm_coreml.plugin as p; b = p.CoreMLBackend(); b.availability(); b.devices(); "
        "print([m for m in ('coremltools', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@not_macos
def test_off_macos_it_is_convert_only() -> None:
    av = get_manager().backends()["coreml"].availability()
    assert not av.ok and av.convert_only
    assert "Core ML runs only on macOS" in av.reason and "tinylm convert" in av.hint


@not_macos
def test_backends_command_shows_convert_only(capsys: pytest.CaptureFixture[str]) -> None:
    cli(["backends", "--json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["coreml"]["status"] == "convert-only"
    assert rows["coreml"]["devices"] == ["all", "cpu", "gpu", "ane"]


@not_macos
def test_off_macos_load_raises_and_says_how_to_convert(
    model_folder: Callable[[str], Path], converted: Callable[..., tuple[Path, dict]]
) -> None:
    with pytest.raises(tinylm.BackendUnavailable, match="Core ML runs only on macOS") as err:
        tinylm.load(model_folder("llama"), backend="coreml")
    assert "tinylm convert" in str(err.value)
    artifact, _ = converted("llama")  # a converted folder fixes its backend: still refused, same reason
    with pytest.raises(tinylm.BackendUnavailable, match="Core ML runs only on macOS"):
        tinylm.load(artifact)


def test_convert_writes_a_self_contained_artifact(converted: Callable[..., tuple[Path, dict]]) -> None:
    folder, meta = converted("llama")
    assert (folder / "model.mlpackage" / "Manifest.json").is_file()
    assert {"config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert meta["backend"] == "coreml" and meta["precision"] == "fp16" and meta["stateful"]
    assert meta["parity"] is None and "macOS" in meta["parity_note"]


def test_bad_options_are_typed_errors(model_folder: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(tinylm.ConfigError, match="Fix"):
        tinylm.convert(model_folder("llama"), backend="coreml", out=tmp_path / "a", precision="int4", int4="nf4")
    with pytest.raises(tinylm.ConfigError, match="Fix"):
        tinylm.convert(model_folder("llama"), backend="coreml", out=tmp_path / "b", context_length=10**6)
    with pytest.raises(tinylm.PrecisionUnsupported):
        tinylm.convert(model_folder("llama"), backend="coreml", out=tmp_path / "c", precision="bf16")


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS Core ML runs; this checks the message elsewhere")
def test_loading_a_converted_package_off_macos_says_where_it_is(model_folder, tmp_path):
    import tinylm

    out = tinylm.convert(model_folder("llama"), backend="coreml", out=tmp_path / "pkg")
    with pytest.raises(tinylm.BackendUnavailable, match="runs only on macOS") as err:
        tinylm.load(out)
    message = str(err.value)
    assert str(out) in message and "(from argument)" not in message  # no backend was passed
    assert message.count("Fix: ") == 1
    fix = message[message.index("Fix: ") :]
    assert "copy" in fix and str(out) in fix and "tinylm convert" not in fix  # it is converted already
