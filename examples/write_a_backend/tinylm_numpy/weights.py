"""Canonical checkpoint tensors -> the arrays the layers use.

tinylm hands every backend the same canonical weights (`tinylm.arch.layout` names, already renamed,
split and checked against the spec by the family's `sanitize`), so a backend never sees checkpoint
quirks. The one rewrite left is the `NormSpec.weight_offset` (Gemma stores `w - 1`): it is added here,
once, so the norms hold their effective scale and `forward` never adds it.

The arrays are widened to float64 (exact for fp32, fp16 and bf16 checkpoints), and the model computes
in float64, returning float32 logits. Why: BLAS `sgemm` rounds a row differently depending on how many
rows it is given (one row goes through `gemv`, edge tiles through other kernels), so in float32 a
prompt fed in one call, in chunks, or one token at a time differs by round-off that the conformance
suite's cache checks (1e-5) catch. In float64 that round-off is far below float32's resolution. It
costs twice the memory of float32 weights: fine for an example, not for a production backend (which
would use batch-invariant kernels, or its runtime's own).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tinylm.arch.layout import is_norm_weight
from tinylm.arch.spec import ModelSpec

__all__ = ["COMPUTE_DTYPE", "load_weights"]

COMPUTE_DTYPE = np.float64


def load_weights(spec: ModelSpec, canonical: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`COMPUTE_DTYPE` copies of the canonical arrays, under the same names."""
    offset = spec.norm.weight_offset
    out: dict[str, np.ndarray] = {}
    for name, array in canonical.items():
        array = np.asarray(array, dtype=COMPUTE_DTYPE)
        out[name] = array + offset if offset and is_norm_weight(name) else array
    return out
