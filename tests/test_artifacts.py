"""The artifact cache: content-keyed, built once, atomic, listed and pruned."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
from safetensors.numpy import save_file

from tinylm import artifacts
from tinylm.arch.spec import ModelSpec, NormSpec
from tinylm.backend import Capabilities, ConvertOptions, OpenRequest, key_options
from tinylm.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Build(ConvertOptions):
    parity: bool = False  # these backends cannot execute; parity through the pipeline: test_conversion.py
    block: int = 32
    tags: tuple[str, ...] = field(default_factory=tuple)
    blob_cache: bool = True  # changes how an artifact is opened, not what it holds

    open_only: ClassVar[tuple[str, ...]] = ("blob_cache",)


class ConvertingBackend:
    name = "conv"
    version = "1.0"
    capabilities = Capabilities(converts=True, options=Build)

    def __init__(self, fail: bool = False) -> None:
        self.prepared = 0
        self.fail = fail

    def prepare(self, request, options, out):
        assert options is request.options and request.artifact == out
        self.prepared += 1
        (out / "graph.bin").write_bytes(b"x" * 100)
        if self.fail:
            raise RuntimeError("conversion failed half-way")
        return {"graph": {"block": options.block}}


SPEC = ModelSpec(
    family="llama",
    kind="decoder",
    vocab_size=8,
    hidden_size=4,
    num_layers=1,
    num_heads=1,
    num_kv_heads=1,
    head_dim=4,
    intermediate_size=8,
    max_positions=16,
    norm=NormSpec(kind="rms", eps=1e-5),
)


@pytest.fixture
def request_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"w": np.zeros(4, np.float32)}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))

    def make(precision="fp32", **options):
        return OpenRequest(
            spec=SPEC,
            folder=folder,
            weights_loader=dict,
            precision=precision,
            device="cpu",
            num_threads=1,
            options=Build.parse(precision, options, backend="conv"),
        )

    return make


def test_second_load_reuses_the_artifact(request_for):
    backend = ConvertingBackend()
    first = artifacts.ensure_artifact(backend, request_for())
    second = artifacts.ensure_artifact(backend, request_for())
    assert backend.prepared == 1 and first.artifact == second.artifact
    meta = json.loads((first.artifact / artifacts.MARKER).read_text())
    assert meta["graph"] == {"block": 32} and meta["precision"] == "fp32"
    assert first.meta == second.meta == meta  # the record handed to `open`, as built and as read back
    other = artifacts.ensure_artifact(backend, request_for("int8"))  # another precision is another entry
    assert backend.prepared == 2 and other.artifact != first.artifact


def test_key_options_keep_only_what_differs_from_the_defaults():
    assert key_options(Build()) == {}
    assert key_options(Build(precision="int8", block=32, tags=())) == {}  # precision is keyed on its own
    assert key_options(Build(block=64, tags=("a",))) == {"block": 64, "tags": ("a",)}
    assert key_options(Build(blob_cache=False), open_only=("blob_cache",)) == {}
    assert Build(blob_cache=False, block=64).key() == {"block": 64}  # the declared open_only fields


def test_options_at_their_defaults_or_open_only_reuse_the_artifact(request_for):
    backend = ConvertingBackend()
    first = artifacts.ensure_artifact(backend, request_for()).artifact
    assert artifacts.ensure_artifact(backend, request_for(block=32)).artifact == first
    assert artifacts.ensure_artifact(backend, request_for(blob_cache=False)).artifact == first
    assert backend.prepared == 1
    other = artifacts.ensure_artifact(backend, request_for(block=64)).artifact
    assert other != first and backend.prepared == 2
    with pytest.raises(ConfigError, match=r"unknown conv backend option\(s\): nope.*Fix: use only blob_cache"):
        artifacts.ensure_artifact(backend, request_for(nope=1))  # parsed first: never reaches a conversion
    assert backend.prepared == 2


def test_changed_weights_change_the_key(request_for):
    backend = ConvertingBackend()
    first = artifacts.ensure_artifact(backend, request_for())
    save_file({"w": np.ones(4, np.float32)}, first.folder / "model.safetensors")
    assert artifacts.ensure_artifact(backend, request_for()).artifact != first.artifact


def test_a_failed_conversion_leaves_nothing(request_for, tmp_path):
    with pytest.raises(RuntimeError):
        artifacts.ensure_artifact(ConvertingBackend(fail=True), request_for())
    assert artifacts.list_artifacts() == []
    parent = tmp_path / "home" / "artifacts" / "conv"
    assert [p.name for p in parent.iterdir() if p.is_dir()] == []  # no temp folder left behind
    backend = ConvertingBackend()
    entry = artifacts.ensure_artifact(backend, request_for()).artifact
    assert entry.parent == parent and (entry / "graph.bin").is_file() and backend.prepared == 1


def test_an_entry_without_its_marker_is_rebuilt(request_for):
    backend = ConvertingBackend()
    entry = artifacts.ensure_artifact(backend, request_for()).artifact
    (entry / artifacts.MARKER).unlink()
    assert artifacts.ensure_artifact(backend, request_for()).artifact == entry and backend.prepared == 2


def test_list_and_prune(request_for):
    artifacts.ensure_artifact(ConvertingBackend(), request_for())
    listed = artifacts.list_artifacts()
    assert len(listed) == 1 and listed[0].backend == "conv" and listed[0].size > 100
    assert all(p.suffix == ".lock" for p in artifacts.prune(older_than_days=1))  # too young: only the stale lock
    assert len(artifacts.list_artifacts()) == 1
    assert len(artifacts.prune(everything=True)) == 1 and artifacts.list_artifacts() == []


class ArtifactOnlyBackend(ConvertingBackend):
    """Opens only from its artifact: proves an exported folder needs no original weights."""

    capabilities = Capabilities(converts=True, kinds=("decoder",), options=Build)

    def availability(self):
        from tinylm.backend import Availability

        return Availability(ok=True)

    def devices(self):
        return ["cpu"]

    def open(self, request):
        from .helpers import ScriptedSession

        assert (request.artifact / "graph.bin").is_file()
        return ScriptedSession.script(request.spec.vocab_size, [5, 6, 7])


@pytest.fixture
def converting_manager(monkeypatch, tmp_path):
    from tinylm import plugins

    from .fakes import BackendsPlugin

    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    backend = ArtifactOnlyBackend()
    manager = plugins.PluginManager(autoload=True)
    manager.register(BackendsPlugin(backend), name="conv-plugin")
    monkeypatch.setattr(plugins, "_manager", manager)
    return backend


def test_convert_writes_a_self_contained_folder(converting_manager, tmp_path):
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    import shutil

    import tinylm
    from tinylm.errors import BackendUnavailable, CapabilityError, PrecisionUnsupported
    from tinylm.testing.models import build_model

    source = build_model("smollm", tmp_path / "src")
    out = tinylm.convert(source, backend="conv", out=tmp_path / "out")
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "graph.bin", artifacts.MARKER} <= {
        p.name for p in out.iterdir()
    }
    assert not list(out.glob("*.safetensors"))
    shutil.rmtree(source)  # the export stands alone
    model = tinylm.load(out)
    assert model.backend == "conv" and model.generate("hi", max_new_tokens=3, ignore_eos=True).token_ids == (5, 6, 7)
    with pytest.raises(BackendUnavailable, match="converted for backend 'conv'"):
        tinylm.load(out, backend="torch")
    with pytest.raises(PrecisionUnsupported, match="--precision int8"):
        tinylm.load(out, precision="int8")
    with pytest.raises(Exception, match="not empty"):
        tinylm.convert(out, backend="conv", out=out)
    source = build_model("smollm", tmp_path / "src2")
    with pytest.raises(CapabilityError, match="nothing to convert"):
        tinylm.convert(source, backend="torch", out=tmp_path / "out2")
