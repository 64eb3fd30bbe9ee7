"""`prepare`: build the model from the canonical weights, save the IR into the artifact folder, measure parity."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import openvino as ov

from tinylm import parity
from tinylm.backend import OpenRequest

from .compress import group_size
from .opening import MODEL_FILE, session_for
from .options import BuildOptions
from .session import OpenVINOSession
from .transformer import build_model, capacity

__all__ = ["prepare", "save"]


def save(request: OpenRequest, opts: BuildOptions, folder: Path) -> None:
    model = build_model(request.spec, request.weights, opts)
    ov.save_model(model, str(folder / MODEL_FILE), compress_to_fp16=False)  # storage is chosen per tensor


def _session(folder: Path, request: OpenRequest, opts: BuildOptions) -> OpenVINOSession:
    # parity is measured on the CPU whatever the device: the artifact is device-independent. No compiled blob
    # here: OpenVINO keys blobs by path, and this folder is renamed into place; the first open writes it there.
    uncached = replace(opts, compiled_cache=False)
    return session_for(folder, replace(request, device="CPU"), uncached, capacity(request.spec, opts))


def _parity(request: OpenRequest, opts: BuildOptions, out_dir: Path) -> dict[str, Any]:
    spec = request.spec
    ours = _session(out_dir, request, opts)
    record: dict[str, Any] = {"parity_execution": ours.execution}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        fp32 = None
        if opts.precision != "fp32":  # the fp32 model: perplexity baseline, and the reference without torch
            fp32_opts = BuildOptions(precision="fp32", max_length=opts.max_length)
            save(request, fp32_opts, Path(tmp))
            fp32 = _session(Path(tmp), request, fp32_opts)
        record.update(parity.record(ours, fp32, request, backend="openvino", max_tokens=min(256, capacity(spec, opts))))
        if fp32 is not None:
            fp32.close()
    ours.close()
    return record


def prepare(request: OpenRequest, out_dir: Path) -> dict[str, Any]:
    """Write the artifact (openvino_model.xml + .bin) into `out_dir`; return its metadata."""
    opts = BuildOptions.from_request(request.precision, request.options)
    started = time.perf_counter()
    save(request, opts, out_dir)
    plan = opts.plan
    meta: dict[str, Any] = {
        "openvino": {
            "model": MODEL_FILE,
            "openvino_version": ov.__version__,
            "capacity": capacity(request.spec, opts),
            "stateful": request.spec.kind == "decoder",
            "weights": plan.storage,
            "lm_head": plan.head if request.spec.kind == "decoder" else None,
            "int4_group": group_size(request.spec.hidden_size, 4, opts.group_size) if plan.storage == "int4" else None,
            "inference_precision": plan.execution or "device default",
            "kv_cache_precision": opts.kv_cache or "device default",
            "build_seconds": time.perf_counter() - started,
        }
    }
    if opts.parity:
        started = time.perf_counter()
        meta.update(_parity(request, opts, out_dir))
        meta["openvino"]["parity_seconds"] = time.perf_counter() - started
    return meta
