"""Hostile model folders: absurd config values, files that are not regular files, links that loop, names
the OS refuses. Each is a typed error with a fix, fast — never a hang (run in a subprocess with a timeout
well below a minute), never a raw OS or runtime error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tinylm
from tinylm.arch.bounds import check_bounds
from tinylm.errors import ModelFileError, ModelNotFound, TokenizerError, WeightsError
from tinylm.source import ModelFolder

TIMEOUT = 20  # seconds: the checks take well under one; a hang is what they prevent


def edit_config(folder, **values):
    config = json.loads((folder / "config.json").read_text())
    config.update(values)
    (folder / "config.json").write_text(json.dumps(config))


def run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Python code in a fresh process; a hang fails the test through the timeout."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ)
    )


LOAD = (
    "import sys, tinylm\n"
    "try:\n    tinylm.load(sys.argv[1], backend=sys.argv[2])\n"
    "except tinylm.TinyLMError as e:\n    print(type(e).__name__, e); sys.exit(3)\n"
)
INFO = "import sys; from tinylm.cli import main; sys.exit(main(['info', sys.argv[1]]))"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_billion_layers_is_refused_at_once(folder, backend):
    edit_config(folder, num_hidden_layers=1_000_000_000)
    p = run(LOAD, str(folder), backend)
    assert p.returncode == 3, p.stderr[-2000:]
    assert p.stdout.startswith("ModelFileError") and "1000000000 layers" in p.stdout and "Fix:" in p.stdout
    info = run(INFO, str(folder))
    assert info.returncode == 1 and "1000000000 layers" in info.stderr, info.stderr[-2000:]


@pytest.mark.parametrize("positions", ["100000000000", "1e11"])
def test_huge_max_position_embeddings_is_refused_before_allocating(folder, positions):
    text = (folder / "config.json").read_text()
    config = json.loads(text)
    config["max_position_embeddings"] = 0
    (folder / "config.json").write_text(
        json.dumps(config).replace('"max_position_embeddings": 0', f'"max_position_embeddings": {positions}')
    )
    with pytest.raises(
        ModelFileError,
        match=r"max_position_embeddings (is 100000000000\.0 \(float\); it must be an integer"
        r"|100000000000 needs .* GiB).*Fix:",
    ):
        tinylm.load(folder, backend="torch")


def test_bounds_accept_real_contexts_and_name_the_limit(tiny_model):
    spec = ModelFolder(tiny_model).spec
    check_bounds(spec, where="config.json", memory=2**30)  # the tiny model fits in 1 GiB
    import dataclasses

    long = dataclasses.replace(spec, max_positions=131072)  # a real long context fits a small machine
    check_bounds(long, where="config.json", memory=2**30)
    with pytest.raises(ModelFileError, match=r"this machine has 0\.0 GiB"):
        check_bounds(long, where="config.json", memory=1024)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_only_regular_files_are_opened(folder, kind, backend):
    weights = folder / "model.safetensors"
    weights.unlink()
    if kind == "fifo":
        os.mkfifo(weights)  # opening it for reading would wait for a writer forever
    else:
        weights.mkdir()
    p = run(LOAD, str(folder), backend)
    assert p.returncode == 3, p.stderr[-2000:]
    assert p.stdout.startswith("WeightsError") and "not a regular file" in p.stdout and "Fix:" in p.stdout


def test_a_fifo_config_is_refused(folder):
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    p = run(INFO, str(folder))
    assert p.returncode == 1 and "not a regular file" in p.stderr, p.stderr[-2000:]


def test_a_symlink_loop_is_a_typed_error(folder):
    (folder / "model.safetensors").unlink()
    os.symlink("model.safetensors", folder / "model.safetensors")
    with pytest.raises(ModelFileError, match=r"model\.safetensors is a symlink that cannot be followed.*Fix:"):
        tinylm.load(folder, backend="torch")


@pytest.mark.parametrize("name", ["a" * 5000, "/tmp/" + "b" * 5000, "~nosuchuser_tinylm/model"])
def test_names_the_os_refuses_are_model_not_found(name):
    with pytest.raises(ModelNotFound, match="Fix:") as caught:
        tinylm.load(name)
    assert len(str(caught.value)) < 400  # the message shows the start of the name, not 5,000 characters


def test_info_on_the_root_folder_says_there_is_no_model():
    p = run(INFO, "/")
    assert p.returncode == 1 and "no config.json" in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]


def test_loading_home_does_not_walk_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    deep = home / "projects" / "a" / "b"
    deep.mkdir(parents=True)
    os.symlink("/etc/hostname", deep / "link")  # a walk would find (and refuse) this link before anything else
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ModelFileError, match=r"no config\.json"):
        tinylm.load("~")


def test_an_extra_unknown_tensor_is_a_weights_error(folder):
    weights = load_file(folder / "model.safetensors")
    weights["model.layers.0.mlp.extra.weight"] = np.zeros((2, 2), np.float32)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(WeightsError, match=r"does not use: model\.layers\.0\.mlp\.extra\.weight.*Fix:"):
        tinylm.load(folder, backend="torch")


def test_a_broken_tokenizer_fails_at_load(folder):
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        tinylm.load(folder, backend="torch")  # not only at the first generate


def test_a_shard_index_cannot_point_outside_the_folder(folder, tmp_path):
    outside = tmp_path / "outside.safetensors"
    (folder / "model.safetensors").rename(outside)
    weights = load_file(outside)
    index = {"metadata": {}, "weight_map": {name: "../outside.safetensors" for name in weights}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="outside the model folder"):
        tinylm.load(folder, backend="torch")
