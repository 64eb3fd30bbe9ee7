"""The plugin manager: entry points loaded lazily, once, one by one; broken plugins isolated.

Nothing here runs at `import tinylm`. The first call that needs a backend or a model name loads
every entry point of the `tinylm` group separately: a plugin that fails to import, declares an
unknown hook, or raises inside its hook is recorded as a `PluginLoadError` (shown by
`tinylm backends` and `tinylm doctor`) and blocked, while the others keep working.

Environment: `TINYLM_PLUGINS` (allow-list), `TINYLM_DISABLE_PLUGINS`, `TINYLM_PLUGIN_AUTOLOAD=0`,
`TINYLM_TRACE_PLUGINS=1` (log each load and hook call).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs, settings
from .backend import Backend
from .errors import PluginLoadError

__all__ = ["PluginManager", "ModelEntry", "get_manager", "reset"]

log = logging.getLogger("tinylm.plugins")
GROUP = "tinylm"


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
        self._autoload = autoload
        self._loaded = False
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
            for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
                if ep.name in deny or (allow is not None and ep.name not in allow):
                    log.debug("plugin %s skipped by TINYLM_PLUGINS / TINYLM_DISABLE_PLUGINS", ep.name)
                    continue
                if self.pm.has_plugin(ep.name) or self.pm.is_blocked(ep.name):
                    continue
                log.debug("loading plugin %s (%s)", ep.name, ep.value)
                try:
                    plugin = ep.load()
                except Exception as e:  # isolate: any failure of a third-party import
                    self._fail(ep.name, e)
                    continue
                self.register(plugin, name=ep.name)

    def register(self, plugin: Any, *, name: str) -> bool:
        """Register a plugin object (a module or an instance with `@hookimpl` methods).

        Returns False (and records a `PluginLoadError`) if it declares hooks tinylm does not have.
        """
        with self._lock:
            try:
                self.pm.register(plugin, name=name)
                self.pm.check_pending()
            except Exception as e:
                if self.pm.get_plugin(name) is not None:
                    self.pm.unregister(name=name)
                self._fail(name, e)
                return False
            self._backends = self._models = None
            return True

    def unregister(self, name: str) -> None:
        """Remove a plugin (tests use it to clean up fakes)."""
        with self._lock:
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._backends = self._models = None
            self._backend_plugins.clear()

    def _fail(self, name: str, cause: BaseException) -> None:
        error = PluginLoadError(name, cause)
        log.warning("%s", error)
        self.errors.append(error)
        if not self.pm.is_blocked(name):
            self.pm.set_blocked(name)

    def _callers(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """(plugin name, a hook caller limited to that plugin) for each plugin implementing `hook_name`: every
        call goes through pluggy (its tracing and hook wrappers apply) while one plugin's failure stays its own."""
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()
        for impl in impls:
            others = [other.plugin for other in impls if other.plugin is not impl.plugin]
            log.debug("calling %s of plugin %s", hook_name, impl.plugin_name)
            yield impl.plugin_name, self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def _call_each(self, hook_name: str, **kwargs: Any) -> None:
        """Call one hook plugin by plugin, isolating failures."""
        for plugin, call in self._callers(hook_name):
            try:
                call(**kwargs)
            except Exception as e:
                self.errors.append(PluginLoadError(plugin, e))
                log.warning("%s", self.errors[-1])

    # what plugins provide ------------------------------------------------------------------

    def backends(self) -> dict[str, Backend]:
        """Every registered backend by name (duplicates: the first plugin keeps the name)."""
        with self._lock:
            self.load()
            if self._backends is None:
                found: dict[str, Backend] = {}
                owners: dict[str, str] = {}
                for plugin, call in self._callers("register_backends"):

                    def register(backend: Backend, _plugin: str = plugin) -> None:
                        name = str(getattr(backend, "name", "")).lower()
                        if not name:
                            raise TypeError(f"{backend!r} has no name")
                        if name in found:
                            self.errors.append(
                                PluginLoadError(
                                    _plugin,
                                    ValueError(f"backend name {name!r} is already registered by {owners[name]!r}"),
                                    hint=f"uninstall one of the two, or set TINYLM_DISABLE_PLUGINS={_plugin}",
                                )
                            )
                            return
                        found[name] = backend
                        owners[name] = _plugin

                    try:
                        call(register=register)
                    except Exception as e:
                        self.errors.append(PluginLoadError(plugin, e))
                        log.warning("%s", self.errors[-1])
                self._backends, self._backend_plugins = found, owners
            return dict(self._backends)

    def backend_plugin(self, name: str) -> str:
        """The plugin (entry point) that registered backend `name`."""
        self.backends()
        return self._backend_plugins.get(name, "")

    def models(self) -> dict[str, ModelEntry]:
        """Model names registered by plugins."""
        with self._lock:
            self.load()
            if self._models is None:
                found: dict[str, ModelEntry] = {}
                for plugin, call in self._callers("register_models"):

                    def register(name: str, path: str | Path, *, description: str = "", _p: str = plugin) -> None:
                        found.setdefault(
                            name, ModelEntry(name=name, path=Path(path), description=description, plugin=_p)
                        )

                    try:
                        call(register=register)
                    except Exception as e:
                        self.errors.append(PluginLoadError(plugin, e))
                self._models = found
            return dict(self._models)

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
