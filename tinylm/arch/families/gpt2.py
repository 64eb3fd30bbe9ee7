"""GPT-2: learned positions, LayerNorm with bias, plain GELU(tanh) MLP, biases everywhere.

    x = x + c_proj(attn(c_attn(ln_1(x))));  x = x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))

Checkpoint quirks absorbed here: `Conv1D` weights are stored (in, out) and are transposed;
`c_attn` holds q, k, v stacked on the output axis; the LM head is tied to `wte`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import ModelSpec, NormSpec
from ._base import Family, Weights, activation, activation_name, base_config, dtype_name, eos_ids, eos_value, rename

_RULES = [
    (r"^(?:transformer\.)?wte\.", "embed."),
    (r"^(?:transformer\.)?wpe\.", "pos_embed."),
    (r"^(?:transformer\.)?ln_f\.", "final_norm."),
    (r"^(?:transformer\.)?h\.(\d+)\.ln_1\.", r"layers.\1.attn_norm."),
    (r"^(?:transformer\.)?h\.(\d+)\.ln_2\.", r"layers.\1.mlp_norm."),
    (r"^(?:transformer\.)?h\.(\d+)\.attn\.c_attn\.", r"layers.\1.attn.qkv."),
    (r"^(?:transformer\.)?h\.(\d+)\.attn\.c_proj\.", r"layers.\1.attn.o."),
    (r"^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc\.", r"layers.\1.mlp.up."),
    (r"^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj\.", r"layers.\1.mlp.down."),
]
# Old checkpoints carry the causal mask as buffers named attn.bias / attn.masked_bias.
_DROP = (r"\.attn\.(masked_)?bias$",)


def gpt2_spec(cfg: dict[str, Any]) -> ModelSpec:
    for flag in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if cfg.get(flag):
            raise UnsupportedArchitecture(f"gpt2: {flag}=true is not supported. Fix: use a standard GPT-2 checkpoint.")
    h, nh = cfg["n_embd"], cfg["n_head"]
    scale = (h // nh) ** -0.5 if cfg.get("scale_attn_weights", True) else 1.0
    return ModelSpec(
        family="gpt2",
        kind="decoder",
        vocab_size=cfg["vocab_size"],
        hidden_size=h,
        num_layers=cfg["n_layer"],
        num_heads=nh,
        num_kv_heads=nh,
        head_dim=h // nh,
        intermediate_size=cfg.get("n_inner") or 4 * h,
        max_positions=cfg.get("n_positions", 1024),
        norm=NormSpec(kind="layer", eps=float(cfg.get("layer_norm_epsilon", 1e-5)), bias=True),
        activation=activation(cfg.get("activation_function", "gelu_new"), family="gpt2"),
        gated_mlp=False,
        mlp_bias=True,
        qkv_bias=True,
        out_bias=True,
        learned_positions=True,
        tie_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        attn_scale=scale,
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_ids=eos_ids(cfg.get("eos_token_id")),
        pad_token_id=cfg.get("pad_token_id"),
        source_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"),
    )


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    weights = rename(raw, _RULES, drop=_DROP)
    for name in list(weights):
        if name.endswith((".attn.qkv.weight", ".attn.o.weight", ".mlp.up.weight", ".mlp.down.weight")):
            weights[name] = np.ascontiguousarray(weights[name].T)  # Conv1D (in, out) -> (out, in)
    for name in [n for n in weights if ".attn.qkv." in n]:
        prefix, kind = name.rsplit(".qkv.", 1)
        for part, array in zip("qkv", np.split(weights.pop(name), 3, axis=0)):
            weights[f"{prefix}.{part}.{kind}"] = array
    if spec.tie_embeddings:
        weights.pop("lm_head.weight", None)
    return weights


def gpt2_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a GPT-2 spec (the inverse of `gpt2_spec`), updating `base` if given."""
    cfg = base_config(base, "gpt2")
    cfg.update(
        n_embd=spec.hidden_size,
        n_head=spec.num_heads,
        n_layer=spec.num_layers,
        n_inner=spec.intermediate_size,
        n_positions=spec.max_positions,
        vocab_size=spec.vocab_size,
        layer_norm_epsilon=spec.norm.eps,
        activation_function="gelu_new" if spec.activation == "gelu_tanh" else activation_name(spec.activation),
        tie_word_embeddings=spec.tie_embeddings,
        scale_attn_weights=spec.attn_scale != 1.0,
        bos_token_id=spec.bos_token_id,
        eos_token_id=eos_value(spec.eos_token_ids),
        pad_token_id=spec.pad_token_id,
        torch_dtype=dtype_name(spec.source_dtype),
    )
    return cfg


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> GPT-2 names: q/k/v fused into `c_attn`, Conv1D weights stored (in, out)."""
    out: dict[str, np.ndarray] = {}
    plain = {"embed": "transformer.wte", "pos_embed": "transformer.wpe", "final_norm": "transformer.ln_f"}
    for name, array in weights.items():
        head, _, kind = name.rpartition(".")
        if head in plain:
            out[f"{plain[head]}.{kind}"] = array
        elif name == "lm_head.weight":
            out[name] = array
    for i in range(spec.num_layers):
        c, h = f"layers.{i}", f"transformer.h.{i}"
        for kind in ("weight", "bias"):
            out[f"{h}.ln_1.{kind}"] = weights[f"{c}.attn_norm.{kind}"]
            out[f"{h}.ln_2.{kind}"] = weights[f"{c}.mlp_norm.{kind}"]
        qkv = np.concatenate([weights[f"{c}.attn.{x}.weight"] for x in "qkv"], axis=0)  # (3H, H)
        out[f"{h}.attn.c_attn.weight"] = np.ascontiguousarray(qkv.T)  # Conv1D: (in, out)
        out[f"{h}.attn.c_attn.bias"] = np.concatenate([weights[f"{c}.attn.{x}.bias"] for x in "qkv"])
        for canonical, conv in (("attn.o", "attn.c_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
            out[f"{h}.{conv}.weight"] = np.ascontiguousarray(weights[f"{c}.{canonical}.weight"].T)
            out[f"{h}.{conv}.bias"] = weights[f"{c}.{canonical}.bias"]
    return out


GPT2 = Family(
    name="gpt2",
    model_types=("gpt2",),
    from_config=gpt2_spec,
    sanitize=sanitize,
    to_config=gpt2_config,
    to_checkpoint=to_checkpoint,
)
