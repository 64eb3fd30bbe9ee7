"""Fake backends and plugins for the plugin-manager and selection tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from tinylm.backend import Availability, Capabilities
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
        )

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
