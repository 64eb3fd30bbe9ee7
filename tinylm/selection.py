"""Choosing the backend, device and precision — in one place, with one documented precedence.

Backend: the `backend=` argument, else `TINYLM_BACKEND`, else the available backend with the
highest priority for the model's kind (`capabilities.auto[kind].priority`, else `capabilities.priority`)
that runs it. A backend asked for by name that cannot run raises `BackendUnavailable` (with the reason
and the fix) — it never falls back.
Device: `device=`, else `TINYLM_DEVICE`, else the backend's first device.
Precision: `precision=`, else, when the backend was chosen automatically and declares `auto[kind]`, the
first of its `precisions` that the device computes natively (`native_precisions`) and whose artifact keeps
the kind's quality bar (`tinylm.quality`; checked by `tinylm.load` once the artifact is built, trying
`Choice.candidates` in order), else the backend's `default_precision`. A named backend (argument or
`TINYLM_BACKEND`) keeps its `default_precision`: what a user names runs as documented, never re-tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import settings
from .backend import Backend
from .errors import BackendUnavailable, CapabilityError, DeviceUnavailable, PrecisionUnsupported, UnknownBackend
from .plugins import PluginManager

__all__ = ["Choice", "choose", "default_device", "kind_priority", "auto_precisions"]


def _install_hint() -> str:
    from .install import install_command

    return f"install a backend, e.g. `{install_command('onnx')}` or `{install_command('torch')}`"


@dataclass(frozen=True, kw_only=True)
class Choice:
    """What will run, and why it was chosen ("argument", "TINYLM_BACKEND", "auto", "auto (...)" with the
    per-kind rule that chose the precision, "bench ranking" or "the converted folder").

    `candidates`: when the precision was picked automatically by a per-kind rule (`Capabilities.auto`), the
    precisions to try in order (`precision` is the first): `tinylm.load` builds each until one keeps the quality
    bar (`tinylm.quality`) and records which in `reason`; empty otherwise (nothing to check)."""

    backend: Backend
    device: str
    precision: str
    reason: str
    candidates: tuple[str, ...] = ()


def kind_priority(backend: Backend, kind: str) -> int:
    """The backend's rank in the automatic choice for models of `kind`."""
    pref = backend.capabilities.auto.get(kind)
    return backend.capabilities.priority if pref is None else pref.priority


def auto_precisions(backend: Backend, kind: str, device: str) -> tuple[str, ...]:
    """The precisions the automatic choice tries, in order, for a model of `kind` on `device`: the backend's
    `auto[kind].precisions` that the device computes natively (all of them without `Capabilities(native=True)`);
    (default_precision,) when it declares none for the kind."""
    caps = backend.capabilities
    pref = caps.auto.get(kind)
    if pref is None:
        return (caps.default_precision,)
    native = set(backend.native_precisions(device)) if caps.native else set(caps.precisions)  # type: ignore[attr-defined]
    return tuple(p for p in pref.precisions if p in native) or (caps.default_precision,)


def _summary(manager: PluginManager) -> str:
    lines = []
    for name, b in sorted(manager.backends().items()):
        av = manager.availability(b)
        lines.append(f"{name} ({'available' if av.ok else 'unavailable: ' + av.reason})")
    for err in manager.errors:
        lines.append(f"{err.plugin} (plugin failed to load)")
    return "; ".join(lines) or "none registered"


def unknown_backend(name: str, manager: PluginManager, *, source: str) -> UnknownBackend:
    """The error for a backend name no installed plugin registers, listing the ones that are."""
    return UnknownBackend(
        f"unknown backend {name!r} (from {source}). Registered backends: {_summary(manager)}. "
        f"Fix: use one of those names, or {_install_hint()}."
    )


def _backend(
    requested: str | None,
    kind: str,
    manager: PluginManager,
    convert: bool,
    preferred: Sequence[str] = (),
    source: str = "argument",
    states: Sequence[str] = (),
) -> tuple[Backend, str]:
    backends = manager.backends()
    name, reason = (requested, source) if requested else (settings.backend_name(), "TINYLM_BACKEND")
    if name:
        name = name.lower()
        if name not in backends:
            raise unknown_backend(name, manager, source=reason)
        backend = backends[name]
        av = manager.availability(backend)
        if not av.ok and not (convert and av.convert_only):
            fix = av.hint or "choose one of the available backends"
            raise BackendUnavailable(
                f"backend {name!r} (from {reason}) cannot run here: {av.reason} Backends: {_summary(manager)}. "
                f"Fix: {fix.rstrip('.')}."
            )
        if kind not in backend.capabilities.kinds:
            raise CapabilityError(
                f"backend {name!r} does not run {kind} models (it runs: {', '.join(backend.capabilities.kinds)}). "
                "Fix: choose another backend."
            )
        missing = [k for k in states if k not in backend.capabilities.states]
        if missing:
            raise CapabilityError(
                f"backend {name!r} does not keep the per-layer {', '.join(missing)} state this model's layers need "
                f"(it keeps: {', '.join(backend.capabilities.states)}). Fix: choose a backend that does "
                f"({', '.join(_holding(backends, states)) or 'none is installed'})."
            )
        return backend, reason
    candidates = [
        b
        for b in backends.values()
        if kind in b.capabilities.kinds and set(states) <= set(b.capabilities.states) and manager.availability(b).ok
    ]
    if not candidates:
        needs = f" with per-layer {', '.join(states)} state" if set(states) - {"kv"} else ""
        raise BackendUnavailable(
            f"no backend can run a {kind} model{needs} here. Backends: {_summary(manager)}. Fix: {_install_hint()}."
        )
    for name in preferred:
        for b in candidates:
            if b.name == name:
                return b, "bench ranking"
    candidates.sort(key=lambda b: (-kind_priority(b, kind), b.name))
    return candidates[0], "auto"


def _holding(backends: dict[str, Backend], states: Sequence[str]) -> list[str]:
    """The registered backends that keep every state kind in `states`."""
    return sorted(n for n, b in backends.items() if set(states) <= set(b.capabilities.states))


def default_device(backend: Backend, manager: PluginManager | None = None) -> str:
    """The device a load that names none runs on: `devices()[0]`, or `default_device()` where the backend
    declares `Capabilities(default_device=True)` (found without listing, which may mean probing, every device).

    `DeviceUnavailable` when the backend lists none (with `manager`, a raising `devices()` lists none)."""
    if backend.capabilities.default_device:
        return backend.default_device()  # type: ignore[attr-defined, no-any-return]
    devices = manager.devices(backend) if manager is not None else backend.devices()
    if not devices:
        raise DeviceUnavailable(
            f"backend {backend.name!r} lists no device (`tinylm doctor` shows why). "
            "Fix: choose another backend, or reinstall the one that fails."
        )
    return devices[0]


def choose(
    manager: PluginManager,
    *,
    kind: str,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    convert: bool = False,
    preferred: Sequence[str] = (),
    source: str = "argument",
    states: Sequence[str] = (),
) -> Choice:
    """Resolve backend, device and precision for a model of `kind` ("decoder" or "encoder").

    `preferred`: backend names in order (the saved `tinylm bench` ranking, opt-in with
    `TINYLM_AUTO_BENCH=1`); the automatic choice takes the first available one before the static order.

    `convert=True` (for `tinylm.convert`) also accepts a named backend that is `convert_only` here.
    `source`: where a given `backend` comes from, for messages and `Choice.reason` (default "argument").
    `states`: the per-layer state kinds the model keeps (`ModelSpec.state_kinds`); a backend must declare them all
    (`Capabilities.states`), else a named one raises `CapabilityError` and the automatic choice passes it by."""
    chosen, reason = _backend(backend, kind, manager, convert, preferred, source, states)
    want_device = device or settings.device_name()
    if want_device is None:
        dev = default_device(chosen, manager)
    else:
        devices = manager.devices(chosen)
        matches = [d for d in devices if d.lower() == want_device.lower()]
        if not matches:
            source = "device argument" if device else "TINYLM_DEVICE"
            raise DeviceUnavailable(
                f"device {want_device!r} ({source}) is not present for backend {chosen.name!r}; "
                f"present: {', '.join(devices)}. Fix: use one of those, or choose a backend that has it "
                "(`tinylm backends` lists each backend's devices)."
            )
        dev = matches[0]
    caps = chosen.capabilities
    if precision is None and reason == "auto" and kind in caps.auto:
        tried = auto_precisions(chosen, kind, dev)
        pref = caps.auto[kind]
        native = f"native on {dev}: {', '.join(tried)}" if caps.native else ""
        why = "; ".join(x for x in (f"{chosen.name} ranks first for {kind} models", pref.why, native) if x)
        return Choice(backend=chosen, device=dev, precision=tried[0], reason=f"auto ({why})", candidates=tried)
    prec = (precision or caps.default_precision).lower()
    if prec not in caps.precisions:
        raise PrecisionUnsupported(
            f"backend {chosen.name!r} does not offer precision {prec!r}; it offers {', '.join(caps.precisions)}. "
            "Fix: pick one of those, or a backend that offers it (`tinylm backends`)."
        )
    return Choice(backend=chosen, device=dev, precision=prec, reason=reason)
