"""Gemma 3 text (gemma-3-270m, gemma-3-1b; the text tower of 4B-27B): Gemma 2's sandwich block with q/k RMS
norms per head, sliding-window layers (`layer_types`, five local to one global) whose rotary base is their own
(`rope_local_base_freq` / `rope_parameters["sliding_attention"]`), and soft-capping off by default.

    x = x + rms'(o(attn(rope_l(rms_q(q(rms(x)))), ...)))     rope_l: local base on sliding layers, global else
    x = x + rms'(mlp(rms(x)))                                every norm, q/k norms included, scales by (1 + w)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spec import ModelSpec, RopeSpec
from ._base import Family, rope_from_config, rope_to_config
from .gemma2 import gemma2_config, gemma2_spec, sanitize, to_checkpoint


def _ropes(cfg: dict[str, Any], head_dim: int, max_positions: int) -> tuple[RopeSpec, RopeSpec]:
    """(global, local) rotary specs, from transformers 5's per-layer-type `rope_parameters` or the older
    `rope_theta` + `rope_scaling` (global) and `rope_local_base_freq` (local, unscaled)."""
    params = cfg.get("rope_parameters") or {}
    if "full_attention" in params or "sliding_attention" in params:
        default = {"rope_type": "default", "rope_theta": 10000.0}
        full, local = (params.get(t) or default for t in ("full_attention", "sliding_attention"))
        return (
            rope_from_config({"rope_parameters": full}, head_dim=head_dim, max_positions=max_positions),
            rope_from_config({"rope_parameters": local}, head_dim=head_dim, max_positions=max_positions),
        )
    base = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    full = rope_from_config(base, head_dim=head_dim, max_positions=max_positions)
    local = RopeSpec(
        theta=float(cfg.get("rope_local_base_freq", 10000.0)), rotary_dim=full.rotary_dim, max_positions=max_positions
    )
    return full, local


def gemma3_spec(cfg: dict[str, Any]) -> ModelSpec:
    layers = cfg["num_hidden_layers"]
    pattern = int(cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6)
    types = cfg.get("layer_types") or [
        "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)
    ]
    plain = {k: v for k, v in cfg.items() if k not in ("rope_parameters", "rope_scaling")}
    spec = gemma2_spec({**plain, "layer_types": types})
    full, local = _ropes(cfg, spec.head_dim, spec.max_positions)
    return dataclasses.replace(
        spec,
        family="gemma3_text",
        qk_norm=True,
        rope=full,
        local_rope=local if spec.layer_windows else None,
    )


def gemma3_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a Gemma 3 text spec (the inverse of `gemma3_spec`), updating `base` if given."""
    cfg = gemma2_config(dataclasses.replace(spec, rope=None), base)
    for key in ("rope_theta", "rope_scaling", "rope_local_base_freq", "partial_rotary_factor"):
        cfg.pop(key, None)
    assert spec.rope is not None
    local = spec.local_rope or spec.rope
    cfg["rope_parameters"] = {
        kind: rope_to_config(rope, head_dim=spec.head_dim, new_style=True)["rope_parameters"]
        for kind, rope in (("full_attention", spec.rope), ("sliding_attention", local))
    }
    cfg["model_type"] = "gemma3_text"
    return cfg


GEMMA3 = Family(
    name="gemma3_text",
    model_types=("gemma3_text",),
    from_config=gemma3_spec,
    sanitize=sanitize,
    to_config=gemma3_config,
    to_checkpoint=to_checkpoint,
)
