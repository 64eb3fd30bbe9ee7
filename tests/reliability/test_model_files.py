"""Bad model folders: each a typed error naming the file and the fix; no pickle, no escaping links."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tinylm
from tinylm.errors import ModelFileError, TokenizerError, UnsupportedArchitecture, WeightsError
from tinylm.source import ModelFolder


def test_nan_weights_name_the_tensor(folder):
    weights = load_file(folder / "model.safetensors")
    name = next(n for n in weights if n.endswith("mlp.down_proj.weight"))
    weights[name] = weights[name].copy()
    weights[name][0, 0] = np.nan
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(WeightsError, match=r"mlp\.down\.weight holds 1 NaN"):
        ModelFolder(folder).weights()


def test_config_that_disagrees_with_the_weights(folder):
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"config\.json implies"):
        tinylm.load(folder, backend="torch")


def test_unparsable_tokenizer(folder):
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        tinylm.load(folder, backend="torch").generate("x")


def test_broken_config(folder):
    (folder / "config.json").write_text("{")
    with pytest.raises(ModelFileError, match=r"config\.json: not valid JSON"):
        tinylm.load(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelFileError, match="cannot describe"):
        tinylm.load(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "rwkv"}))
    with pytest.raises(UnsupportedArchitecture):
        tinylm.load(folder)


def test_symlinks_out_of_the_folder_are_refused(folder, tmp_path):
    outside = tmp_path / "secret.json"
    outside.write_text("{}")
    (folder / "generation_config.json").unlink(missing_ok=True)
    os.symlink(outside, folder / "generation_config.json")
    with pytest.raises(ModelFileError, match="outside the model folder"):
        tinylm.load(folder)


def test_hugging_face_cache_links_are_followed(folder, tmp_path):
    repo = tmp_path / "models--org--m"
    blobs, snap = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (blobs / f.name).write_bytes(f.read_bytes())
        os.symlink(os.path.relpath(blobs / f.name, snap), snap / f.name)
    model = tinylm.load(snap, backend="torch")
    assert model.generate("hi", max_new_tokens=2).usage.completion_tokens <= 2


def test_pickle_is_never_loaded(folder, monkeypatch):
    import pickle

    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    with pytest.raises(WeightsError, match="never loads pickle"):
        tinylm.load(folder, backend="torch")
