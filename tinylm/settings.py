"""Every `TINYLM_*` environment variable, read in this one place, at the moment it is needed.

Nothing is read at import time, so tests and applications may set the variables at any point
before the call that uses them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "ENV_VARS",
    "backend_name",
    "device_name",
    "num_threads",
    "home",
    "plugin_allow_list",
    "plugin_deny_list",
    "plugin_autoload",
    "trace_plugins",
    "physical_cores",
    "cpu_name",
]

#: The documented environment variables and what each one does (the docs test this list).
ENV_VARS: dict[str, str] = {
    "TINYLM_BACKEND": "backend used when `load()` gets no `backend=` (e.g. torch, onnx)",
    "TINYLM_DEVICE": "device used when `load()` gets no `device=` (cpu, gpu, npu, ...)",
    "TINYLM_NUM_THREADS": "threads a backend may use (default: the physical cores)",
    "TINYLM_HOME": "artifact cache folder (default ~/.cache/tinylm)",
    "TINYLM_PLUGINS": "comma-separated allow-list of entry-point plugins to load",
    "TINYLM_DISABLE_PLUGINS": "comma-separated entry-point plugins not to load",
    "TINYLM_PLUGIN_AUTOLOAD": "set to 0 to load no entry-point plugins at all",
    "TINYLM_TRACE_PLUGINS": "set to 1 to log each plugin load and hook call",
    "TINYLM_API_KEY": "default for `tinylm serve --api-key`",
    "TINYLM_AUTO_BENCH": "set to 1 to let automatic backend choice follow the latest `tinylm bench` ranking",
}


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def backend_name() -> str | None:
    """`TINYLM_BACKEND`, or None when unset."""
    value = _get("TINYLM_BACKEND")
    return value.lower() if value else None


def device_name() -> str | None:
    """`TINYLM_DEVICE`, or None when unset."""
    return _get("TINYLM_DEVICE")


def physical_cores() -> int:
    """The number of physical CPU cores usable by this process (hyper-threads not counted)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        cores: set[tuple[str, str]] = set()
        phys = core = None
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        cores.add((phys or "0", core))
                    phys = core = None
        if core is not None:
            cores.add((phys or "0", core))
        if cores:
            return max(1, min(len(cores), usable))
    except OSError:
        pass
    return max(1, usable)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (else what `platform` knows), for benchmark records."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def num_threads() -> int:
    """`TINYLM_NUM_THREADS`, or the physical core count when unset."""
    value = _get("TINYLM_NUM_THREADS")
    if value is None:
        return physical_cores()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(
            f"TINYLM_NUM_THREADS={value!r} is not a positive integer. "
            "Fix: set it to a thread count such as 2, or unset it to use the physical cores."
        )
    return n


def home() -> Path:
    """`TINYLM_HOME`, default `~/.cache/tinylm` (not created here)."""
    value = _get("TINYLM_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "tinylm"


def _names(var: str) -> frozenset[str] | None:
    value = _get(var)
    if value is None:
        return None
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def plugin_allow_list() -> frozenset[str] | None:
    """`TINYLM_PLUGINS`: only these entry points load (None: all); names lower-cased."""
    return _names("TINYLM_PLUGINS")


def plugin_deny_list() -> frozenset[str]:
    """`TINYLM_DISABLE_PLUGINS`: these entry points never load; names lower-cased."""
    return _names("TINYLM_DISABLE_PLUGINS") or frozenset()


def plugin_autoload() -> bool:
    """False when `TINYLM_PLUGIN_AUTOLOAD=0`: no entry point loads (tests use it)."""
    return _get("TINYLM_PLUGIN_AUTOLOAD") not in ("0", "false", "no")


def auto_bench() -> bool:
    """True when `TINYLM_AUTO_BENCH=1`: automatic choice follows the saved `tinylm bench` ranking."""
    return _get("TINYLM_AUTO_BENCH") in ("1", "true", "yes")


def trace_plugins() -> bool:
    """True when `TINYLM_TRACE_PLUGINS=1`."""
    return _get("TINYLM_TRACE_PLUGINS") in ("1", "true", "yes")
