"""The plugin manager: entry points loaded lazily, once, one by one; broken plugins isolated.

Nothing here runs at `import tinylm`. The first call that needs a backend or a model name loads
every entry point of the `tinylm` group separately: a plugin that fails to import, declares an
unknown hook, or raises inside its hook is recorded as a `PluginLoadError` (shown by
`tinylm backends` and `tinylm doctor`) and blocked, while the others keep working.

Every call into plugin code (the import, each hook, a backend's `availability()` and `devices()`) is
isolated: any exception but `KeyboardInterrupt` — `SystemExit` included — becomes a `PluginLoadError`.
Built-in backends (those of the distributions in `BUILTIN_DISTRIBUTIONS`) keep their names: a third-party
plugin registering one of them is an error naming both, and two third-party plugins registering the same
name are an error naming both, neither backend being used.

Environment: `TINYLM_PLUGINS` (allow-list), `TINYLM_DISABLE_PLUGINS` (names case-insensitive; a name no
installed plugin has is reported in `config_errors`), `TINYLM_PLUGIN_AUTOLOAD=0`, `TINYLM_TRACE_PLUGINS=1`
(log each load and hook call). The core's own plugins (distribution `tinylm`, e.g. the bundled models)
load whatever `TINYLM_PLUGINS` says; only `TINYLM_DISABLE_PLUGINS` turns them off.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs, settings
from .backend import Availability, Backend
from .errors import ConfigError, PluginLoadError

__all__ = ["PluginManager", "ModelEntry", "get_manager", "reset", "BUILTIN_DISTRIBUTIONS"]

log = logging.getLogger("tinylm.plugins")
GROUP = "tinylm"
#: The distributions whose plugins are tinylm's own: their backend names cannot be taken over.
BUILTIN_DISTRIBUTIONS = frozenset({"tinylm", "tinylm-torch", "tinylm-onnx", "tinylm-openvino", "tinylm-coreml"})
#: The core's own distribution: its plugins load whatever the allow-list says.
CORE_DISTRIBUTION = "tinylm"


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) or ""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """A model name registered through `register_models`."""

    name: str
    path: Path
    description: str = ""
    plugin: str = ""


def _trace(message: str) -> None:
    """pluggy's trace of a hook call, one log record, each argument's repr cut to one readable line."""
    lines = [line if len(line) <= 160 else line[:157] + "..." for line in message.rstrip().splitlines()]
    log.debug("%s", "\n".join(lines))


class PluginManager:
    """tinylm's view of its plugins: backends, model names, CLI commands and load errors."""

    def __init__(self, *, autoload: bool | None = None) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.errors: list[PluginLoadError] = []
        #: Settings about plugins that name no installed plugin (`TINYLM_PLUGINS`, `TINYLM_DISABLE_PLUGINS`).
        self.config_errors: list[ConfigError] = []
        self._autoload = autoload
        self._loaded = False
        self._builtin: set[str] = set()
        self._backends: dict[str, Backend] | None = None
        self._backend_plugins: dict[str, str] = {}
        self._models: dict[str, ModelEntry] | None = None
        self._lock = threading.RLock()
        if settings.trace_plugins():  # pluggy traces every hook call made through its hook callers
            log.setLevel(logging.DEBUG)
            self.pm.trace.root.setwriter(_trace)
            self.pm.enable_tracing()

    # loading -----------------------------------------------------------------------------

    def load(self) -> None:
        """Load the entry points (once). Safe to call from several threads."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            autoload = settings.plugin_autoload() if self._autoload is None else self._autoload
            if not autoload:
                return
            allow, deny = settings.plugin_allow_list(), settings.plugin_deny_list()
            found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
            self._check_names(allow, deny, {ep.name.lower() for ep in found})
            for ep in found:
                name, dist = ep.name.lower(), _dist_name(ep)
                allowed = allow is None or name in allow or dist == CORE_DISTRIBUTION
                if name in deny or not allowed:
                    log.debug("plugin %s skipped by TINYLM_PLUGINS / TINYLM_DISABLE_PLUGINS", ep.name)
                    continue
                if self.pm.has_plugin(ep.name) or self.pm.is_blocked(ep.name):
                    continue
                log.debug("loading plugin %s (%s)", ep.name, ep.value)
                try:
                    plugin = ep.load()
                except KeyboardInterrupt:
                    raise
                except BaseException as e:  # isolate: any failure of a third-party import, SystemExit included
                    self._fail(ep.name, e)
                    continue
                self.register(plugin, name=ep.name, builtin=dist in BUILTIN_DISTRIBUTIONS)

    def _check_names(self, allow: frozenset[str] | None, deny: frozenset[str], installed: set[str]) -> None:
        for var, names in (("TINYLM_PLUGINS", allow or frozenset()), ("TINYLM_DISABLE_PLUGINS", deny)):
            unknown = sorted(names - installed)
            if unknown:
                error = ConfigError(
                    f"{var} names plugin(s) that are not installed: {', '.join(unknown)} "
                    f"(installed: {', '.join(sorted(installed)) or 'none'}). "
                    f"Fix: correct the name(s) in {var}, or install the plugin."
                )
                log.warning("%s", error)
                self.config_errors.append(error)

    def register(self, plugin: Any, *, name: str, builtin: bool = False) -> bool:
        """Register a plugin object (a module or an instance with `@hookimpl` methods).

        `builtin`: the plugin is one of tinylm's own (its backend names cannot be taken by another plugin).
        Returns False (and records a `PluginLoadError`) if it declares hooks tinylm does not have.
        """
        with self._lock:
            try:
                self.pm.register(plugin, name=name)
                self.pm.check_pending()
            except KeyboardInterrupt:
                raise
            except BaseException as e:
                if self.pm.get_plugin(name) is not None:
                    self.pm.unregister(name=name)
                self._fail(name, e)
                return False
            if builtin:
                self._builtin.add(name)
            self._forget()
            return True

    def unregister(self, name: str) -> None:
        """Remove a plugin (tests use it to clean up fakes)."""
        with self._lock:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._builtin.discard(name)
            self._forget()

    def _forget(self) -> None:
        self._backends = self._models = None
        self._backend_plugins = {}

    def _fail(self, name: str, cause: BaseException, *, hint: str = "") -> None:
        error = PluginLoadError(name, cause, hint=hint)
        log.warning("%s", error)
        self.errors.append(error)
        if not self.pm.is_blocked(name):
            self.pm.set_blocked(name)

    def _record(self, name: str, cause: BaseException, *, hint: str = "") -> None:
        """Record a failed call into plugin `name` (once per distinct message), without blocking it."""
        error = PluginLoadError(name, cause, hint=hint)
        if all(str(e) != str(error) for e in self.errors):
            log.warning("%s", error)
            self.errors.append(error)

    def _call(self, plugin: str, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Call plugin code, isolating every failure but KeyboardInterrupt: (True, result) or (False, exception)."""
        try:
            return True, function(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit and GeneratorExit included: plugin code must not end tinylm
            self._record(plugin, e)
            return False, e

    def _callers(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """(plugin name, a hook caller limited to that plugin) for each plugin implementing `hook_name`, built-in
        plugins first: every call goes through pluggy (its tracing and hook wrappers apply) while one plugin's
        failure stays its own."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        impls = sorted(impls, key=lambda impl: impl.plugin_name not in self._builtin)
        for impl in impls:
            others = [other.plugin for other in impls if other.plugin is not impl.plugin]
            log.debug("calling %s of plugin %s", hook_name, impl.plugin_name)
            yield impl.plugin_name, self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def _call_each(self, hook_name: str, **kwargs: Any) -> None:
        """Call one hook plugin by plugin, isolating failures."""
        for plugin, call in self._callers(hook_name):
            self._call(plugin, call, **kwargs)

    # what plugins provide ------------------------------------------------------------------

    def backends(self) -> dict[str, Backend]:
        """Every registered backend by name.

        A name registered twice: a built-in plugin keeps it (the other is reported); two third-party plugins
        lose it both (reported naming both), so which one runs never depends on installation order."""
        with self._lock:
            self.load()
            if self._backends is None:
                claims: dict[str, list[tuple[str, Backend]]] = {}
                for plugin, call in self._callers("register_backends"):

                    def register(backend: Backend, _plugin: str = plugin) -> None:
                        name = str(getattr(backend, "name", "")).lower()
                        if not name:
                            raise TypeError(f"{backend!r} has no name")
                        for attribute in ("version", "capabilities"):
                            getattr(backend, attribute)  # raises here, in the plugin's hook, if it is broken
                        claims.setdefault(name, []).append((_plugin, backend))

                    self._call(plugin, call, register=register)
                found: dict[str, Backend] = {}
                owners: dict[str, str] = {}
                for name, claimants in claims.items():
                    winner = self._resolve_clash(name, claimants)
                    if winner is not None:
                        owners[name], found[name] = winner
                self._backends, self._backend_plugins = found, owners
            return dict(self._backends)

    def _resolve_clash(self, name: str, claimants: list[tuple[str, Backend]]) -> tuple[str, Backend] | None:
        """The (plugin, backend) that keeps `name`; reports every other claimant."""
        if len(claimants) == 1:
            return claimants[0]
        builtin = [c for c in claimants if c[0] in self._builtin]
        winner = builtin[0] if builtin else None
        plugins = [plugin for plugin, _ in claimants]
        for plugin, _ in claimants:
            if winner is not None and plugin == winner[0]:
                continue
            others = ", ".join(repr(p) for p in plugins if p != plugin)
            if winner is not None:
                cause = ValueError(
                    f"backend name {name!r} is already registered by {others}, tinylm's built-in plugin, which keeps it"
                )
            else:
                cause = ValueError(f"backend name {name!r} is also registered by {others}; neither backend is used")
            self._record(plugin, cause, hint=f"uninstall one of them, or set TINYLM_DISABLE_PLUGINS={plugin}")
        return winner

    def backend_plugin(self, name: str) -> str:
        """The plugin (entry point) that registered backend `name`."""
        self.backends()
        return self._backend_plugins.get(name, "")

    def availability(self, backend: Backend) -> Availability:
        """`backend.availability()`, isolated: one that raises is unavailable (the error recorded)."""
        plugin = self._backend_plugins.get(str(backend.name), str(backend.name))
        ok, result = self._call(plugin, backend.availability)
        if ok and isinstance(result, Availability):
            return result
        if ok:
            result = TypeError(f"availability() returned {result!r}, not an Availability")
            self._record(plugin, result)
        return Availability(
            ok=False,
            reason=f"its availability() check failed ({type(result).__name__}: {result}).",
            hint=f"reinstall or upgrade the package that provides {plugin!r}, "
            f"or disable it with TINYLM_DISABLE_PLUGINS={plugin}",
        )

    def devices(self, backend: Backend) -> list[str]:
        """`backend.devices()`, isolated: one that raises lists none (the error recorded)."""
        plugin = self._backend_plugins.get(str(backend.name), str(backend.name))
        ok, result = self._call(plugin, backend.devices)
        return [str(d) for d in result] if ok and isinstance(result, list | tuple) else []

    def models(self) -> dict[str, ModelEntry]:
        """Model names registered by plugins (built-in plugins first: theirs win a clash)."""
        with self._lock:
            self.load()
            if self._models is None:
                found: dict[str, ModelEntry] = {}
                for plugin, call in self._callers("register_models"):

                    def register(name: str, path: str | Path, *, description: str = "", _p: str = plugin) -> None:
                        found.setdefault(
                            name, ModelEntry(name=name, path=Path(path), description=description, plugin=_p)
                        )

                    self._call(plugin, call, register=register)
                self._models = found
            return dict(self._models)

    def check(self) -> list[PluginLoadError]:
        """Call every hook and every backend's `availability()` once; the plugin errors so far (`doctor`)."""
        for backend in self.backends().values():
            self.availability(backend)
        self.models()
        return list(self.errors)

    def add_commands(self, subparsers: Any, add_common: Callable[[Any], None]) -> None:
        """Let plugins add CLI subcommands."""
        self.load()
        self._call_each("register_commands", subparsers=subparsers, add_common=add_common)


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> PluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset() -> None:
    """Forget the plugin manager; the next use reloads entry points (tests)."""
    global _manager
    with _manager_lock:
        _manager = None
