"""ModernBERT encoders (answerdotai/ModernBERT-base/large and the embedders built on them: gte-modernbert,
nomic modernbert-embed): a pre-norm block with rotary positions, GeGLU, LayerNorms without biases (`norm_bias`),
and attention alternating between global layers and local ones that see `local_attention` tokens around each
query (|q - k| <= local_attention // 2), each kind with its own rotary base.

    x = LN(embed(ids))                                   no positions added, no token types
    x = x + Wo(attn(rope(Wqkv(LN(x)))))                  layer 0: no LN before attention (x is already normed)
    x = x + Wo(gelu(a) * b),  a | b = Wi(LN(x))          the first half of Wi is activated
    hidden = LN(x)                                       final norm

Layer types come from `layer_types` (transformers 5) or `global_attn_every_n_layers` (layer i is global when
i % n == 0); rotary bases from `rope_parameters` per layer type or `global_rope_theta` / `local_rope_theta`.
transformers runs padded batches through the padding mask (flash-attention unpads instead); padding on the
right never changes the real tokens' states, which is what tinylm's backends compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import ModelSpec, NormSpec, RopeSpec
from ._base import (
    Family,
    Weights,
    activation,
    activation_name,
    base_config,
    dtype_name,
    rename,
    rope_from_config,
    rope_to_config,
)

_RULES = [
    (r"^embeddings\.tok_embeddings\.", "embed."),
    (r"^embeddings\.norm\.", "embed_norm."),
    (r"^layers\.(\d+)\.attn\.Wo\.", r"layers.\1.attn.o."),
    (r"^layers\.(\d+)\.mlp\.Wo\.", r"layers.\1.mlp.down."),
]
# task heads of ModernBertForMaskedLM / ...ForSequenceClassification: not part of the encoder
_DROP = (r"^head\.", r"^decoder\.", r"^classifier\.", r"^drop\.")
_INVERSE = [
    (r"^embed\.", "embeddings.tok_embeddings."),
    (r"^embed_norm\.", "embeddings.norm."),
    (r"^layers\.(\d+)\.attn\.o\.", r"layers.\1.attn.Wo."),
    (r"^layers\.(\d+)\.mlp\.down\.", r"layers.\1.mlp.Wo."),
]


def _layer_types(cfg: dict[str, Any]) -> list[str]:
    types = cfg.get("layer_types")
    if types:
        return list(types)
    every = int(cfg.get("global_attn_every_n_layers") or 3)
    return ["sliding_attention" if i % every else "full_attention" for i in range(cfg["num_hidden_layers"])]


def _ropes(cfg: dict[str, Any], head_dim: int, max_positions: int) -> tuple[RopeSpec, RopeSpec]:
    """(global, local) rotary specs: transformers 5's `rope_parameters` per layer type, or the checkpoints'
    `global_rope_theta` / `local_rope_theta` (160000 / 10000 when absent, as ModernBertConfig defaults)."""
    params = cfg.get("rope_parameters") or {}
    out = []
    for kind, old_key, default in (
        ("full_attention", "global_rope_theta", 160_000.0),
        ("sliding_attention", "local_rope_theta", 10_000.0),
    ):
        own = dict(params.get(kind) or {})
        own.setdefault("rope_type", "default")
        own.setdefault("rope_theta", float(cfg.get(old_key) or default))
        if cfg.get("rope_scaling"):
            own.update(cfg["rope_scaling"])
        out.append(rope_from_config({"rope_parameters": own}, head_dim=head_dim, max_positions=max_positions))
    return out[0], out[1]


def modernbert_spec(cfg: dict[str, Any]) -> ModelSpec:
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    if h % nh:
        raise UnsupportedArchitecture(
            f"modernbert: hidden_size {h} is not a multiple of num_attention_heads {nh}. "
            "Fix: use the config.json the checkpoint was saved with."
        )
    layers = cfg["num_hidden_layers"]
    types = _layer_types(cfg)
    if len(types) != layers or set(types) - {"sliding_attention", "full_attention"}:
        raise UnsupportedArchitecture(
            f"modernbert: layer_types {types} is not one of sliding_attention / full_attention per layer. "
            "Fix: use the config.json the checkpoint was saved with."
        )
    local = int(cfg.get("local_attention", 128))
    windows = tuple(local if t == "sliding_attention" else None for t in types)
    max_positions = int(cfg.get("max_position_embeddings", 8192))
    full, local_rope = _ropes(cfg, h // nh, max_positions)
    bias = bool(cfg.get("attention_bias", False))
    return ModelSpec(
        family="modernbert",
        kind="encoder",
        vocab_size=cfg["vocab_size"],
        hidden_size=h,
        num_layers=layers,
        num_heads=nh,
        num_kv_heads=nh,
        head_dim=h // nh,
        intermediate_size=cfg["intermediate_size"],
        max_positions=max_positions,
        norm=NormSpec(kind="layer", eps=float(cfg.get("norm_eps", 1e-5)), bias=bool(cfg.get("norm_bias", False))),
        norm_placement="pre",
        activation=activation(cfg.get("hidden_activation", "gelu"), family="modernbert"),
        gated_mlp=True,
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qkv_bias=bias,
        out_bias=bias,
        rope=full,
        local_rope=local_rope,
        layer_windows=windows if any(w is not None for w in windows) else (),
        no_attn_norm_layers=(0,),
        embed_norm=True,
        final_norm=True,
        tie_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_ids=(),
        pad_token_id=cfg.get("pad_token_id"),
        source_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"),
    )


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """ModernBertModel names (under `model.` when saved from a task model) -> canonical; Wqkv and Wi split."""
    plain = {n.removeprefix("model."): w for n, w in raw.items()}
    weights = rename(plain, _RULES, drop=_DROP)
    for i in range(spec.num_layers):
        p = f"layers.{i}"
        for kind in ("weight", "bias"):
            if f"{p}.attn.Wqkv.{kind}" in weights:
                qkv = weights.pop(f"{p}.attn.Wqkv.{kind}")  # (3 * H, H): q | k | v
                q, k, v = np.split(qkv, 3, axis=0)
                weights.update({f"{p}.attn.q.{kind}": q, f"{p}.attn.k.{kind}": k, f"{p}.attn.v.{kind}": v})
            if f"{p}.mlp.Wi.{kind}" in weights:
                act, gate = np.split(weights.pop(f"{p}.mlp.Wi.{kind}"), 2, axis=0)  # (2I, H): activated | gate
                weights.update({f"{p}.mlp.gate.{kind}": act, f"{p}.mlp.up.{kind}": gate})
    return weights


def modernbert_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a ModernBERT spec (the inverse of `modernbert_spec`), updating `base` if given."""
    if spec.no_attn_norm_layers != (0,) or spec.num_heads != spec.num_kv_heads:
        raise UnsupportedArchitecture(
            "modernbert: only layer 0 may lack its attention norm and every head has its own keys in ModernBERT. "
            "Fix: keep layer 0 and all heads when pruning a ModernBERT encoder."
        )
    cfg = base_config(base, "modernbert")
    for key in ("global_attn_every_n_layers", "global_rope_theta", "local_rope_theta", "rope_scaling"):
        cfg.pop(key, None)
    assert spec.rope is not None
    windows = [w for w in spec.layer_windows if w is not None]
    local = spec.local_rope or spec.rope
    cfg.update(
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_heads,
        num_hidden_layers=spec.num_layers,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        vocab_size=spec.vocab_size,
        norm_eps=spec.norm.eps,
        norm_bias=spec.norm.bias,
        hidden_activation=activation_name(spec.activation),
        attention_bias=spec.qkv_bias,
        mlp_bias=spec.mlp_bias,
        local_attention=windows[0] if windows else cfg.get("local_attention", 128),
        layer_types=[
            "sliding_attention" if spec.window(i) is not None else "full_attention" for i in range(spec.num_layers)
        ],
        rope_parameters={
            kind: rope_to_config(rope, head_dim=spec.head_dim, new_style=True)["rope_parameters"]
            for kind, rope in (("full_attention", spec.rope), ("sliding_attention", local))
        },
        tie_word_embeddings=spec.tie_embeddings,
        pad_token_id=spec.pad_token_id,
        torch_dtype=dtype_name(spec.source_dtype),
    )
    if spec.bos_token_id is not None:
        cfg["bos_token_id"] = spec.bos_token_id
    return cfg


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> ModernBertModel names, q/k/v fused into `Wqkv` and gate/up into `Wi`."""
    out = rename(weights, _INVERSE)
    for i in range(spec.num_layers):
        p = f"layers.{i}"
        for kind in ("weight", "bias"):
            if f"{p}.attn.q.{kind}" in out:
                parts = [out.pop(f"{p}.attn.{x}.{kind}") for x in "qkv"]
                out[f"{p}.attn.Wqkv.{kind}"] = np.concatenate(parts, axis=0)  # (3 * H, H)
            if f"{p}.mlp.gate.{kind}" in out:
                act, gate = out.pop(f"{p}.mlp.gate.{kind}"), out.pop(f"{p}.mlp.up.{kind}")
                out[f"{p}.mlp.Wi.{kind}"] = np.concatenate([act, gate], axis=0)  # (2I, H)
    return out


MODERNBERT = Family(
    name="modernbert",
    model_types=("modernbert",),
    from_config=modernbert_spec,
    sanitize=sanitize,
    to_config=modernbert_config,
    to_checkpoint=to_checkpoint,
)
