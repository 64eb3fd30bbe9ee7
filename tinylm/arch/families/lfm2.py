"""LFM2 (Liquid AI, 350M-2.6B): a hybrid of gated short-convolution layers and attention layers, each followed by
a SwiGLU feed-forward; `layer_types` (or the older `full_attn_idxs`) says which layer mixes with which.

    conv layer:       x = x + out(c * conv(b * u)),  b, c, u = split(in(rms(x)), 3)    (ModelSpec.conv)
    attention layer:  x = x + o(attn(rope(rms_q(q(h))), rope(rms_k(k(h))), v(h))),  h = rms(x)   (q/k norms per head)
    both:             x = x + w2(silu(w1(rms(x))) * w3(rms(x)))
    logits = lm_head(rms(x))        (the last norm is called `embedding_norm` in the checkpoint)

The conv layers keep their last kernel - 1 inputs between calls (`ConvState`), the attention layers a KV cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import ConvSpec, Mixer, ModelSpec, NormSpec
from ._base import (
    Family,
    Weights,
    base_config,
    dtype_name,
    eos_ids,
    eos_value,
    rename,
    rope_from_config,
    rope_to_config,
)

_MIXERS: dict[str, Mixer] = {"full_attention": "attention", "conv": "conv"}

_RULES = [
    (r"^(?:model\.)?embed_tokens\.", "embed."),
    (r"^(?:model\.)?embedding_norm\.", "final_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.operator_norm\.", r"layers.\1.attn_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.ffn_norm\.", r"layers.\1.mlp_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.self_attn\.([qkv])_proj\.", r"layers.\1.attn.\2."),
    (r"^(?:model\.)?layers\.(\d+)\.self_attn\.out_proj\.", r"layers.\1.attn.o."),
    (r"^(?:model\.)?layers\.(\d+)\.self_attn\.([qk])_layernorm\.", r"layers.\1.attn.\2_norm."),
    (r"^(?:model\.)?layers\.(\d+)\.feed_forward\.w1\.", r"layers.\1.mlp.gate."),
    (r"^(?:model\.)?layers\.(\d+)\.feed_forward\.w3\.", r"layers.\1.mlp.up."),
    (r"^(?:model\.)?layers\.(\d+)\.feed_forward\.w2\.", r"layers.\1.mlp.down."),
    (r"^(?:model\.)?layers\.(\d+)\.conv\.in_proj\.", r"layers.\1.conv.in."),
    (r"^(?:model\.)?layers\.(\d+)\.conv\.out_proj\.", r"layers.\1.conv.out."),
    (r"^(?:model\.)?layers\.(\d+)\.conv\.conv\.", r"layers.\1.conv.kernel."),
]
_INVERSE = [
    (r"^embed\.", "model.embed_tokens."),
    (r"^final_norm\.", "model.embedding_norm."),
    (r"^layers\.(\d+)\.attn_norm\.", r"model.layers.\1.operator_norm."),
    (r"^layers\.(\d+)\.mlp_norm\.", r"model.layers.\1.ffn_norm."),
    (r"^layers\.(\d+)\.attn\.([qkv])\.", r"model.layers.\1.self_attn.\2_proj."),
    (r"^layers\.(\d+)\.attn\.o\.", r"model.layers.\1.self_attn.out_proj."),
    (r"^layers\.(\d+)\.attn\.([qk])_norm\.", r"model.layers.\1.self_attn.\2_layernorm."),
    (r"^layers\.(\d+)\.mlp\.gate\.", r"model.layers.\1.feed_forward.w1."),
    (r"^layers\.(\d+)\.mlp\.up\.", r"model.layers.\1.feed_forward.w3."),
    (r"^layers\.(\d+)\.mlp\.down\.", r"model.layers.\1.feed_forward.w2."),
    (r"^layers\.(\d+)\.conv\.in\.", r"model.layers.\1.conv.in_proj."),
    (r"^layers\.(\d+)\.conv\.out\.", r"model.layers.\1.conv.out_proj."),
    (r"^layers\.(\d+)\.conv\.kernel\.", r"model.layers.\1.conv.conv."),
]


def _intermediate(cfg: dict[str, Any]) -> int:
    """The feed-forward width transformers builds: `block_ff_dim` (the early name) or `intermediate_size`, reduced
    to 2/3, times `block_ffn_dim_multiplier` and rounded up to `block_multiple_of` when `block_auto_adjust_ff_dim`."""
    size = int(cfg.get("block_ff_dim") or cfg["intermediate_size"])
    if cfg.get("block_auto_adjust_ff_dim", True):
        size = int(2 * size / 3)
        multiplier = cfg.get("block_ffn_dim_multiplier", 1.0)
        if multiplier is not None:
            of = int(cfg.get("block_multiple_of", 256))
            size = of * ((int(multiplier * size) + of - 1) // of)
    return size


def _mixers(cfg: dict[str, Any]) -> tuple[Mixer, ...]:
    n = int(cfg["num_hidden_layers"])
    types = cfg.get("layer_types")
    if types is None:
        full = cfg.get("full_attn_idxs")
        full = range(n) if full is None else full
        types = ["full_attention" if i in full else "conv" for i in range(n)]
    unknown = sorted({t for t in types if t not in _MIXERS})
    if unknown or len(types) != n:
        raise UnsupportedArchitecture(
            f"lfm2: layer_types {list(types)!r} is not one of {sorted(_MIXERS)} per layer for {n} layers. "
            "Fix: use a checkpoint whose config.json lists one of those types for every layer."
        )
    return tuple(_MIXERS[t] for t in types)


def lfm2_spec(cfg: dict[str, Any]) -> ModelSpec:
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // nh
    max_pos = cfg.get("max_position_embeddings", 128_000)
    mixers = _mixers(cfg)
    tied = cfg.get("tie_embedding", cfg.get("tie_word_embeddings", True))
    return ModelSpec(
        family="lfm2",
        kind="decoder",
        vocab_size=cfg["vocab_size"],
        hidden_size=h,
        num_layers=len(mixers),
        num_heads=nh,
        num_kv_heads=cfg.get("num_key_value_heads") or nh,
        head_dim=hd,
        intermediate_size=_intermediate(cfg),
        max_positions=max_pos,
        norm=NormSpec(kind="rms", eps=float(cfg.get("norm_eps", 1e-5))),
        activation="silu",
        qk_norm=True,
        rope=rope_from_config({"rope_theta": 1_000_000.0, **cfg}, head_dim=hd, max_positions=max_pos),
        mixers=mixers,
        conv=ConvSpec(kernel=int(cfg.get("conv_L_cache", 3)), bias=bool(cfg.get("conv_bias", False)))
        if "conv" in mixers
        else None,
        tie_embeddings=bool(tied),
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_ids=eos_ids(cfg.get("eos_token_id")),
        pad_token_id=cfg.get("pad_token_id"),
        source_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"),
    )


def lfm2_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for an LFM2 spec (the inverse of `lfm2_spec`), updating `base` if given. The feed-forward width
    is written as built (`block_auto_adjust_ff_dim` false), the layers as `layer_types`."""
    new_style = "rope_parameters" in (base or {}) or base is None
    cfg = base_config(base, "lfm2")
    for key in ("rope_parameters", "full_attn_idxs", "block_ff_dim", "tie_embedding"):
        cfg.pop(key, None)  # the early names override the ones written below
    cfg.update(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        block_auto_adjust_ff_dim=False,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        num_hidden_layers=spec.num_layers,
        layer_types=["conv" if spec.mixer(i) == "conv" else "full_attention" for i in range(spec.num_layers)],
        vocab_size=spec.vocab_size,
        max_position_embeddings=spec.max_positions,
        norm_eps=spec.norm.eps,
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=spec.bos_token_id,
        eos_token_id=eos_value(spec.eos_token_ids),
        pad_token_id=spec.pad_token_id,
        torch_dtype=dtype_name(spec.source_dtype),
    )
    if spec.conv is not None:
        cfg.update(conv_L_cache=spec.conv.kernel, conv_bias=spec.conv.bias)
    if spec.rope is not None:
        cfg.update(rope_to_config(spec.rope, head_dim=spec.head_dim, new_style=new_style))
    return cfg


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Checkpoint names -> canonical ones; the depthwise kernels (H, 1, K) -> (H, K)."""
    weights = rename(raw, _RULES, drop=(r"rotary_emb\.inv_freq$",))
    for i in spec.conv_layers:
        name = f"layers.{i}.conv.kernel.weight"
        if name in weights and weights[name].ndim == 3:
            weights[name] = weights[name][:, 0, :]  # (H, 1, K) -> (H, K), a view
    if spec.tie_embeddings:
        weights.pop("lm_head.weight", None)
    return weights


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> LFM2 names (the inverse of `sanitize`): kernels back to (H, 1, K)."""
    out = rename(weights, _INVERSE)
    for i in spec.conv_layers:
        name = f"model.layers.{i}.conv.conv.weight"
        if name in out:
            out[name] = out[name][:, None, :]  # (H, K) -> (H, 1, K)
    return out


LFM2 = Family(
    name="lfm2",
    model_types=("lfm2",),
    from_config=lfm2_spec,
    sanitize=sanitize,
    to_config=lfm2_config,
    to_checkpoint=to_checkpoint,
)
