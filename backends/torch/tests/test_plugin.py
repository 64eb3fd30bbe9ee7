"""The backend as a plugin: registration through the entry point, capabilities, lazy torch import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tinylm
from tinylm.backend import Backend
from tinylm.errors import CapabilityError


def test_registered_through_the_entry_point():
    from tinylm.plugins import get_manager

    backend = get_manager().backends()["torch"]
    assert isinstance(backend, Backend)
    assert backend.availability().ok
    assert backend.devices()[0] == "cpu"
    caps = backend.capabilities
    assert caps.precisions == ("fp32", "bf16", "int8") and caps.default_precision == "fp32"
    assert set(caps.kinds) == {"decoder", "encoder"} and caps.batch and not caps.converts
    assert backend.version == "0.1.0"


def test_plugin_module_does_not_import_torch():
    code = (
        "import sys, tinylm_torch.plugin as p; b = p.TorchBackend(); b.availability(); b.devices(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unavailable_says_how_to_install(monkeypatch):
    import tinylm_torch.plugin as plugin

    monkeypatch.setattr(plugin, "runtime_available", lambda name: False)
    av = plugin.TorchBackend().availability()
    from tinylm.install import install_command

    assert not av.ok and av.explain().endswith(f"Fix: {install_command('torch')}")  # the command that works here


def test_kind_mismatch(model_folder):
    decoder = tinylm.load(model_folder("llama"), backend="torch")
    with pytest.raises(CapabilityError, match="Fix:"):
        decoder.embed("hello")
    encoder = tinylm.load(model_folder("bert"), backend="torch")
    with pytest.raises(CapabilityError, match="Fix:"):
        encoder._session.forward([[1, 2]])
