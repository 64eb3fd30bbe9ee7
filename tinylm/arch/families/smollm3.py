"""SmolLM3 (HuggingFaceTB, 3B): the Llama block where some layers have no rotary positions (NoPE: every
`no_rope_layer_interval`-th layer, listed in `no_rope_layers` as 0), and optionally a sliding window on
those layers (`use_sliding_window`, `layer_types`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spec import ModelSpec
from ._base import Family
from .llama import llama_like_config, llama_like_spec, sanitize, to_checkpoint


def _uses_rope(cfg: dict[str, Any]) -> list[int]:
    layers = cfg["num_hidden_layers"]
    if cfg.get("no_rope_layers") is not None:
        return [int(v) for v in cfg["no_rope_layers"]]
    interval = int(cfg.get("no_rope_layer_interval", 4))
    return [int((i + 1) % interval != 0) for i in range(layers)]


def _layer_windows(cfg: dict[str, Any], uses_rope: list[int]) -> tuple[int | None, ...]:
    window = cfg.get("sliding_window")
    if not (cfg.get("use_sliding_window") and window):
        return ()
    types = cfg.get("layer_types") or [
        "sliding_attention" if not rope else "full_attention" for rope in uses_rope
    ]  # transformers' default: the NoPE layers slide
    windows = tuple(int(window) if t == "sliding_attention" else None for t in types)
    return windows if any(w is not None for w in windows) else ()


def smollm3_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    spec = llama_like_spec(
        {**cfg, "use_sliding_window": False}, family="smollm3", qkv_bias=bias, out_bias=bias, qk_norm=False
    )
    uses_rope = _uses_rope(cfg)
    return dataclasses.replace(
        spec,
        nope_layers=tuple(i for i, rope in enumerate(uses_rope) if not rope),
        layer_windows=_layer_windows(cfg, uses_rope),
    )


def smollm3_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a SmolLM3 spec (the inverse of `smollm3_spec`), updating `base` if given."""
    cfg = llama_like_config(spec, base)
    windows = [w for w in spec.layer_windows if w is not None]
    cfg.update(
        attention_bias=spec.qkv_bias,
        no_rope_layers=[int(i not in spec.nope_layers) for i in range(spec.num_layers)],
        use_sliding_window=bool(windows),
        sliding_window=windows[0] if windows else None,
        layer_types=[
            "sliding_attention" if spec.window(i) is not None else "full_attention" for i in range(spec.num_layers)
        ],
    )
    return cfg


SMOLLM3 = Family(
    name="smollm3",
    model_types=("smollm3",),
    from_config=smollm3_spec,
    sanitize=sanitize,
    to_config=smollm3_config,
    to_checkpoint=to_checkpoint,
)
