"""`prepare`: build the model from the canonical weights and save the IR into the artifact folder (the core
measures its parity: `tinylm.conversion`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openvino as ov

from tinylm.backend import OpenRequest

from .compress import group_size
from .opening import MODEL_FILE
from .options import BuildOptions
from .transformer import build_model

__all__ = ["prepare"]


def prepare(request: OpenRequest, opts: BuildOptions, out_dir: Path) -> dict[str, Any]:
    """Write the artifact (openvino_model.xml + .bin) into `out_dir`; return its metadata."""
    started = time.perf_counter()
    model = build_model(request.spec, request.weights, opts)
    ov.save_model(model, str(out_dir / MODEL_FILE), compress_to_fp16=False)  # storage is chosen per tensor
    plan, spec = opts.plan, request.spec
    return {
        "openvino": {
            "model": MODEL_FILE,
            "openvino_version": ov.__version__,
            "capacity": opts.capacity(spec),
            "stateful": spec.kind == "decoder",
            "weights": plan.storage,
            "lm_head": plan.head if spec.kind == "decoder" else None,
            "int4_group": group_size(spec.hidden_size, 4, opts.group_size) if plan.storage == "int4" else None,
            "inference_precision": plan.execution or "device default",
            "kv_cache_precision": opts.kv_cache or "device default",
            "build_seconds": time.perf_counter() - started,
        }
    }
