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
from ._base import Family, Weights, activation, eos_ids, rename

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


GPT2 = Family(name="gpt2", model_types=("gpt2",), from_config=gpt2_spec, sanitize=sanitize)
