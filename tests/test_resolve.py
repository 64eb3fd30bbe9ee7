"""Model names: local folders, registered names, the Hugging Face cache and the hub (mocked)."""

from __future__ import annotations

import sys
import types

import pytest

from tinylm.errors import InvalidModelName, ModelNotFound
from tinylm.hookspecs import hookimpl
from tinylm.plugins import PluginManager
from tinylm.resolve import DOWNLOAD_PATTERNS, resolve_model, valid_hub_id


class ModelsPlugin:
    def __init__(self, path):
        self.path = path

    @hookimpl
    def register_models(self, register):
        register("support-assistant", self.path, description="test entry")


@pytest.fixture
def manager(tmp_path):
    pm = PluginManager(autoload=False)
    pm.register(ModelsPlugin(tmp_path / "bundled"), name="models")
    return pm


def test_local_folder_and_registered_name(tmp_path, manager):
    assert resolve_model(tmp_path, manager) == tmp_path.resolve()
    assert resolve_model("support-assistant", manager) == tmp_path / "bundled"


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_names(name, manager):
    with pytest.raises(InvalidModelName):
        resolve_model(name, manager)


@pytest.mark.parametrize("name", ["../../etc/passwd", "owner/../x", "./nothing-here", "a/b/c"])
def test_paths_that_do_not_exist_and_are_not_hub_ids(name, manager):
    with pytest.raises(ModelNotFound, match="Fix"):
        resolve_model(name, manager)


def test_hub_id_validation():
    assert valid_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    for bad in ("owner/..", "../x", "owner/na me", "/abs", "owner/", "a/b/c", "o/.hidden"):
        assert not valid_hub_id(bad), bad


def test_unknown_plain_name_lists_registered_models(manager):
    with pytest.raises(ModelNotFound, match="support-assistant"):
        resolve_model("no-such-model", manager)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A stand-in for huggingface_hub: records calls, serves from a 'cache' folder."""
    calls = []
    cached = tmp_path / "hf-cache" / "snap"

    class LocalEntryNotFoundError(Exception):
        pass

    def snapshot_download(repo_id, *, allow_patterns, local_files_only=False):
        calls.append((repo_id, tuple(allow_patterns), local_files_only))
        if local_files_only:
            if cached.exists():
                return str(cached)
            raise LocalEntryNotFoundError(repo_id)
        cached.mkdir(parents=True)
        return str(cached)

    hub = types.ModuleType("huggingface_hub")
    hub.snapshot_download = snapshot_download
    errors = types.ModuleType("huggingface_hub.errors")
    errors.LocalEntryNotFoundError = LocalEntryNotFoundError
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", errors)
    return calls, cached


def test_hub_id_offline_not_cached_is_a_typed_error(fake_hub, manager, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="HF_HUB_OFFLINE"):
        resolve_model("owner/model", manager)
    calls, _ = fake_hub
    assert all(local for *_, local in calls)  # never tried the network


def test_hub_id_downloads_only_safe_files_then_uses_the_cache(fake_hub, manager, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls, cached = fake_hub
    assert resolve_model("owner/model", manager) == cached
    assert calls[-1] == ("owner/model", tuple(DOWNLOAD_PATTERNS), False)
    assert not any(p.endswith((".bin", ".pt", ".py")) for p in DOWNLOAD_PATTERNS)
    calls.clear()
    assert resolve_model("owner/model", manager) == cached
    assert calls == [("owner/model", tuple(DOWNLOAD_PATTERNS), True)]  # served from the cache


def test_hub_without_huggingface_hub_names_the_package(monkeypatch, manager):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ModelNotFound, match="pip install huggingface_hub"):
        resolve_model("owner/model", manager)
