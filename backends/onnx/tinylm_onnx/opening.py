"""`open_session`: the artifact folder -> a tinylm `Session` (imports onnxruntime, never onnx or the builder).

A rows session (`OpenRequest.rows > 1`, which the core opens for batched calls beside the model's own session)
shares the `InferenceSession` of a live session opened on the same artifact with the same threads: the weights,
their packed copies and the optimized graph are loaded once, each session holds only its own KV cache. (Two
`tinylm.load` calls still open one each, as before.) ONNX Runtime's `run` may be called from several
threads on one `InferenceSession`; each tinylm session has its own IOBinding.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from tinylm.backend import OpenRequest
from tinylm.errors import ModelFileError

from .compiled import open_compiled
from .options import BuildOptions
from .rows import OnnxRowSession
from .runtime import MODEL_FILE, inference_session
from .session import OnnxSession

__all__ = ["open_session"]

_loaded: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def open_session(request: OpenRequest) -> OnnxSession:
    """Open the artifact `request.artifact` (built by `prepare`, cached or exported by the core)."""
    folder = request.artifact
    if folder is None or not (folder / MODEL_FILE).is_file():
        raise ModelFileError(
            f"{folder}: no {MODEL_FILE} in this onnx artifact. "
            "Fix: run `tinylm cache prune --backend onnx` and load again, or convert the model again."
        )
    opts: BuildOptions = request.options
    cap = int(request.meta.get("onnx", {}).get("capacity") or request.spec.max_positions)
    spin = request.spec.kind == "decoder" if opts.spin_wait is None else opts.spin_wait
    stat = (folder / MODEL_FILE).stat()
    key = (str(folder.resolve()), stat.st_mtime_ns, stat.st_size, request.num_threads, spin, opts.compiled_cache)
    with _lock:  # a rows session reuses the InferenceSession a session of the same artifact and threads holds
        session = _loaded.get(key) if request.rows > 1 else None
        if session is None:
            if opts.compiled_cache:
                session = open_compiled(folder, request.num_threads, spin=spin)
            else:
                session = inference_session(folder / MODEL_FILE, request.num_threads, spin=spin)
            _loaded[key] = session
    if request.spec.kind != "decoder":
        return OnnxSession(session, request.spec, capacity=cap)
    return OnnxRowSession(session, request.spec, capacity=cap, max_rows=request.rows)
