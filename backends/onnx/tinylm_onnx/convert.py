"""`prepare`: build the graph from the canonical weights and save it into the artifact folder (the core measures
its parity: `tinylm.conversion`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import onnx

from tinylm.backend import OpenRequest

from .options import BuildOptions
from .runtime import DATA_FILE, MODEL_FILE
from .transformer import build_graph

__all__ = ["prepare", "save_model"]


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_model(model: onnx.ModelProto, folder: Path, *, threshold: int) -> dict[str, Any]:
    """Write `model` into `folder`; its weights go to a separate data file when they exceed `threshold` bytes."""
    size = weight_bytes(model)
    external = size > threshold
    path = folder / MODEL_FILE
    if external:
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=DATA_FILE,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, path)
    return {"model": MODEL_FILE, "external_data": DATA_FILE if external else None, "weight_bytes": size}


def _fused_ops(spec: Any, opts: BuildOptions, bits: int) -> list[str]:
    from .rope import gqa_can_rotate

    ops = []
    if spec.kind == "decoder":
        ops.append("GroupQueryAttention" + (" (rotary inside)" if opts.fused_ops and gqa_can_rotate(spec) else ""))
    if opts.fused_ops:
        ops.append("SkipSimplifiedLayerNormalization" if spec.norm.kind == "rms" else "SkipLayerNormalization")
    if bits:
        ops.append(f"MatMulNBits (bits={bits}, block={opts.block(spec)}, accuracy_level={opts.accuracy_level})")
    return ops


def prepare(request: OpenRequest, opts: BuildOptions, out_dir: Path) -> dict[str, Any]:
    """Write the artifact (model.onnx [+ model.onnx.data]) into `out_dir`; return its metadata."""
    started = time.perf_counter()
    model = build_graph(request.spec, request.weights, opts)
    saved = save_model(model, out_dir, threshold=opts.external_data_threshold)
    del model
    return {
        "onnx": {
            **saved,
            "capacity": opts.capacity(request.spec),
            "fused_ops": _fused_ops(request.spec, opts, opts.bits),
            "quantize_lm_head": bool(opts.bits and opts.quantize_lm_head),
            "build_graph_seconds": time.perf_counter() - started,
        }
    }
