"""The coreml backend's options (`tinylm.load(..., **options)` / `tinylm convert`); imports no coremltools.

context_length=None  decoders: tokens the KV-cache states hold (default: min(max_positions, 4096))
stateful=True        decoders: KV cache as Core ML state (macOS 15 / iOS 18); False: as inputs and outputs
                     (macOS 13 / iOS 16)
int4="block"         int4 weights: "block" (one scale per block of 32 inputs) or "palettize" (a 16-entry
                     lookup table per group of 16 output channels)
parity=True          measure parity while converting (only where Core ML executes: macOS)
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylm.arch.spec import ModelSpec
from tinylm.backend import ConvertOptions
from tinylm.errors import ConfigError

__all__ = ["CoreMLOptions", "INT4_METHODS", "DEFAULT_CONTEXT"]

INT4_METHODS = ("block", "palettize")
#: Default KV-cache length when the model allows more (the states are allocated at full size).
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True, kw_only=True)
class CoreMLOptions(ConvertOptions):
    context_length: int | None = None
    stateful: bool = True
    int4: str = "block"

    @property
    def int4_method(self) -> str:
        return str(self.int4).lower()

    def validate(self) -> None:
        if self.int4_method not in INT4_METHODS:
            raise ConfigError(
                f"coreml option int4={self.int4!r} is not one of {', '.join(INT4_METHODS)}. "
                "Fix: pass int4='block' (block-wise int4) or int4='palettize' (4-bit lookup tables)."
            )

    def capacity(self, spec: ModelSpec) -> int:
        """Tokens a decoder's cache holds: `context_length`, else min(max_positions, 4096); an encoder's
        max_positions."""
        wanted = self.context_length
        if spec.kind != "decoder":
            return spec.max_positions
        if wanted is None:
            return min(spec.max_positions, DEFAULT_CONTEXT)
        if not isinstance(wanted, int) or not 1 <= wanted <= spec.max_positions:
            raise ConfigError(
                f"coreml option context_length={wanted!r} must be an integer in [1, {spec.max_positions}] "
                f"(the model's max_positions). Fix: pass e.g. context_length={min(spec.max_positions, 2048)}."
            )
        return wanted
