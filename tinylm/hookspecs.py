"""The hooks a tinylm plugin can implement (namespace `tinylm`).

Plugins are found through the `tinylm` entry-point group; built-in backends register exactly
as third-party ones do. Decorate implementations with `tinylm.hookimpl`:

    from tinylm import hookimpl

    @hookimpl
    def register_backends(register):
        register(MyBackend())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from .backend import Backend

__all__ = ["hookspec", "hookimpl", "register_backends", "register_models", "register_commands"]

hookspec = pluggy.HookspecMarker("tinylm")
#: Mark a function as the implementation of a tinylm hook.
hookimpl = pluggy.HookimplMarker("tinylm")


@hookspec
def register_backends(register: Callable[[Backend], None]) -> None:
    """Register backends.

    Parameters:
        register: call it once per `tinylm.backend.Backend` object the plugin provides.

    Called once, the first time tinylm needs the backend registry (never at `import tinylm`).
    Each plugin's call is isolated: one that raises is recorded as a `PluginLoadError` and shown
    by `tinylm backends` / `tinylm doctor`; the other plugins still register.
    """


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model names that resolve to a local folder (bundled or pre-installed models).

    Parameters:
        register: call it as `register(name, path, description="...")` where `path` is a
            folder in Hugging Face layout.

    Called once, the first time a model name is resolved. `tinylm.load(name)` looks names up
    here before the Hugging Face cache and the hub.
    """


@hookspec
def register_commands(subparsers: argparse._SubParsersAction, add_common: Callable[[Any], None]) -> None:
    """Add subcommands to the `tinylm` command line.

    Parameters:
        subparsers: the `argparse` sub-parser collection; call `subparsers.add_parser(...)` and
            set `func=` with `set_defaults(func=callable(args) -> int)`.
        add_common: adds the shared `--backend/--device/--precision` options to a parser.

    Called once when the CLI starts.
    """
