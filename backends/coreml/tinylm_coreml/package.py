"""`prepare`: ModelSpec + canonical weights -> `model.mlpackage` in the artifact folder, and its metadata.

Runs on any OS coremltools installs on (no Core ML runtime, no torch): build the MIL program
(`program.py`), convert it to an ML Program with fp16 compute, compress the weights (`compress.py`),
save. The returned dict (stored in tinylm-artifact.json) says what the package declares and how big
its weights are, so a Mac or iPhone app can be written against it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinylm.backend import OpenRequest

from .options import CoreMLOptions

__all__ = ["prepare", "read_spec", "PACKAGE", "weight_bytes", "MAX_BATCH"]

PACKAGE = "model.mlpackage"
#: Encoders: rows per prediction (the session splits larger batches).
MAX_BATCH = 32


def weight_bytes(package: Path) -> int:
    """Bytes of the weight blobs stored in a .mlpackage (the program text excluded)."""
    return sum(p.stat().st_size for p in package.rglob("weights/*") if p.is_file())


def read_spec(package: Path) -> Any:
    """The package's Core ML model spec (protobuf), read without modifying the package.

    `coremltools.models.MLModel(path)` opens a package read-write and rewrites its Manifest.json, which
    changes a converted artifact's files; this reads the root model file the manifest names instead."""
    from coremltools.proto import Model_pb2

    manifest = json.loads((package / "Manifest.json").read_text())
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    spec = Model_pb2.Model()
    spec.ParseFromString((package / "Data" / root).read_bytes())
    return spec


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools prints progress bars and notes to stderr and warns through logging: keep them out of
    `tinylm convert`'s output (errors still raise)."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _op_types(model: Any) -> list[str]:
    main = model.get_spec().mlProgram.functions["main"]
    return sorted({op.type for op in main.block_specializations[main.opset].operations})


def prepare(request: OpenRequest, options: CoreMLOptions, out_dir: Path) -> dict[str, Any]:
    """Write `out_dir / model.mlpackage` for `request` (spec, weights, precision) and its `options`."""
    with _quiet():
        import coremltools as ct

        from .compress import compress, target_for
        from .program import TARGETS, build

        spec, precision = request.spec, request.precision
        stateful = bool(options.stateful) and spec.kind == "decoder"
        target = target_for(precision, stateful)
        capacity = options.capacity(spec)
        built = build(spec, request.weights, stateful=stateful, capacity=capacity, max_batch=MAX_BATCH, target=target)
        model = ct.convert(
            built.program,
            convert_to="mlprogram",
            minimum_deployment_target=TARGETS[target],
            compute_precision=ct.precision.FLOAT16,
            skip_model_load=True,  # loading compiles for this Mac's hardware: done by `open`, on macOS
        )
        model, compression = compress(model, precision, options.int4_method)
        model.short_description = (
            f"tinylm {spec.family} {spec.kind} ({precision}), converted from {request.folder.name}"
        )
        model.user_defined_metadata["tinylm.spec"] = json.dumps(spec.to_dict(), default=str)
        model.user_defined_metadata["tinylm.context_length"] = str(capacity)
        package = out_dir / PACKAGE
        model.save(str(package))
        ops = _op_types(model)
    return {
        "format": "mlpackage",
        "package": PACKAGE,
        "target": target,
        "stateful": stateful,
        "context_length": capacity,
        "max_batch": MAX_BATCH if spec.kind == "encoder" else 1,
        "compute_precision": "fp16",
        "compression": compression,
        "weight_bytes": weight_bytes(package),
        "package_bytes": sum(p.stat().st_size for p in package.rglob("*") if p.is_file()),
        "inputs": built.inputs,
        "outputs": built.outputs,
        "states": built.states,
        "op_types": ops,
    }
