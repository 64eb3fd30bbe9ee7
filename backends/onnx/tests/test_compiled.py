"""This machine's optimized, pre-packed copy of an artifact (`compiled_cache`): written by the first open, mapped
by later ones with the same logits, replaced when the CPU or onnxruntime changes or the copy is damaged, and
never in the way of opening the artifact itself."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
import tinylm_onnx.compiled as compiled

import tinylm
from tinylm import integrity

IDS = np.arange(3, 35)  # 32 teacher-forced positions


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test starts with no artifact, so no copy (the session's shared cache keeps both)."""
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))


@pytest.fixture
def opened(monkeypatch):
    """Each `inference_session` the copy logic makes: (model path, optimized, saved)."""
    calls: list[tuple[Path, bool, bool]] = []
    real = compiled.inference_session

    def spy(model, num_threads, **options):
        calls.append((Path(model), options.get("optimized", False), options.get("save_to") is not None))
        return real(model, num_threads, **options)

    monkeypatch.setattr(compiled, "inference_session", spy)
    return calls


def _copies(model: tinylm.Model) -> list[Path]:
    return sorted((model.artifact / compiled.FOLDER).glob("*"))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_first_open_writes_the_copy_and_later_opens_map_it(model_folder, opened, precision):
    first = tinylm.load(model_folder("llama"), backend="onnx", precision=precision, parity=False)
    folder = first.artifact
    assert opened == [(folder / "model.onnx", False, True)]
    (copy,) = _copies(first)
    assert {p.name for p in copy.iterdir()} == {"model.onnx", "model.onnx.data", integrity.DIGESTS}

    again = tinylm.load(model_folder("llama"), backend="onnx", precision=precision, parity=False)
    assert opened[1:] == [(copy / "model.onnx", True, False)]
    plain = tinylm.load(model_folder("llama"), backend="onnx", precision=precision, compiled_cache=False, parity=False)
    assert len(opened) == 2  # compiled_cache=False goes around the copy
    expected = plain.logits(IDS)
    np.testing.assert_array_equal(first.logits(IDS), expected)
    np.testing.assert_array_equal(again.logits(IDS), expected)
    prompt = [5, 6, 7]
    assert again.generate(prompt, max_new_tokens=8).token_ids == plain.generate(prompt, max_new_tokens=8).token_ids


def test_compiled_cache_off_writes_nothing_and_shares_the_artifact(model_folder, monkeypatch):
    off = tinylm.load(model_folder("llama"), backend="onnx", parity=False, compiled_cache=False)
    assert not (off.artifact / compiled.FOLDER).exists()
    monkeypatch.setattr("tinylm_onnx.convert.prepare", lambda *a, **k: pytest.fail("converted again"))
    on = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    assert on.artifact == off.artifact and len(_copies(on)) == 1


def test_a_damaged_copy_is_made_again(model_folder, opened, caplog):
    model = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    (copy,) = _copies(model)
    expected = model.logits(IDS)
    graph = copy / "model.onnx"
    graph.write_bytes(b"\0" * graph.stat().st_size)  # same size; the record updated too, so only opening can tell
    integrity.write_folder_record(copy, ["model.onnx", "model.onnx.data"])

    with caplog.at_level(logging.WARNING, logger="tinylm.onnx"):
        again = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    assert "does not open" in caplog.text
    assert opened[-2:] == [(copy / "model.onnx", True, False), (model.artifact / "model.onnx", False, True)]
    np.testing.assert_array_equal(again.logits(IDS), expected)

    (copy / "model.onnx.data").write_bytes(b"")  # a changed size: not complete, so rewritten without trying it
    opened.clear()
    tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    assert opened == [(model.artifact / "model.onnx", False, True)]
    mapped = tinylm.load(model_folder("llama"), backend="onnx", parity=False)  # replaced, so mapped again
    assert opened[1:] == [(copy / "model.onnx", True, False)]
    np.testing.assert_array_equal(mapped.logits(IDS), expected)


def test_another_cpu_or_runtime_gets_its_own_copy_and_the_old_one_goes(model_folder, monkeypatch):
    model = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    (old,) = _copies(model)
    writing = old.parent / ".someone-writing"
    stale = old.parent / ".died-writing"
    writing.mkdir()
    stale.mkdir()
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    monkeypatch.setattr(compiled, "_cpu", lambda: "another cpu")
    moved = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    (new,) = [p for p in _copies(moved) if not p.name.startswith(".")]
    assert new.name != old.name and not old.exists() and not stale.exists()
    assert writing.exists()  # a fresh temporary folder may be another process's copy in progress
    np.testing.assert_array_equal(moved.logits(IDS), model.logits(IDS))


def test_a_copy_that_cannot_be_written_leaves_the_artifact_working(model_folder, monkeypatch, caplog):
    real = compiled.inference_session

    def no_room(model, num_threads, **options):
        if options.get("save_to") is not None:
            raise RuntimeError("No space left on device")
        return real(model, num_threads, **options)

    monkeypatch.setattr(compiled, "inference_session", no_room)
    with caplog.at_level(logging.WARNING, logger="tinylm.onnx"):
        model = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    assert "could not save an optimized copy" in caplog.text and "No space left" in caplog.text
    assert _copies(model) == []  # the temporary folder is gone too
    assert len(model.generate([5, 6], max_new_tokens=3).token_ids) == 3

    monkeypatch.setattr(compiled, "_writable", lambda folder: False)  # a read-only artifact folder
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tinylm.onnx"):
        tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    assert caplog.text == "" and _copies(model) == []


def test_the_key_names_the_cpu_the_runtime_and_the_artifact_files(model_folder, monkeypatch):
    folder = tinylm.load(model_folder("llama"), backend="onnx", parity=False, compiled_cache=False).artifact
    key = compiled.machine_key(folder)
    assert compiled.machine_key(folder) == key
    monkeypatch.setattr("onnxruntime.__version__", "0.0.1")
    assert compiled.machine_key(folder) != key
    monkeypatch.undo()
    os.utime(folder / "model.onnx")  # the artifact's graph rewritten
    assert compiled.machine_key(folder) != key
