"""Fake backends and plugins for the plugin-manager and selection tests."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tinylm.backend import Availability, Capabilities, KindPreference
from tinylm.hookspecs import hookimpl


@dataclass
class FakeBackend:
    name: str
    ok: bool = True
    priority: int = 0
    kinds: tuple[str, ...] = ("decoder", "encoder")
    device_list: list[str] = field(default_factory=lambda: ["cpu"])
    precisions: tuple[str, ...] = ("fp32", "int8")
    version: str = "0.0-test"
    declares_default_device: bool = False
    states: tuple[str, ...] = ("kv",)
    auto: dict[str, KindPreference] = field(default_factory=dict)
    native: list[str] | None = None  # the precisions native_precisions() reports; None: declares no such method
    opened: list = field(default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            precisions=self.precisions,
            default_precision=self.precisions[0],
            kinds=self.kinds,
            priority=self.priority,
            default_device=self.declares_default_device,
            states=self.states,
            auto=self.auto,
            native=self.native is not None,
        )

    def native_precisions(self, device: str) -> list[str]:
        assert self.native is not None, "called on a backend that declares no native precisions"
        return list(self.native)

    def availability(self) -> Availability:
        if self.ok:
            return Availability(ok=True)
        return Availability(
            ok=False, reason=f"{self.name}-runtime is not installed.", hint=f"pip install {self.name}-runtime"
        )

    def devices(self) -> list[str]:
        return list(self.device_list)

    def open(self, request):
        self.opened.append(request)
        raise AssertionError("fake backends are not opened in these tests")


class BackendsPlugin:
    """A plugin object registering the given backends."""

    def __init__(self, *backends: FakeBackend) -> None:
        self.backends = backends

    @hookimpl
    def register_backends(self, register):
        for b in self.backends:
            register(b)


class RaisingHookPlugin:
    @hookimpl
    def register_backends(self, register):
        raise RuntimeError("hook exploded")


class TypoPlugin:
    @hookimpl
    def register_backendz(self, register):  # a hook tinylm does not have
        pass


#: The start of every module `installed_plugins` writes: `Fake(name)`, a backend available on cpu that opens nothing.
FAKE_BACKEND_MODULE = textwrap.dedent(
    """
    from tinylm import hookimpl
    from tinylm.backend import Availability, Capabilities, KindPreference

    class Fake:
        version = "1.0"
        capabilities = Capabilities()
        def __init__(self, name):
            self.name = name
        def availability(self):
            return Availability(ok=True)
        def devices(self):
            return ["cpu"]
        def open(self, request):
            raise NotImplementedError
    """
)

#: A plugin module's source that registers `Fake(name)` (`.format(name=...)`).
REGISTER_FAKE = "\n@hookimpl\ndef register_backends(register):\n    register(Fake({name!r}))\n"


def installed_plugins(root: Path, plugins: dict[str, str], *, dist: str = "tinylm-thirdparty") -> Path:
    """A fake installed distribution `dist` in `root` (put `root` on PYTHONPATH): one `tinylm` entry point per
    (name: module source), in this order, each module `fake_<name>` starting with `FAKE_BACKEND_MODULE`."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = ["[tinylm]"]
    for name, source in plugins.items():
        (root / f"fake_{name}.py").write_text(FAKE_BACKEND_MODULE + textwrap.dedent(source))
        lines.append(f"{name} = fake_{name}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root
