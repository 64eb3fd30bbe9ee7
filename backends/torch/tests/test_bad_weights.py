"""Broken model folders raise typed tinylm errors that say how to fix them, and no pickle is ever loaded."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.numpy import load_file, save_file

import tinylm
from tinylm.errors import ModelFileError, WeightsError


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a pickle loader was called")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def folder(model_folder, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model_folder("llama"), copy)
    return copy


def test_truncated_safetensors(folder):
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"truncated or corrupted.*Fix:"):
        tinylm.load(folder, backend="torch")


def test_missing_tensor(folder):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, path)
    with pytest.raises(WeightsError, match=r"layers\.1\.mlp\.down\.weight.*Fix:"):
        tinylm.load(folder, backend="torch")


def test_config_disagrees_with_weights(folder):
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"has shape .* config\.json implies .*Fix:"):
        tinylm.load(folder, backend="torch")


def test_only_a_pickle_checkpoint(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(WeightsError, match=r"pickle.*Fix:.*safetensors"):
        tinylm.load(folder, backend="torch")


def test_errors_are_model_file_errors(folder):
    (folder / "model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ModelFileError, match="Fix:"):
        tinylm.load(folder, backend="torch")
