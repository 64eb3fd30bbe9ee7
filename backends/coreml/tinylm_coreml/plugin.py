"""Registers the `coreml` backend.

Core ML executes only on macOS. Version 0.1.0 registers the backend and reports why it cannot
run: on other systems that it is macOS-only, everywhere that its converter is not written yet.
The runtime is never imported here.
"""

from __future__ import annotations

import platform
from importlib.metadata import version

from tinylm.backend import Availability, Capabilities, OpenRequest, Session, requires_runtimes
from tinylm.errors import BackendUnavailable
from tinylm.hookspecs import hookimpl


class CoreMLBackend:
    name = "coreml"
    version = version("tinylm-coreml")
    capabilities = Capabilities(
        precisions=("fp16", "int8", "int4"), default_precision="fp16", priority=30, converts=True
    )

    def availability(self) -> Availability:
        if platform.system() != "Darwin":
            return Availability(
                ok=False,
                reason=f"Core ML runs only on macOS (this is {platform.system()}).",
                hint="use another backend here (`tinylm backends`); run Core ML models on a Mac.",
            )
        return requires_runtimes({"coremltools": "coremltools"}, extra="coreml") or Availability(
            ok=False,
            reason=f"tinylm-coreml {self.version} does not convert models yet.",
            hint="use backend='torch' until a tinylm-coreml release with the converter is installed.",
        )

    def devices(self) -> list[str]:
        return ["all", "cpu", "gpu", "ane"]

    def open(self, request: OpenRequest) -> Session:
        raise BackendUnavailable(f"backend 'coreml' cannot run here: {self.availability().explain()}")


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(CoreMLBackend())
