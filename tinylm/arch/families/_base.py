"""What every family module provides, and the config-reading helpers they share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import Activation, RopeSpec

__all__ = [
    "Family",
    "Weights",
    "activation",
    "activation_name",
    "rope_from_config",
    "rope_to_config",
    "eos_ids",
    "eos_value",
    "rename",
    "dtype_name",
]

Weights = Mapping[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class Family:
    """One model family: how to read its config and how to map its checkpoint names.

    Attributes:
        name: the family's name in tinylm (`ModelSpec.family`).
        model_types: the `config.json` `model_type` values it reads.
        from_config: config dict -> ModelSpec.
        sanitize: (raw checkpoint tensors, spec) -> canonical tensors (see `tinylm.arch.layout`).
        to_config: (spec, base config or None) -> config.json dict; the inverse of `from_config`
            (`from_config(to_config(spec)) == spec`); keys of `base` it does not own are kept.
        to_checkpoint: (canonical tensors, spec) -> tensors under the checkpoint's names; the
            inverse of `sanitize` (used to write trained, distilled or pruned models back out).
    """

    name: str
    model_types: tuple[str, ...]
    from_config: Callable[[dict[str, Any]], Any]
    sanitize: Callable[[Weights, Any], dict[str, np.ndarray]]
    to_config: Callable[..., dict[str, Any]]
    to_checkpoint: Callable[[Weights, Any], dict[str, np.ndarray]]


_ACTIVATIONS: dict[str, Activation] = {
    "silu": "silu",
    "swish": "silu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
    "relu": "relu",
}


def activation_name(act: Activation) -> str:
    """The transformers name of a tinylm activation (the inverse of `activation`)."""
    return {"silu": "silu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}[act]


def activation(name: str | None, *, family: str) -> Activation:
    """Map a transformers activation name to tinylm's."""
    try:
        return _ACTIVATIONS[str(name)]
    except KeyError:
        raise UnsupportedArchitecture(
            f"{family}: activation {name!r} is not supported (supported: {', '.join(sorted(_ACTIVATIONS))}). "
            "Fix: use a checkpoint with one of those activations."
        ) from None


def rope_from_config(cfg: dict[str, Any], *, head_dim: int, max_positions: int) -> RopeSpec:
    """Read rotary settings in both config styles: transformers 5 `rope_parameters`, or the older
    top-level `rope_theta` + `rope_scaling` (+ `partial_rotary_factor`)."""
    params = dict(cfg.get("rope_parameters") or {})
    scaling = dict(cfg.get("rope_scaling") or {})
    merged = {**scaling, **params}
    if "type" in merged and "rope_type" not in merged:
        merged["rope_type"] = merged.pop("type")
    theta = float(merged.pop("rope_theta", cfg.get("rope_theta", 10000.0)))
    partial = float(merged.pop("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0)))
    if "original_max_position_embeddings" not in merged and cfg.get("original_max_position_embeddings"):
        merged["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
    kind = merged.get("rope_type", "default")
    if kind == "su":  # the early name of longrope
        kind = merged["rope_type"] = "longrope"
    return RopeSpec(
        theta=theta,
        rotary_dim=int(head_dim * partial),
        max_positions=max_positions,
        scaling=merged if kind != "default" else None,
    )


def rope_to_config(rope: RopeSpec, *, head_dim: int, new_style: bool) -> dict[str, Any]:
    """The config keys `rope_from_config` reads, for `rope`: transformers 5 `rope_parameters` when
    `new_style`, else the older top-level `rope_theta` + `rope_scaling`."""
    out: dict[str, Any] = {}
    if rope.rotary_dim != head_dim:
        out["partial_rotary_factor"] = rope.rotary_dim / head_dim
    if new_style:
        params = {"rope_type": "default", **(rope.scaling or {}), "rope_theta": rope.theta}
        if "partial_rotary_factor" in out:
            params["partial_rotary_factor"] = out["partial_rotary_factor"]
        return {**out, "rope_parameters": params, "rope_scaling": None}
    return {**out, "rope_theta": rope.theta, "rope_scaling": dict(rope.scaling) if rope.scaling else None}


def eos_value(ids: tuple[int, ...]) -> int | list[int] | None:
    """`eos_token_id` as configs write it: an int, a list, or null (the inverse of `eos_ids`)."""
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else list(ids)


def dtype_name(spec_dtype: str) -> str:
    """The `torch_dtype` value to record (tinylm writes what it was given)."""
    return spec_dtype.removeprefix("torch.")


def eos_ids(value: int | Iterable[int] | None) -> tuple[int, ...]:
    """`eos_token_id` may be an int, a list or null."""
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def rename(raw: Weights, rules: list[tuple[str, str]], *, drop: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Rename checkpoint tensors by the first matching `(regex, replacement)` rule.

    Names matching a `drop` regex are ignored; names no rule matches are kept as they are, so
    `check_weights` reports them as missing canonical tensors rather than silently using them.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    dropped = [re.compile(p) for p in drop]
    out: dict[str, np.ndarray] = {}
    for name in raw:
        if any(d.search(name) for d in dropped):
            continue
        new = name
        for pattern, repl in compiled:
            new, n = pattern.subn(repl, name)
            if n:
                break
        out[new] = raw[name]
    return out


def base_config(base: dict[str, Any] | None, model_type: str) -> dict[str, Any]:
    """A copy of `base` (the original config.json) to update, or a fresh one of `model_type`.

    Stale per-layer lists and the old `rope_parameters` style are dropped: `to_config` writes the
    values it owns from the spec.
    """
    out = dict(base or {})
    out.setdefault("model_type", model_type)
    for key in ("layer_types", "dtype"):
        out.pop(key, None)
    return out
