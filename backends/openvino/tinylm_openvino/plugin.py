"""Registers the `openvino` backend. Importing this module imports no openvino."""

from __future__ import annotations

from tinylm.backend import (
    Availability,
    Capabilities,
    KindPreference,
    deferred,
    installed_version,
    requires_runtimes,
)
from tinylm.hookspecs import hookimpl

from .options import BuildOptions

__all__ = ["OpenVINOBackend", "register_backends"]


# Part of the version (so of the artifact cache key), bumped whenever the graphs this backend builds change
# (3: rotary in the pattern the CPU plugin fuses into RoPE; 4: q, k and v from one projection; 5: positions and
# key positions per row, for rows).
GRAPH_REVISION = 5


class OpenVINOBackend:
    """OpenVINO: stateful models built from the spec; fp32/bf16/fp16, int8/int4 weights; CPU, GPU, NPU, AUTO."""

    name = "openvino"
    capabilities = Capabilities(
        precisions=("fp32", "bf16", "fp16", "int8", "int4"),
        default_precision="fp32",
        kinds=("decoder", "encoder"),
        batch=True,
        priority=15,
        converts=True,
        options=BuildOptions,
        step=True,
        default_device=True,
        states=("kv", "conv"),  # both kept in OpenVINO state variables (attention.py, conv.py)
        rows=True,
        rollback=True,  # Session.truncate: KV state variables read, cut and set back (KV-only models)
        # embedders (the real all-MiniLM-L6-v2): bf16 on AMX CPUs (about 2.7x fp32 at batch 32 on a Xeon), else
        # int8 weights (2x fp32 per CPU-second on an AMD Zen 4, where bf16 is no faster than fp32); either ahead of
        # ONNX Runtime and sentence-transformers (docs/choosing-a-backend.md, "Embedders")
        auto={
            "encoder": KindPreference(
                priority=25,
                precisions=("bf16", "int8", "fp32"),
                why="the fastest embedder measured (docs/choosing-a-backend.md, Embedders)",
            )
        },
        native=True,
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-openvino", graph_revision=GRAPH_REVISION)

    def availability(self) -> Availability:
        return requires_runtimes({"openvino": "openvino"}, extra="openvino") or Availability(ok=True)

    def devices(self) -> list[str]:
        """OpenVINO's devices present here, in lower case as every backend names them ("cpu", "gpu", "npu",
        "auto"); imports openvino (the core calls this only when available)."""
        from .devices import present

        return [d.lower() for d in present()]

    def default_device(self) -> str:
        """`devices()[0]` without probing every device (see `devices.default`)."""
        from .devices import default

        return default().lower()

    def native_precisions(self, device: str) -> list[str]:
        """The precisions `device` computes natively (its OPTIMIZATION_CAPABILITIES; see `devices.native`)."""
        from .devices import native

        return native(device)

    #: build and save the artifact (`prepare(request, options, out_dir) -> metadata`; the core does the rest)
    prepare = deferred("tinylm_openvino.convert:prepare")
    #: the artifact -> a `Session` (imports the runtime)
    open = deferred("tinylm_openvino.opening:open_session")


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(OpenVINOBackend())
