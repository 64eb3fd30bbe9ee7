"""Reading an artifact and compiling it for a device -> a tinylm `Session` (imports openvino, not the builder).

openvino_model.xml / .bin   the IR (the .bin is memory-mapped by `read_model`: warm loads parse no weights)
compiled/                  OpenVINO's CACHE_DIR (`compiled_cache=True`, the default): the compiled blob for each
                           device and property set, written by the first open of the artifact at its final
                           path (OpenVINO keys blobs by the IR's path), not part of the artifact's inventory;
                           a stale or damaged blob is recompiled and rewritten by OpenVINO itself

A rows session (`OpenRequest.rows > 1`, which the core opens for batched calls beside the model's own session)
shares the compiled model of a live session opened on the same artifact for the same device, options and
threads (the weights are loaded once); each session holds only its own infer requests, so its own state. (Two
`tinylm.load` calls still compile one each, as before.)
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any

from tinylm.backend import OpenRequest
from tinylm.errors import ModelFileError

from .devices import check_device, compile_properties, core
from .options import BuildOptions
from .rows import OpenVINORowSession
from .session import OpenVINOSession

__all__ = ["open_session", "compile_folder", "MODEL_FILE", "CACHE_FOLDER"]


MODEL_FILE = "openvino_model.xml"
CACHE_FOLDER = "compiled"


def _cache_usable(folder: Path) -> bool:
    """A blob can be read (compiled/ exists) or written (the artifact folder is writable)."""
    return (folder / CACHE_FOLDER).is_dir() or os.access(folder, os.W_OK)


def compile_folder(folder: Path, device: str, opts: BuildOptions, num_threads: int) -> Any:
    """The IR in `folder` compiled for `device` (tinylm's lower-case name, or OpenVINO's; through the
    compiled-model cache when it is on)."""
    device = device.upper()  # OpenVINO's own spelling: CPU, GPU.0, AUTO
    check_device(device)
    cache = str(folder / CACHE_FOLDER) if opts.compiled_cache and _cache_usable(folder) else None
    props = compile_properties(device, opts, num_threads, cache)
    if cache:  # compiling from the path lets OpenVINO skip reading the IR on a cache hit
        return core().compile_model(str(folder / MODEL_FILE), device, props)
    return core().compile_model(core().read_model(str(folder / MODEL_FILE)), device, props)


class _Held:
    """A compiled model (which takes no weak reference) in something that does; each session keeps it alive."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled


_compiled: weakref.WeakValueDictionary[tuple[Any, ...], _Held] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def _shared(folder: Path, request: OpenRequest, opts: BuildOptions) -> _Held:
    """The compiled model of `folder` for this request's device, options and threads (compiled once while some
    session uses it)."""
    stat = (folder / MODEL_FILE).stat()
    key = (str(folder.resolve()), stat.st_mtime_ns, stat.st_size, request.device, request.num_threads, repr(opts))
    with _lock:
        held = _compiled.get(key) if request.rows > 1 else None
        if held is None:
            held = _Held(compile_folder(folder, request.device, opts, request.num_threads))
            _compiled.setdefault(key, held)
    return held


def session_for(folder: Path, request: OpenRequest, opts: BuildOptions, capacity: int) -> OpenVINOSession:
    held = _shared(folder, request, opts)
    compiled = held.compiled
    try:
        execution = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # e.g. "f32"
    except RuntimeError:  # devices (AUTO) that do not report it
        execution = opts.plan.execution or "device default"
    if request.spec.kind != "decoder":
        session = OpenVINOSession(compiled, request.spec, capacity=capacity, device=request.device, execution=execution)
    else:
        session = OpenVINORowSession(
            compiled, request.spec, capacity=capacity, device=request.device, execution=execution, max_rows=request.rows
        )
    session.held = held  # the shared compiled model lives as long as some session uses it
    return session


def open_session(request: OpenRequest) -> OpenVINOSession:
    """Open the artifact `request.artifact` (built by `prepare`, cached or exported by the core)."""
    folder = request.artifact
    if folder is None or not (folder / MODEL_FILE).is_file():
        raise ModelFileError(
            f"{folder}: no {MODEL_FILE} in this openvino artifact. "
            "Fix: run `tinylm cache prune --backend openvino` and load again, or convert the model again."
        )
    capacity = int(request.meta.get("openvino", {}).get("capacity") or request.spec.max_positions)
    return session_for(folder, request, request.options, capacity)
