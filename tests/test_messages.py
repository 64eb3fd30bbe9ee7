"""What a new user reads: install hints that work for how tinylm was installed, messages that end with their
fix and name what the user called, aligned tables."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import tinylm
from tinylm import errors, install
from tinylm.cli import main
from tinylm.plugins import PluginManager
from tinylm.selection import choose

from .fakes import BackendsPlugin, FakeBackend

ROOT = Path(__file__).resolve().parents[1]


# install hints ----------------------------------------------------------------------------------


@pytest.fixture
def installed_as(monkeypatch):
    """Pretend tinylm was installed from a wheel (None) or from a clone at `root` (editable or not)."""

    real = install.source_checkout

    def set_to(found):
        monkeypatch.setattr(install, "source_checkout", lambda: found)

    yield set_to
    real.cache_clear()


def test_install_hint_from_a_wheel_is_the_extra(installed_as):
    installed_as(None)
    assert install.install_command("onnx") == "pip install 'tinylm[onnx]'"


def test_install_hint_from_a_clone_installs_the_backend_folder(installed_as):
    installed_as((ROOT, True))
    command = install.install_command("onnx")
    assert command == f"pip install -c {ROOT / 'constraints.txt'} -e {ROOT / 'backends' / 'onnx'}"
    assert (ROOT / "backends" / "onnx" / "pyproject.toml").is_file()  # what the command installs exists
    installed_as((ROOT, False))
    assert install.install_command("serve") == f"pip install -c {ROOT / 'constraints.txt'} '{ROOT}[serve]'"


def test_this_checkout_is_detected_as_the_clone_it_is():
    install.source_checkout.cache_clear()
    found = install.source_checkout()
    assert found is not None and (found[0] / "backends" / "torch").is_dir()
    assert Path(tinylm.__file__).resolve().is_relative_to(found[0].resolve())


def test_unknown_backend_suggests_the_command_that_works_here(installed_as, capsys, monkeypatch):
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    installed_as((ROOT, True))
    manager = PluginManager(autoload=False)
    manager.register(BackendsPlugin(FakeBackend("fast")), name="fakes")
    with pytest.raises(errors.UnknownBackend) as err:
        choose(manager, kind="decoder", backend="nope")
    message = str(err.value)
    assert f"-e {ROOT / 'backends' / 'onnx'}" in message and "tinylm[" not in message
    assert main(["generate", "support-assistant", "hi", "--backend", "nope"]) == 1
    assert f"-e {ROOT / 'backends'}" in capsys.readouterr().err


# every message ends with its fix ------------------------------------------------------------------


def _literal(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left) + _literal(node.right)
    return "{}"


def test_every_typed_error_raised_says_how_to_fix_it():
    names = set(errors.__all__)
    sources = [*(ROOT / "tinylm").rglob("*.py"), *(ROOT / "backends").glob("*/tinylm_*/**/*.py")]
    missing, checked = [], 0
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            call = node.exc if isinstance(node, ast.Raise) else None
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in names and call.args:
                checked += 1
                # the message: the first argument, or the second for InvalidArgument(argument, message)
                text = _literal(call.args[1] if call.func.id == "InvalidArgument" else call.args[0])
                if "Fix: " not in text:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:100]}")
    assert checked > 100
    assert not missing, "\n".join(missing)


def test_unavailable_backend_lists_the_others_before_the_fix(monkeypatch):
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    manager = PluginManager(autoload=False)
    manager.register(BackendsPlugin(FakeBackend("fast"), FakeBackend("best", ok=False)), name="fakes")
    with pytest.raises(errors.BackendUnavailable) as err:
        choose(manager, kind="decoder", backend="best")
    message = str(err.value)
    assert message.index("Backends:") < message.index("Fix: ") and message.endswith("Fix: pip install best-runtime.")


# messages name what the user called, in English ---------------------------------------------------


@pytest.fixture(scope="module")
def embedder():
    with tinylm.load("support-embedder", backend="torch") as model:
        yield model


def test_generating_with_an_embedder_says_so_for_every_way_in(embedder, capsys):
    for call in (
        lambda: embedder.generate("hi"),
        lambda: embedder.stream("hi"),
        lambda: embedder.chat([{"role": "user", "content": "hi"}]),
    ):
        with pytest.raises(errors.CapabilityError) as err:
            call()
        message = str(err.value)
        assert message.startswith("text generation (generate, stream, chat) needs a decoder model")
        assert "is an encoder model" in message and "load a decoder model" in message
        assert "Fix: use embed() (`tinylm embed`)" in message
    assert main(["generate", "support-embedder", "hi", "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    assert "stream()" not in err and "needs a decoder model" in err and err.count("\n") == 1


def test_embedding_with_a_decoder_uses_the_right_articles():
    with tinylm.load("support-assistant", backend="torch") as model:
        with pytest.raises(errors.CapabilityError) as err:
            model.embed("hi")
    message = str(err.value)
    assert "embed() needs an encoder model, but support-assistant is a decoder model" in message
    assert "load an encoder model" in message and " a encoder" not in message and " an decoder" not in message


def test_the_server_names_the_model_kind_in_english(embedder):
    pytest.importorskip("fastapi", reason="the server needs the serve extra")
    from fastapi.testclient import TestClient

    from tinylm.server import create_app

    with tinylm.load("support-assistant", backend="torch") as chat:
        client = TestClient(create_app({"chat": chat, "embed": embedder}))
        wrong = client.post("/v1/embeddings", json={"model": "chat", "input": "hi"}).json()["error"]["message"]
        assert "model 'chat' is a decoder model" in wrong and "Fix: send this request to /v1/chat" in wrong
        body = {"model": "embed", "messages": [{"role": "user", "content": "hi"}]}
        wrong = client.post("/v1/chat/completions", json=body).json()["error"]["message"]
        assert "model 'embed' is an encoder model" in wrong and "Fix: send this request to /v1/embeddings" in wrong


def test_a_word_where_a_number_belongs_names_the_field(tmp_path):
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    from tinylm.testing.models import build_model

    folder = build_model("smollm", tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["num_attention_heads"] = "four"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(errors.ModelFileError) as err:
        tinylm.load(folder, backend="torch")
    message = str(err.value)
    assert "num_attention_heads is 'four' (str); it must be an integer" in message
    assert "not all arguments converted" not in message and "Fix: " in message


# tables -----------------------------------------------------------------------------------------


def test_backends_table_stays_aligned_with_long_versions(monkeypatch, capsys):
    from tinylm import plugins

    manager = PluginManager(autoload=False)
    long = FakeBackend("long", version="12.34.56+graph789.dev20261205")
    manager.register(
        BackendsPlugin(FakeBackend("a"), long, FakeBackend("verylongname", device_list=["cpu", "gpu"])), name="f"
    )
    monkeypatch.setattr(plugins, "get_manager", lambda: manager)
    assert main(["backends"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "precisions=" in line]
    assert len(lines) == 3
    for column in ("available", "v", "devices=", "precisions="):
        starts = {line.index(" " + column) for line in lines}
        assert len(starts) == 1, (column, lines)


def test_every_backend_names_its_devices_in_lower_case():
    from tinylm.plugins import get_manager

    for name, backend in get_manager().backends().items():
        available = backend.availability()
        if available.ok or available.convert_only:
            devices = backend.devices()
            assert devices and all(d == d.lower() for d in devices), (name, devices)
