"""Registers the `openvino` backend.

Version 0.1.0 registers the backend and reports honestly that its model builder is not written
yet, so `tinylm backends` shows it and `backend="openvino"` raises `BackendUnavailable`.
The runtime is never imported here.
"""

from __future__ import annotations

from importlib.metadata import version

from tinylm.backend import Availability, Capabilities, OpenRequest, Session, requires_runtimes
from tinylm.errors import BackendUnavailable
from tinylm.hookspecs import hookimpl


class OpenVINOBackend:
    name = "openvino"
    version = version("tinylm-openvino")
    capabilities = Capabilities(
        precisions=("fp32", "fp16", "bf16", "int8", "int4"), default_precision="fp32", priority=15, converts=True
    )

    def availability(self) -> Availability:
        return requires_runtimes({"openvino": "openvino"}, extra="openvino") or Availability(
            ok=False,
            reason=f"tinylm-openvino {self.version} does not build OpenVINO models yet.",
            hint="use backend='torch' until a tinylm-openvino release with the model builder is installed.",
        )

    def devices(self) -> list[str]:
        return ["CPU"]

    def open(self, request: OpenRequest) -> Session:
        raise BackendUnavailable(f"backend 'openvino' cannot run here: {self.availability().explain()}")


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(OpenVINOBackend())
