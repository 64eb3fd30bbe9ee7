"""Opening ONNX Runtime sessions on an artifact folder (imports onnxruntime only, never onnx).

model.onnx          the graph (weights inline only below the external-data threshold)
model.onnx.data     the weights, memory-mapped by ONNX Runtime (protobuf cannot hold more than 2 GB)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["MODEL_FILE", "DATA_FILE", "session_options", "inference_session"]

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"


def session_options(num_threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(num_threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not through logging
    return so


def inference_session(model: Path | bytes, num_threads: int) -> Any:
    """A CPU `InferenceSession` on a saved model (a path) or a serialized one (bytes)."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, session_options(num_threads), providers=["CPUExecutionProvider"])
