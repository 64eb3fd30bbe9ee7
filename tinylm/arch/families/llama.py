"""Llama, and the checkpoints that share its block exactly: SmolLM, Mistral.

    x = x + o(attn(rope(q(rms(x))), rope(k(rms(x))), v(rms(x))))
    x = x + down(silu(gate(rms(x))) * up(rms(x)))

`llama_like_spec` and `sanitize` also serve Qwen2 and Qwen3, which differ only in flags.
"""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec, NormSpec
from ._base import (
    Family,
    Weights,
    activation,
    activation_name,
    base_config,
    dtype_name,
    eos_ids,
    eos_value,
    rename,
    rope_from_config,
    rope_to_config,
)

_RULES = [
    (r"^(?:model\.)?embed_tokens\.", "embed."),
    (r"^(?:model\.)?norm\.", "final_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.input_layernorm\.", r"layers.\1.attn_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.post_attention_layernorm\.", r"layers.\1.mlp_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.self_attn\.([qkvo])_proj\.", r"layers.\1.attn.\2."),
    (r"^(?:model\.)?layers\.(\d+)\.self_attn\.([qk])_norm\.", r"layers.\1.attn.\2_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.mlp\.(gate|up|down)_proj\.", r"layers.\1.mlp.\2."),
]
_DROP = (r"rotary_emb\.inv_freq$",)
# canonical -> checkpoint (the inverse of _RULES; lm_head keeps its name)
_INVERSE = [
    (r"^embed\.", "model.embed_tokens."),
    (r"^final_norm\.", "model.norm."),
    (r"^layers\.(\d+)\.attn_norm\.", r"model.layers.\1.input_layernorm."),
    (r"^layers\.(\d+)\.mlp_norm\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^layers\.(\d+)\.attn\.([qkvo])\.", r"model.layers.\1.self_attn.\2_proj."),
    (r"^layers\.(\d+)\.attn\.([qk])_norm\.", r"model.layers.\1.self_attn.\2_norm."),
    (r"^layers\.(\d+)\.mlp\.(gate|up|down)\.", r"model.layers.\1.mlp.\2_proj."),
]


def llama_like_spec(cfg: dict[str, Any], *, family: str, qkv_bias: bool, out_bias: bool, qk_norm: bool) -> ModelSpec:
    h = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // nh
    max_pos = cfg.get("max_position_embeddings", 2048)
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    return ModelSpec(
        family=family,
        kind="decoder",
        vocab_size=cfg["vocab_size"],
        hidden_size=h,
        num_layers=cfg["num_hidden_layers"],
        num_heads=nh,
        num_kv_heads=cfg.get("num_key_value_heads") or nh,
        head_dim=hd,
        intermediate_size=cfg["intermediate_size"],
        max_positions=max_pos,
        norm=NormSpec(kind="rms", eps=float(cfg.get("rms_norm_eps", 1e-6))),
        activation=activation(cfg.get("hidden_act", "silu"), family=family),
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qkv_bias=qkv_bias,
        out_bias=out_bias,
        qk_norm=qk_norm,
        rope=rope_from_config(cfg, head_dim=hd, max_positions=max_pos),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        sliding_window=window,
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_ids=eos_ids(cfg.get("eos_token_id")),
        pad_token_id=cfg.get("pad_token_id"),
        source_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"),
    )


def llama_like_config(spec: ModelSpec, base: dict[str, Any] | None) -> dict[str, Any]:
    """config.json for a Llama-like spec (the inverse of `llama_like_spec`), updating `base` if given."""
    new_style = "rope_parameters" in (base or {})
    cfg = base_config(base, spec.family)
    cfg.pop("rope_parameters", None)
    cfg.update(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        num_hidden_layers=spec.num_layers,
        vocab_size=spec.vocab_size,
        max_position_embeddings=spec.max_positions,
        rms_norm_eps=spec.norm.eps,
        hidden_act=activation_name(spec.activation),
        mlp_bias=spec.mlp_bias,
        tie_word_embeddings=spec.tie_embeddings,
        sliding_window=spec.sliding_window,
        bos_token_id=spec.bos_token_id,
        eos_token_id=eos_value(spec.eos_token_ids),
        pad_token_id=spec.pad_token_id,
        torch_dtype=dtype_name(spec.source_dtype),
    )
    if "use_sliding_window" in cfg:
        cfg["use_sliding_window"] = spec.sliding_window is not None
    if spec.rope is not None:
        cfg.update(rope_to_config(spec.rope, head_dim=spec.head_dim, new_style=new_style))
    return cfg


def llama_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**llama_like_config(spec, base), "attention_bias": spec.qkv_bias}


def llama_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    return llama_like_spec(cfg, family="llama", qkv_bias=bias, out_bias=bias, qk_norm=False)


def sanitize(raw: Weights, spec: ModelSpec, *, norms: list[tuple[str, str]] | None = None) -> dict:
    """Checkpoint names -> canonical ones. `norms`: (checkpoint layer-norm name, canonical name) pairs of a
    family whose block norms differ from Llama's (`input_layernorm` -> attn_norm,
    `post_attention_layernorm` -> mlp_norm)."""
    rules = [(rf"^(?:model\.)?layers\.(\d+)\.{theirs}\.", rf"layers.\1.{ours}.") for theirs, ours in (norms or [])]
    weights = rename(raw, rules + _RULES, drop=_DROP)
    if spec.tie_embeddings:
        weights.pop("lm_head.weight", None)
    return weights


def to_checkpoint(weights: Weights, spec: ModelSpec, *, norms: list[tuple[str, str]] | None = None) -> dict:
    """Canonical tensors -> Llama checkpoint names (the inverse of `sanitize`, with the same `norms`)."""
    rules = [(rf"^layers\.(\d+)\.{ours}\.", rf"model.layers.\1.{theirs}.") for theirs, ours in (norms or [])]
    return rename(weights, rules + _INVERSE)


LLAMA = Family(
    name="llama",
    model_types=("llama", "mistral", "smollm"),
    from_config=llama_spec,
    sanitize=sanitize,
    to_config=llama_config,
    to_checkpoint=to_checkpoint,
)
