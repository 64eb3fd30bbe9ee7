"""`prepare`: build the graph from the canonical weights, save it into the artifact folder, measure its parity."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

from tinylm import parity
from tinylm.backend import OpenRequest

from .options import BuildOptions
from .runtime import DATA_FILE, MODEL_FILE, inference_session
from .session import OnnxSession
from .transformer import build_graph, capacity

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
        ops.append(f"MatMulNBits (bits={bits}, block={opts.block_size}, accuracy_level={opts.accuracy_level})")
    return ops


def _session(folder: Path, request: OpenRequest, opts: BuildOptions) -> OnnxSession:
    sess = inference_session(folder / MODEL_FILE, request.num_threads)
    return OnnxSession(sess, request.spec, capacity=capacity(request.spec, opts))


def _parity(request: OpenRequest, opts: BuildOptions, out_dir: Path) -> dict[str, Any]:
    spec = request.spec
    ours = _session(out_dir, request, opts)
    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        fp32 = None
        if opts.bits:  # the fp32 graph: perplexity baseline, and the reference when torch is absent
            fp32_opts = BuildOptions(**{**opts.__dict__, "precision": "fp32"})
            save_model(build_graph(spec, request.weights, fp32_opts), Path(tmp), threshold=opts.external_data_threshold)
            fp32 = _session(Path(tmp), request, fp32_opts)
        record.update(parity.record(ours, fp32, request, backend="onnx", max_tokens=min(256, capacity(spec, opts))))
        if fp32 is not None:
            fp32.close()
    ours.close()
    return record


def prepare(request: OpenRequest, out_dir: Path) -> dict[str, Any]:
    """Write the artifact (model.onnx [+ model.onnx.data]) into `out_dir`; return its metadata."""
    opts = BuildOptions.from_request(request.precision, request.options)
    started = time.perf_counter()
    model = build_graph(request.spec, request.weights, opts)
    saved = save_model(model, out_dir, threshold=opts.external_data_threshold)
    del model
    meta: dict[str, Any] = {
        "onnx": {
            **saved,
            "capacity": capacity(request.spec, opts),
            "fused_ops": _fused_ops(request.spec, opts, opts.bits),
            "quantize_lm_head": bool(opts.bits and opts.quantize_lm_head),
            "build_graph_seconds": time.perf_counter() - started,
        }
    }
    if opts.parity:
        started = time.perf_counter()
        meta.update(_parity(request, opts, out_dir))
        meta["onnx"]["parity_seconds"] = time.perf_counter() - started
    return meta
