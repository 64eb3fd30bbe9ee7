"""Llama, and the checkpoints that share its block exactly: SmolLM, Mistral.

    x = x + o(attn(rope(q(rms(x))), rope(k(rms(x))), v(rms(x))))
    x = x + down(silu(gate(rms(x))) * up(rms(x)))

`llama_like_spec` and `sanitize` also serve Qwen2 and Qwen3, which differ only in flags.
"""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec, NormSpec
from ._base import Family, Weights, activation, eos_ids, rename, rope_from_config

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


def llama_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    return llama_like_spec(cfg, family="llama", qkv_bias=bias, out_bias=bias, qk_norm=False)


def sanitize(raw: Weights, spec: ModelSpec) -> dict:
    weights = rename(raw, _RULES, drop=_DROP)
    if spec.tie_embeddings:
        weights.pop("lm_head.weight", None)
    return weights


LLAMA = Family(name="llama", model_types=("llama", "mistral", "smollm"), from_config=llama_spec, sanitize=sanitize)
