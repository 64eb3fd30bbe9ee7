"""Canonical numpy weights -> MIL constants, one per tensor, created on first use in the block being built.

Load-time rewrites live here, never in the graph code:
    norm weights        -> weight + NormSpec.weight_offset (the effective scale; Gemma stores w - 1)
    tied LM head        -> the embedding constant itself (one copy in the package, shared by gather and linear)
Constants are float32; the converter's fp16 pass and the compression step decide what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var

from tinylm.arch.layout import is_norm_weight
from tinylm.arch.spec import ModelSpec

__all__ = ["Constants", "const_name"]


def const_name(canonical: str) -> str:
    """The MIL name of a canonical tensor: `layers.0.attn.q.weight` -> `layers_0_attn_q_weight`."""
    return canonical.replace(".", "_")


class Constants:
    """The weights of one model as MIL constants, for one program (or one evaluation) being built."""

    def __init__(self, spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> None:
        self.spec = spec
        self.weights = weights
        self._made: dict[str, Var] = {}

    def __call__(self, name: str) -> Var:
        """The constant for canonical tensor `name`, made once."""
        if name not in self._made:
            array = np.asarray(self.weights[name], dtype=np.float32)
            if self.spec.norm.weight_offset and is_norm_weight(name):
                array = array + np.float32(self.spec.norm.weight_offset)
            self._made[name] = mb.const(val=array, name=const_name(name))
        return self._made[name]

    def optional(self, name: str) -> Var | None:
        """The constant, or None when the checkpoint has no such tensor (biases the spec leaves out)."""
        return self(name) if name in self.weights else None

    def head(self) -> Var:
        """The LM head (V, H): its own weight, or the embedding when tied."""
        return self("embed.weight" if self.spec.tie_embeddings else "lm_head.weight")

    def table(self, name: str, array: np.ndarray) -> Var:
        """A derived constant (rotary tables), made once under `name`."""
        if name not in self._made:
            self._made[name] = mb.const(val=np.asarray(array, dtype=np.float32), name=name)
        return self._made[name]
