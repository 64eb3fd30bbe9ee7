"""`open_session`: the artifact folder -> a tinylm `Session` (imports onnxruntime, never onnx or the builder)."""

from __future__ import annotations

from tinylm.backend import OpenRequest
from tinylm.errors import ModelFileError

from .compiled import open_compiled
from .options import BuildOptions
from .runtime import MODEL_FILE, inference_session
from .session import OnnxSession

__all__ = ["open_session"]


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
    if opts.compiled_cache:
        session = open_compiled(folder, request.num_threads, spin=spin)
    else:
        session = inference_session(folder / MODEL_FILE, request.num_threads, spin=spin)
    return OnnxSession(session, request.spec, capacity=cap)
