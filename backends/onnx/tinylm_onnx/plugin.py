"""Registers the `onnx` backend. Importing this module imports neither onnxruntime nor onnx."""

from __future__ import annotations

from tinylm.backend import Availability, Capabilities, deferred, installed_version, requires_runtimes
from tinylm.hookspecs import hookimpl

from .options import BuildOptions

__all__ = ["OnnxBackend", "register_backends"]


# Part of the version (so of the artifact cache key), bumped whenever the graphs this backend builds change
# (3: tied int4 embeddings read the LM head's codes; 4: each row's positions from its own seqlens_k, for rows).
GRAPH_REVISION = 4


class OnnxBackend:
    """ONNX Runtime on CPU: graphs built from the spec (fp32; int8/int4 via MatMulNBits)."""

    name = "onnx"
    capabilities = Capabilities(
        precisions=("fp32", "int8", "int4"),
        default_precision="fp32",
        kinds=("decoder", "encoder"),
        batch=True,
        priority=20,
        converts=True,
        options=BuildOptions,
        step=True,
        states=("kv", "conv"),  # GQA's KV buffers, LFM2's conv states as past_conv/present_conv (conv.py)
        rows=True,
        rollback=True,  # Session.truncate: the KV buffers only move their length (KV-only models)
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-onnx", graph_revision=GRAPH_REVISION)

    def availability(self) -> Availability:
        return requires_runtimes({"onnxruntime": "onnxruntime", "onnx": "onnx"}, extra="onnx") or Availability(ok=True)

    def devices(self) -> list[str]:
        return ["cpu"]

    #: build and save the artifact (`prepare(request, options, out_dir) -> metadata`; the core does the rest)
    prepare = deferred("tinylm_onnx.convert:prepare")
    #: the artifact -> a `Session` (imports the runtime)
    open = deferred("tinylm_onnx.opening:open_session")


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(OnnxBackend())
