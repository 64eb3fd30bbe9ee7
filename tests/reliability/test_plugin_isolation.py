"""Plugin isolation: no plugin call can crash `tinylm backends`, `doctor` or automatic choice; built-in
names cannot be taken over; every failed hook is reported by `doctor` with a non-zero exit; the
allow/deny lists are case-insensitive and report names no installed plugin has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tinylm.backend import Availability
from tinylm.plugins import PluginManager
from tinylm.selection import choose

from ..fakes import REGISTER_FAKE, BackendsPlugin, FakeBackend, installed_plugins


class RaisingAvailability(FakeBackend):
    def availability(self) -> Availability:
        raise RuntimeError("availability exploded")


class ExitingDevices(FakeBackend):
    def devices(self) -> list[str]:
        raise SystemExit(3)


class ExitingHook:
    from tinylm.hookspecs import hookimpl

    @hookimpl
    def register_backends(self, register):
        raise SystemExit("plugin called sys.exit")

    @hookimpl
    def register_models(self, register):
        raise SystemExit("models hook called sys.exit")


def cli(*args, path=None, **env):
    full = {**os.environ, **env}
    if path is not None:
        full["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-m", "tinylm.cli", *args], capture_output=True, text=True, env=full, timeout=50
    )


# in process ---------------------------------------------------------------------------------------


def test_a_raising_availability_is_unavailable_and_auto_selection_goes_on():
    pm = PluginManager(autoload=False)
    pm.register(BackendsPlugin(RaisingAvailability("broken", priority=10), FakeBackend("fine")), name="fakes")
    choice = choose(pm, kind="decoder")
    assert choice.backend.name == "fine"
    av = pm.availability(pm.backends()["broken"])
    assert not av.ok and "availability exploded" in av.reason and "TINYLM_DISABLE_PLUGINS=fakes" in av.hint
    assert [e.plugin for e in pm.errors] == ["fakes"] and "availability exploded" in str(pm.errors[0])


def test_system_exit_in_a_hook_or_a_backend_call_is_isolated():
    pm = PluginManager(autoload=False)
    pm.register(ExitingHook(), name="exiting")
    pm.register(BackendsPlugin(ExitingDevices("nodev"), FakeBackend("fine")), name="fakes")
    assert sorted(pm.backends()) == ["fine", "nodev"]
    assert pm.models() == {}
    assert pm.devices(pm.backends()["nodev"]) == []
    causes = {(e.plugin, type(e.cause).__name__) for e in pm.errors}
    assert causes == {("exiting", "SystemExit"), ("fakes", "SystemExit")}
    assert choose(pm, kind="decoder", backend="fine").device == "cpu"

    class Interrupting:  # but Ctrl-C still stops tinylm
        from tinylm.hookspecs import hookimpl

        @hookimpl
        def register_backends(self, register):
            raise KeyboardInterrupt

    pm.register(Interrupting(), name="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        pm.backends()


def test_a_builtin_backend_keeps_its_name_whatever_the_order():
    real = FakeBackend("onnx")
    for order in (("aaa", "onnx"), ("onnx", "aaa")):
        pm = PluginManager(autoload=False)
        for plugin in order:
            if plugin == "onnx":
                pm.register(BackendsPlugin(real), name="onnx", builtin=True)
            else:
                pm.register(BackendsPlugin(FakeBackend("ONNX")), name="aaa")
        assert pm.backends()["onnx"] is real and pm.backend_plugin("onnx") == "onnx"
        (error,) = pm.errors
        assert error.plugin == "aaa" and "'onnx'" in str(error) and "built-in" in str(error)


def test_two_third_party_plugins_with_one_name_lose_it_both():
    pm = PluginManager(autoload=False)
    pm.register(BackendsPlugin(FakeBackend("same")), name="first")
    pm.register(BackendsPlugin(FakeBackend("same")), name="second")
    assert "same" not in pm.backends()
    blamed = {e.plugin: str(e) for e in pm.errors}
    assert set(blamed) == {"first", "second"}
    assert "'second'" in blamed["first"] and "'first'" in blamed["second"] and "neither" in blamed["first"]


# through real entry points and the command line ---------------------------------------------------


def test_backends_and_doctor_survive_raising_plugins(tmp_path):
    path = installed_plugins(
        tmp_path,
        {
            "availraise": REGISTER_FAKE.format(name="availraise")
            + "Fake.availability = lambda self: (_ for _ in ()).throw(RuntimeError('availability exploded'))\n",
            "exitonimport": "raise SystemExit('bye from import')\n",
            "modelsraise": "\nfrom tinylm import hookimpl\n@hookimpl\ndef register_models(register):\n"
            "    raise ValueError('models hook exploded')\n",
        },
    )
    out = cli("backends", "--json", path=path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {b["name"]: b for b in report["backends"]}
    assert rows["availraise"]["status"] == "unavailable" and "availability exploded" in rows["availraise"]["reason"]
    assert "torch" in rows  # the others still listed
    errors = {e["plugin"]: e["error"] for e in report["plugin_errors"]}
    assert "bye from import" in errors["exitonimport"] and "SystemExit" in errors["exitonimport"]
    assert "availability exploded" in errors["availraise"]
    assert "models hook exploded" in errors["modelsraise"]

    doctor = cli("doctor", path=path)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    for plugin, fragment in (
        ("exitonimport", "bye from import"),
        ("availraise", "availability exploded"),
        ("modelsraise", "models hook exploded"),
    ):
        line = next((ln for ln in doctor.stdout.splitlines() if ln.startswith("problem") and f"'{plugin}'" in ln), "")
        assert fragment in line, doctor.stdout
    assert "no plugin problems" not in doctor.stdout


def test_a_third_party_plugin_cannot_take_a_builtin_name(tmp_path):
    # "aonnx" sorts before "onnx", so it registers first
    path = installed_plugins(tmp_path, {"aonnx": REGISTER_FAKE.format(name="onnx")})
    report = json.loads(cli("backends", "--json", path=path).stdout)
    onnx = next(b for b in report["backends"] if b["name"] == "onnx")
    assert onnx["plugin"] == "onnx" and onnx["version"] != "1.0"
    (error,) = [e for e in report["plugin_errors"] if e["plugin"] == "aonnx"]
    assert "'onnx'" in error["error"] and "built-in" in error["error"]
    assert not [e for e in report["plugin_errors"] if e["plugin"] == "onnx"]  # the real plugin is not blamed


def test_an_allow_list_keeps_the_bundled_models():
    """The core's own models stay; names registered by a plugin left out of the list go (tinylm-torch's known
    toolchain models, when their package is installed)."""
    code = (
        "import json; from tinylm.plugins import get_manager; "
        "print(json.dumps({n: e.plugin for n, e in get_manager().models().items()}))"
    )
    run = lambda **env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=50
    )
    everything = run()
    assert everything.returncode == 0, everything.stderr
    core = {name for name, plugin in json.loads(everything.stdout).items() if plugin == "bundled"}
    assert {"support-assistant", "support-embedder"} <= core
    allowed = json.loads(run(TINYLM_PLUGINS="onnx").stdout)
    assert core <= set(allowed) and "torch" not in set(allowed.values())


def test_plugin_names_are_case_insensitive_and_unknown_names_are_reported(tmp_path):
    plugins = {"goodfake": REGISTER_FAKE.format(name="goodfake"), "other": REGISTER_FAKE.format(name="other")}
    path = installed_plugins(tmp_path, plugins)
    only = json.loads(cli("backends", "--json", path=path, TINYLM_PLUGINS="GoodFake").stdout)
    assert [b["name"] for b in only["backends"]] == ["goodfake"] and only["settings_errors"] == []
    without = json.loads(cli("backends", "--json", path=path, TINYLM_DISABLE_PLUGINS="OTHER").stdout)
    assert "other" not in [b["name"] for b in without["backends"]]

    typo = cli("backends", "--json", path=path, TINYLM_DISABLE_PLUGINS="goodfak")
    (error,) = json.loads(typo.stdout)["settings_errors"]
    assert "TINYLM_DISABLE_PLUGINS" in error and "goodfak" in error and "Fix:" in error
    doctor = cli("doctor", path=path, TINYLM_PLUGINS="goodfake,nosuchplugin")
    assert doctor.returncode == 1 and "nosuchplugin" in doctor.stdout


def test_doctor_fails_when_no_backend_is_available():
    doctor = cli("doctor", TINYLM_DISABLE_PLUGINS="torch,onnx,openvino,coreml")
    assert doctor.returncode == 1
    assert "no backend is available" in doctor.stdout and "Fix:" in doctor.stdout
