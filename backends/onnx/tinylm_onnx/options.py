"""How a graph is built: the precision's quantization and the switches used to measure each fused op.

Read from `tinylm.load(..., **options)` / `tinylm convert` options (each one set to something other than its
default is part of the artifact cache key, so a different choice builds a different artifact; `compiled_cache`
and `spin_wait` only change how the artifact is opened):

    block_size=None       MatMulNBits block along K (int8/int4): None is 32 in a decoder (int8's greedy-agreement
                          bar) and 128 in an encoder (int8 then computes faster than fp32; blocks of 32 do not:
                          docs/backends/onnx.md, "Encoders")
    accuracy_level=4      MatMulNBits compute type: 4 = int8 activations (the fast CPU kernels)
    quantize_lm_head=True int8/int4: quantize the LM head too (it is ~1/5 of a 135M model's bytes)
    fused_ops=True        False: plain ONNX ops instead of SkipSimplifiedLayerNormalization/Skip-
                          LayerNormalization and GQA's internal rotary (to measure what the fused ops buy)
    max_length=None       KV-cache capacity (default: the model's max_positions)
    external_data_threshold=0   bytes of weights above which they go to model.onnx.data (0: always; ONNX Runtime
                          memory-maps that file, so warm loads parse no weights; above 2 GB it is required)
    parity=True           measure parity (and perplexity change) while converting
    compiled_cache=True   keep this machine's optimized, pre-packed copy of the graph in the artifact folder
                          (`compiled.py`): a warm load maps it instead of optimizing and pre-packing again
                          (session creation on SmolLM2-135M: 0.31 s instead of 0.54 s at fp32, 0.15 instead of
                          0.23 at int8; docs/backends/onnx.md, "Loading"); costs disk, the weights again and
                          their packed copies
    spin_wait=None        after a run, ONNX Runtime's pool threads spin-wait for the next one (about 25 ms)
                          or block at once: None spins in a decoder (a generation's steps come back to back:
                          +1.4-2.5% decode tokens/s at int4, nothing measurable at int8) and blocks in an encoder
                          (an embedding is one run; its pool spinning would hold a core through the prefill that
                          follows); True/False for any model
                          (docs/backends/onnx.md, "Threads")
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from tinylm.arch.spec import ModelSpec
from tinylm.backend import ConvertOptions
from tinylm.errors import ConfigError

__all__ = ["BuildOptions", "BITS"]

BITS = {"fp32": 0, "int8": 8, "int4": 4}  # 0: float32 weights
DECODER_BLOCK = 32
ENCODER_BLOCK = 128  # divides the hidden and MLP widths of BERT/MiniLM-sized encoders (384, 768, 1536, 3072)


@dataclass(frozen=True, kw_only=True)
class BuildOptions(ConvertOptions):
    block_size: int | None = None
    accuracy_level: int = 4
    quantize_lm_head: bool = True
    fused_ops: bool = True
    max_length: int | None = None
    external_data_threshold: int = 0
    compiled_cache: bool = True
    spin_wait: bool | None = None

    open_only: ClassVar[tuple[str, ...]] = ("compiled_cache", "spin_wait")

    @property
    def bits(self) -> int:
        return BITS[self.precision]

    def block(self, spec: ModelSpec) -> int:
        """The MatMulNBits block along K for `spec`: `block_size`, else the kind's default."""
        if self.block_size is not None:
            return self.block_size
        return ENCODER_BLOCK if spec.kind == "encoder" else DECODER_BLOCK

    def validate(self) -> None:
        if self.block_size is not None and (self.block_size < 16 or self.block_size & (self.block_size - 1)):
            raise ConfigError(f"block_size={self.block_size}: Fix: use a power of two >= 16 (e.g. 32).")
        if not isinstance(self.spin_wait, (bool, type(None))):
            raise ConfigError(
                f"spin_wait={self.spin_wait!r}: Fix: pass True (pool threads spin-wait between runs), False (they "
                "block) or leave it out (spin in a decoder, block in an encoder)."
            )

    def capacity(self, spec: ModelSpec) -> int:
        """Positions the KV cache (and the rotary tables) hold."""
        return min(spec.max_positions, self.max_length or spec.max_positions)

    def for_parity(self) -> BuildOptions:
        return replace(self, compiled_cache=False)  # no machine copy inside a folder not yet in place
