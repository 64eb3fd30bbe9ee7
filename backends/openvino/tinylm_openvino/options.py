"""How a model is built and compiled, from `tinylm.load(..., **options)` / `tinylm convert` options (each one
set to something other than its default is part of the artifact cache key, except `compiled_cache`, which
only changes how the artifact is opened):

    inference_precision=None  override the precision's execution type: "f32", "bf16" or "f16"
    kv_cache_precision=None   override the KV-cache type ("f32", "f16", "bf16", "u8"; CPU default: u8)
    group_size=128            int4 group along K (falls back to 64/32/16 where K is not a multiple)
    quantize_lm_head=True     int8/int4: compress the LM head (int8 for both, as NNCF's backup mode does)
    compiled_cache=True       keep OpenVINO's compiled blob (CACHE_DIR) in the artifact folder: a warm load
                              imports it instead of compiling (SmolLM2-135M on CPU: 0.2 s instead of 1.4 s at
                              int8/int4, 0.4 s instead of 1.1 s at fp32; docs/backends/openvino.md); costs the
                              blob's disk space (about the weights' size again)
    max_length=None           positions the model serves (default: the model's max_positions)
    parity=True               measure parity (and the perplexity change) while converting

Precision -> weight storage and execution type (`PRECISIONS`):

    fp32  f32 weights, f32 execution, f32 KV cache (exact: the conformance bar of 1e-4)
    bf16  f16 weights, bf16 execution (the CPU plugin's own default on CPUs with AVX512-BF16/AMX)
    fp16  f16 weights, f16 execution where the device has it, else the device's default (bf16 or f32)
    int8  int8 weights (per channel), f32 execution (the CPU plugin's kernels read the int8 weights; its
          profile shows f32 activations, at least on an AVX-512 CPU without AMX: docs/long-prompts.md)
    int4  int4 weights (per group), int8 LM head, f32 execution

int8/int4 execute in f32 because the loss budget is spent on the weights: on the trained test llama, int8 weights
with bf16 execution and the u8 KV cache agree with torch fp32 on 80% of greedy tokens, with f32 execution on 92%
(the issue's bar is 90%); `inference_precision="bf16"` trades that back for speed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from tinylm.arch.spec import ModelSpec
from tinylm.backend import ConvertOptions
from tinylm.errors import ConfigError

__all__ = ["BuildOptions", "PRECISIONS", "Plan"]


@dataclass(frozen=True)
class Plan:
    storage: str  # compress.STORAGE: how the linear weights are stored
    head: str  # how the LM head is stored
    embed: str  # how the embedding table is stored
    execution: str | None  # INFERENCE_PRECISION_HINT ("f32", "bf16", "f16"), None: the device's default


PRECISIONS: dict[str, Plan] = {
    "fp32": Plan("f32", "f32", "f32", "f32"),
    "bf16": Plan("f16", "f16", "f16", "bf16"),
    "fp16": Plan("f16", "f16", "f16", "f16"),
    "int8": Plan("int8", "int8", "f16", "f32"),
    "int4": Plan("int4", "int8", "f16", "f32"),
}
_TYPES = ("f32", "bf16", "f16")
_KV_TYPES = ("f32", "bf16", "f16", "u8")


@dataclass(frozen=True, kw_only=True)
class BuildOptions(ConvertOptions):
    inference_precision: str | None = None
    kv_cache_precision: str | None = None
    group_size: int = 128
    quantize_lm_head: bool = True
    compiled_cache: bool = True
    max_length: int | None = None

    open_only: ClassVar[tuple[str, ...]] = ("compiled_cache",)

    @property
    def plan(self) -> Plan:
        p = PRECISIONS[self.precision]
        head = p.head if self.quantize_lm_head else ("f32" if p.storage == "f32" else "f16")
        return Plan(p.storage, head, p.embed, self.inference_precision or p.execution)

    @property
    def kv_cache(self) -> str | None:
        """KV-cache type: f32 for exact fp32, else the option or the device's default."""
        if self.kv_cache_precision:
            return self.kv_cache_precision
        return "f32" if self.plan.execution == "f32" else None

    def validate(self) -> None:
        if self.inference_precision not in (None, *_TYPES):
            raise ConfigError(
                f"inference_precision={self.inference_precision!r}: Fix: use one of {', '.join(_TYPES)} or None."
            )
        if self.kv_cache_precision not in (None, *_KV_TYPES):
            raise ConfigError(
                f"kv_cache_precision={self.kv_cache_precision!r}: Fix: use one of {', '.join(_KV_TYPES)} or None."
            )
        if self.group_size < 16 or self.group_size & (self.group_size - 1):
            raise ConfigError(f"group_size={self.group_size}: Fix: use a power of two >= 16 (e.g. 128 or 64).")

    def capacity(self, spec: ModelSpec) -> int:
        """Positions the model serves (rotary and position tables hold this many rows)."""
        return min(spec.max_positions, self.max_length or spec.max_positions)

    def baseline(self) -> BuildOptions:
        """Exact fp32 (execution and KV-cache overrides dropped): the perplexity baseline."""
        return BuildOptions(precision="fp32", max_length=self.max_length)

    def for_parity(self) -> BuildOptions:
        # No compiled blob: OpenVINO keys blobs by path, and a converted folder is renamed into place; its
        # first open at the final path writes it there.
        return replace(self, compiled_cache=False)
