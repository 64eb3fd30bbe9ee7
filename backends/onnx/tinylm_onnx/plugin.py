"""Registers the `onnx` backend. Importing this module imports neither onnxruntime nor onnx."""

from __future__ import annotations

import platform

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

__all__ = ["OnnxBackend", "register_backends"]


# Part of the version (so of the artifact cache key), bumped whenever the graphs this backend builds change
# (3: tied int4 embeddings read the LM head's codes; 4: each row's positions from its own seqlens_k, for rows;
# 5: encoders' int8/int4 blocks of 128 by default; 6: fp32 tied tables row-major, the LM head a Gemm).
GRAPH_REVISION = 6


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
        # embedders: int8 (blocks of 128) computes a quarter faster than fp32 where the CPU has int8 dot products;
        # OpenVINO ranks above it for encoders (docs/backends/onnx.md, "Encoders")
        auto={
            "encoder": KindPreference(
                priority=20,
                precisions=("int8", "fp32"),
                why="int8 measured faster than fp32 on CPUs with int8 dot products (docs/backends/onnx.md, Encoders)",
            )
        },
        native=True,
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-onnx", graph_revision=GRAPH_REVISION)

    def availability(self) -> Availability:
        return requires_runtimes({"onnxruntime": "onnxruntime", "onnx": "onnx"}, extra="onnx") or Availability(ok=True)

    def devices(self) -> list[str]:
        return ["cpu"]

    def native_precisions(self, device: str) -> list[str]:
        """fp32 and int4 everywhere; int8 where the CPU has int8 dot-product instructions (VNNI, AMX, Arm's dotprod),
        which ONNX Runtime's MatMulNBits kernels use at accuracy_level 4 (without them int8 is no faster than fp32)."""
        return ["fp32", "int4"] + (["int8"] if dot_product_cpu() else [])

    #: build and save the artifact (`prepare(request, options, out_dir) -> metadata`; the core does the rest)
    prepare = deferred("tinylm_onnx.convert:prepare")
    #: the artifact -> a `Session` (imports the runtime)
    open = deferred("tinylm_onnx.opening:open_session")


def dot_product_cpu() -> bool:
    """Whether this CPU has int8 dot-product instructions: /proc/cpuinfo's flags on Linux (x86: avx512_vnni,
    avx_vnni, amx_int8; Arm: asimddp), Apple silicon; False where it cannot tell."""
    if platform.system() == "Darwin":
        return platform.machine() == "arm64"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(OnnxBackend())
