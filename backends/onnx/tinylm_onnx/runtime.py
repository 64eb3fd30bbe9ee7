"""Opening ONNX Runtime sessions on an artifact folder (imports onnxruntime only, never onnx).

model.onnx          the graph (weights inline only below the external-data threshold)
model.onnx.data     the weights, memory-mapped by ONNX Runtime (protobuf cannot hold more than 2 GB)
compiled/           this machine's optimized, pre-packed copy (`compiled.py`)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MODEL_FILE", "DATA_FILE", "session_options", "inference_session"]

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"


def session_options(
    num_threads: int, *, spin: bool = False, optimized: bool = False, save_to: Path | None = None
) -> Any:
    """Options for a CPU session: `spin` for a model whose runs come back to back (a decoder's steps),
    `optimized` for a graph ONNX Runtime already optimized (and saved with `save_to`, a folder that receives the
    optimized graph with its weights pre-packed)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(num_threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = ort.GraphOptimizationLevel
    so.graph_optimization_level = level.ORT_DISABLE_ALL if optimized else level.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not through logging
    # After a run, the pool's threads either spin-wait for the next one (ONNX Runtime's default, for about 25 ms),
    # which a decoder's next step finds awake, or block at once, which leaves the cores to whatever runs next:
    # an embedder's pool spinning after a query's embedding would hold a core through the answer's prefill
    # (docs/backends/onnx.md, "Threads").
    so.add_session_config_entry("session.force_spinning_stop", "0" if spin else "1")
    if save_to is not None:
        so.optimized_model_filepath = str(save_to / MODEL_FILE)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA_FILE)
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        so.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
    return so


def inference_session(
    model: Path | bytes,
    num_threads: int,
    *,
    spin: bool = False,
    optimized: bool = False,
    save_to: Path | None = None,
) -> Any:
    """A CPU `InferenceSession` on a saved model (a path) or a serialized one (bytes); see `session_options`."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model
    options = session_options(num_threads, spin=spin, optimized=optimized, save_to=save_to)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
