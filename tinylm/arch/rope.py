"""Rotary position embedding: frequencies (with the checkpoint's scaling) and cos/sin tables.

This is architecture knowledge, so it lives here once; backends bake the tables into their graphs.
Supported `rope_type`s: default, linear, dynamic, llama3, yarn, longrope. Computed in float64 and
returned as float32.

Two scalings depend on the length of the sequence, as transformers defines them:

- longrope uses its short factors while the sequence fits `original_max_position_embeddings` and its
  long factors for *every* position once it is longer (`switch_length`). Backends bake both tables
  (`cos_sin(..., long=True)`) and pick by the total length of the call; the core re-runs the cached
  prefix when a sequence crosses the switch (`tinylm.rope_switch`), since every cached key changes.
- dynamic NTK changes the base only past `max_position_embeddings`, which no tinylm session reaches
  (its capacity is at most that), so within a session it is exact as the default table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnsupportedArchitecture
from .spec import RopeSpec

__all__ = ["inv_freq", "cos_sin", "switch_length", "ROPE_TYPES"]


RopeFn = Callable[[RopeSpec, dict[str, Any], bool], tuple[np.ndarray, float]]


def _base(rope: RopeSpec) -> np.ndarray:
    # (rotary_dim/2,) the unscaled inverse frequencies
    dim = rope.rotary_dim
    return 1.0 / (rope.theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))


def _default(rope: RopeSpec, s: dict[str, Any], long: bool = False) -> tuple[np.ndarray, float]:
    return _base(rope), 1.0


def _linear(rope: RopeSpec, s: dict[str, Any], long: bool = False) -> tuple[np.ndarray, float]:
    return _base(rope) / float(s["factor"]), 1.0


def _llama3(rope: RopeSpec, s: dict[str, Any], long: bool = False) -> tuple[np.ndarray, float]:
    base = _base(rope)
    factor = float(s["factor"])
    low, high = float(s["low_freq_factor"]), float(s["high_freq_factor"])
    old_ctx = float(s["original_max_position_embeddings"])
    wavelen = 2 * math.pi / base
    scaled = np.where(wavelen > old_ctx / low, base / factor, base)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_ctx / high) & (wavelen <= old_ctx / low)
    return np.where(medium, smoothed, scaled), 1.0


def _yarn(rope: RopeSpec, s: dict[str, Any], long: bool = False) -> tuple[np.ndarray, float]:
    dim, theta = rope.rotary_dim, rope.theta
    original = float(s.get("original_max_position_embeddings") or rope.max_positions)
    factor = s.get("factor") or rope.max_positions / original
    factor = float(factor)

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention = s.get("attention_factor")
    if attention is None:
        if s.get("mscale") and s.get("mscale_all_dim"):
            attention = mscale(factor, s["mscale"]) / mscale(factor, s["mscale_all_dim"])
        else:
            attention = mscale(factor)
    fast, slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    lo, hi = correction_dim(fast), correction_dim(slow)
    if s.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    extrapolation = 1 - ramp
    base = _base(rope)
    return base / factor * (1 - extrapolation) + base * extrapolation, float(attention)


def _original(rope: RopeSpec, s: dict[str, Any]) -> int:
    return int(s.get("original_max_position_embeddings") or rope.max_positions)


def _longrope(rope: RopeSpec, s: dict[str, Any], long: bool = False) -> tuple[np.ndarray, float]:
    original = _original(rope, s)
    factor = float(s.get("factor") or rope.max_positions / original)
    attention = s.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    ext = s["long_factor"] if long else s["short_factor"]
    return _base(rope) / np.asarray(ext, dtype=np.float64), float(attention)


ROPE_TYPES: dict[str, RopeFn] = {
    "default": _default,
    "linear": _linear,
    "dynamic": _default,
    "llama3": _llama3,
    "yarn": _yarn,
    "longrope": _longrope,
}


def switch_length(rope: RopeSpec | None) -> int | None:
    """The sequence length past which every position rotates by the long table (longrope whose long
    factors differ from its short ones), or None when the tables never change with the length."""
    scaling = (rope.scaling if rope is not None else None) or {}
    if scaling.get("rope_type") != "longrope" or "long_factor" not in scaling:
        return None
    if list(scaling["long_factor"]) == list(scaling["short_factor"]):
        return None
    assert rope is not None
    return _original(rope, scaling)


def inv_freq(rope: RopeSpec, *, long: bool = False) -> tuple[np.ndarray, float]:
    """The inverse frequencies (rotary_dim/2,) float64 and the factor cos/sin are multiplied by.

    `long`: the table for sequences longer than `switch_length(rope)` (longrope's long factors)."""
    scaling = rope.scaling or {}
    kind = scaling.get("rope_type", "default")
    try:
        fn = ROPE_TYPES[kind]
    except KeyError:
        raise UnsupportedArchitecture(
            f"rope_type {kind!r} is not supported (supported: {', '.join(sorted(ROPE_TYPES))}). "
            "Fix: use a checkpoint with one of those, or open an issue naming the model."
        ) from None
    return fn(rope, scaling, long)


def cos_sin(rope: RopeSpec, positions: int | np.ndarray, *, long: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin tables of shape (P, rotary_dim), float32, for `positions` (a count or an array);
    `long`: longrope's table for sequences past `switch_length(rope)`."""
    freqs, factor = inv_freq(rope, long=long)
    pos = np.arange(positions, dtype=np.float64) if np.isscalar(positions) else np.asarray(positions, np.float64)
    angles = pos[:, None] * freqs[None, :]  # (P, rotary_dim/2)
    emb = np.concatenate([angles, angles], axis=-1)  # (P, rotary_dim)
    return (np.cos(emb) * factor).astype(np.float32), (np.sin(emb) * factor).astype(np.float32)
