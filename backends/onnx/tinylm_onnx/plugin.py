"""Registers the `onnx` backend.

Version 0.1.0 registers the backend and reports honestly that its graph builder is not written
yet, so `tinylm backends` shows it and `backend="onnx"` raises `BackendUnavailable` instead of
falling back. The runtime is never imported here.
"""

from __future__ import annotations

from importlib.metadata import version

from tinylm.backend import Availability, Capabilities, OpenRequest, Session, requires_runtimes
from tinylm.errors import BackendUnavailable
from tinylm.hookspecs import hookimpl


class OnnxBackend:
    name = "onnx"
    version = version("tinylm-onnx")
    capabilities = Capabilities(
        precisions=("fp32", "int8", "int4"), default_precision="fp32", priority=20, converts=True
    )

    def availability(self) -> Availability:
        return requires_runtimes({"onnxruntime": "onnxruntime", "onnx": "onnx"}, extra="onnx") or Availability(
            ok=False,
            reason=f"tinylm-onnx {self.version} does not build ONNX graphs yet.",
            hint="use backend='torch' until a tinylm-onnx release with the graph builder is installed.",
        )

    def devices(self) -> list[str]:
        return ["cpu"]

    def open(self, request: OpenRequest) -> Session:
        raise BackendUnavailable(f"backend 'onnx' cannot run here: {self.availability().explain()}")


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(OnnxBackend())
