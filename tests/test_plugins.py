"""The plugin manager: lazy, isolated loading; broken plugins recorded while the others work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tinylm.plugins import PluginManager

from .fakes import REGISTER_FAKE, BackendsPlugin, FakeBackend, RaisingHookPlugin, TypoPlugin, installed_plugins


def test_register_and_list_backends():
    pm = PluginManager(autoload=False)
    assert pm.register(BackendsPlugin(FakeBackend("alpha"), FakeBackend("beta")), name="fakes")
    assert sorted(pm.backends()) == ["alpha", "beta"]
    assert pm.backend_plugin("alpha") == "fakes"
    pm.unregister("fakes")
    assert pm.backends() == {}


def test_a_hook_that_raises_is_isolated():
    pm = PluginManager(autoload=False)
    pm.register(RaisingHookPlugin(), name="exploding")
    pm.register(BackendsPlugin(FakeBackend("alpha")), name="good")
    assert list(pm.backends()) == ["alpha"]
    assert [e.plugin for e in pm.errors] == ["exploding"]
    assert "hook exploded" in str(pm.errors[0]) and "Fix" in str(pm.errors[0])


def test_a_hook_name_typo_is_caught_at_registration():
    pm = PluginManager(autoload=False)
    assert not pm.register(TypoPlugin(), name="typo")
    assert pm.errors and pm.errors[0].plugin == "typo" and "register_backendz" in str(pm.errors[0])


def test_duplicate_backend_names_are_reported_naming_both_and_neither_is_used():
    pm = PluginManager(autoload=False)
    pm.register(BackendsPlugin(FakeBackend("same")), name="a")
    pm.register(BackendsPlugin(FakeBackend("same")), name="b")
    assert "same" not in pm.backends()
    assert "also registered by 'b'" in str(pm.errors[0]) and "also registered by 'a'" in str(pm.errors[1])


BROKEN = "raise ImportError('this plugin is broken on purpose')\n"


@pytest.fixture
def broken_dist(tmp_path):
    """A fake installed distribution with two entry points: one broken, one good."""
    plugins = {"brokenplugin": BROKEN, "goodfake": REGISTER_FAKE.format(name="goodfake")}
    return installed_plugins(tmp_path, plugins, dist="tinylm-fakeplugins")


def run_cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "tinylm.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_tinylm_backends_lists_the_builtin_backends_and_a_broken_plugin(broken_dist):
    out = run_cli("backends", "--json", env_extra={"PYTHONPATH": str(broken_dist)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    names = {b["name"]: b for b in report["backends"]}
    for builtin in ("torch", "onnx", "openvino", "coreml"):
        assert builtin in names, f"{builtin} not registered: {sorted(names)}"
        b = names[builtin]
        assert b["status"] in ("available", "unavailable", "convert-only")
        assert (b["status"] == "available") == (b["reason"] == "")  # unavailable ones, and only they, say why
        if b["status"] != "available":
            assert " Fix: " in b["reason"], b["reason"]
    assert names["goodfake"]["status"] == "available"  # the good plugin of the same distribution works
    errors = {e["plugin"]: e["error"] for e in report["plugin_errors"]}
    assert "brokenplugin" in errors and "broken on purpose" in errors["brokenplugin"]

    text = run_cli("backends", env_extra={"PYTHONPATH": str(broken_dist)})
    assert "plugin error" in text.stdout and "brokenplugin" in text.stdout
    doctor = run_cli("doctor", env_extra={"PYTHONPATH": str(broken_dist)})
    assert doctor.returncode == 1 and "brokenplugin" in doctor.stdout


def test_disable_and_allow_lists(broken_dist):
    out = run_cli(
        "backends", "--json", env_extra={"PYTHONPATH": str(broken_dist), "TINYLM_DISABLE_PLUGINS": "brokenplugin"}
    )
    assert json.loads(out.stdout)["plugin_errors"] == []
    out = run_cli("backends", "--json", env_extra={"PYTHONPATH": str(broken_dist), "TINYLM_PLUGINS": "goodfake"})
    assert [b["name"] for b in json.loads(out.stdout)["backends"]] == ["goodfake"]


def test_doctor_reports_each_plugin_problem_while_the_others_work(tmp_path):
    """A plugin that raises on import, one whose hook raises, one that registers a duplicate name."""
    plugins = {
        "brokenplugin": BROKEN,
        "goodfake": REGISTER_FAKE.format(name="goodfake"),
        "raisinghook": "\n@hookimpl\ndef register_backends(register):\n    raise RuntimeError('hook exploded')\n",
        "zduplicate": REGISTER_FAKE.format(name="goodfake"),
    }
    broken_dist = installed_plugins(tmp_path, plugins, dist="tinylm-fakeplugins")
    doctor = run_cli("doctor", env_extra={"PYTHONPATH": str(broken_dist)})
    assert doctor.returncode == 1
    for plugin, fragment in (
        ("brokenplugin", "broken on purpose"),
        ("raisinghook", "hook exploded"),
        ("zduplicate", "also registered by 'goodfake'"),
    ):
        line = next((ln for ln in doctor.stdout.splitlines() if ln.startswith(f"problem: plugin '{plugin}'")), "")
        assert fragment in line, doctor.stdout
    assert "torch: available" in doctor.stdout  # the others keep working


def test_installed_version_names_the_distribution_and_the_graph_revision():
    from importlib.metadata import version

    from tinylm.backend import installed_version

    assert installed_version("pluggy") == version("pluggy")
    assert installed_version("pluggy", graph_revision=3) == version("pluggy") + "+graph3"
    assert installed_version("no-such-distribution-xyz") == "0+unknown"  # a source tree that is not installed
    assert installed_version("no-such-distribution-xyz", graph_revision=2) == "0+unknown.graph2"


def test_tracing_logs_every_hook_call_plugin_by_plugin(monkeypatch, caplog):
    monkeypatch.setenv("TINYLM_TRACE_PLUGINS", "1")
    pm = PluginManager(autoload=False)
    pm.register(BackendsPlugin(FakeBackend("alpha")), name="good")
    pm.register(RaisingHookPlugin(), name="exploding")
    with caplog.at_level("DEBUG", logger="tinylm.plugins"):
        assert list(pm.backends()) == ["alpha"]  # the failing plugin stays isolated under tracing too
    text = caplog.text
    assert text.count("register_backends [hook]") == 2  # pluggy's own trace: each call went through its caller
    assert text.count("finish register_backends") == 1  # the raising one never finished
    assert "calling register_backends of plugin good" in text and "of plugin exploding" in text


def test_tinylm_backends_traces_each_hook_call():
    """`TINYLM_TRACE_PLUGINS=1 tinylm backends` logs each plugin load and each hook call on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYLM_")}
    cli = [sys.executable, "-m", "tinylm.cli", "backends"]
    traced = subprocess.run(cli, env={**env, "TINYLM_TRACE_PLUGINS": "1"}, capture_output=True, text=True)
    plain = subprocess.run(cli, env=env, capture_output=True, text=True)
    assert traced.returncode == plain.returncode == 0, traced.stderr
    assert traced.stdout == plain.stdout and "register_backends [hook]" not in plain.stderr
    from importlib.metadata import entry_points

    loaded = [ep.name for ep in entry_points(group="tinylm")]
    called = [line.split()[-1] for line in traced.stderr.splitlines() if "calling register_backends of plugin" in line]
    assert all(f"loading plugin {name} " in traced.stderr for name in loaded)
    assert called and set(called) <= set(loaded)
    assert (
        traced.stderr.count("register_backends [hook]")
        == traced.stderr.count("finish register_backends")
        == len(called)
    )
