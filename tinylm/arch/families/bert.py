"""BERT encoders, including MiniLM sentence-transformers models.

    x = LN(word + position + token_type embeddings)
    x = LN(x + o(attn(q(x), k(x), v(x))));  x = LN(x + down(gelu(up(x))))      (post-norm)

Pooling and normalisation come from the sentence-transformers files beside the weights
(`modules.json`, `1_Pooling/config.json`), read by `tinylm.resolve`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import ModelSpec, NormSpec
from ._base import Family, Weights, activation, activation_name, base_config, dtype_name, eos_ids, eos_value, rename

_P = r"^(?:bert\.)?"
_RULES = [
    (_P + r"embeddings\.word_embeddings\.", "embed."),
    (_P + r"embeddings\.position_embeddings\.", "pos_embed."),
    (_P + r"embeddings\.token_type_embeddings\.", "type_embed."),
    (_P + r"embeddings\.LayerNorm\.", "embed_norm."),
    (_P + r"encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.attn.q."),
    (_P + r"encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.attn.k."),
    (_P + r"encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.attn.v."),
    (_P + r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn.o."),
    (_P + r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_norm."),
    (_P + r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.mlp.up."),
    (_P + r"encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.mlp.down."),
    (_P + r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.mlp_norm."),
]
_DROP = (r"pooler\.", r"^cls\.", r"position_ids$")
# canonical -> checkpoint (BertModel names, no `bert.` prefix), the inverse of _RULES
_INVERSE = [
    (r"^embed\.", "embeddings.word_embeddings."),
    (r"^pos_embed\.", "embeddings.position_embeddings."),
    (r"^type_embed\.", "embeddings.token_type_embeddings."),
    (r"^embed_norm\.", "embeddings.LayerNorm."),
    (r"^layers\.(\d+)\.attn\.q\.", r"encoder.layer.\1.attention.self.query."),
    (r"^layers\.(\d+)\.attn\.k\.", r"encoder.layer.\1.attention.self.key."),
    (r"^layers\.(\d+)\.attn\.v\.", r"encoder.layer.\1.attention.self.value."),
    (r"^layers\.(\d+)\.attn\.o\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.attn_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.mlp\.up\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.mlp\.down\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.mlp_norm\.", r"encoder.layer.\1.output.LayerNorm."),
]


def bert_spec(cfg: dict[str, Any]) -> ModelSpec:
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise UnsupportedArchitecture(
            f"bert: position_embedding_type={cfg['position_embedding_type']!r} is not supported. "
            "Fix: use a BERT checkpoint with absolute position embeddings."
        )
    h = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    return ModelSpec(
        family="bert",
        kind="encoder",
        vocab_size=cfg["vocab_size"],
        hidden_size=h,
        num_layers=cfg["num_hidden_layers"],
        num_heads=nh,
        num_kv_heads=nh,
        head_dim=h // nh,
        intermediate_size=cfg["intermediate_size"],
        max_positions=cfg.get("max_position_embeddings", 512),
        norm=NormSpec(kind="layer", eps=float(cfg.get("layer_norm_eps", 1e-12)), bias=True),
        norm_placement="post",
        activation=activation(cfg.get("hidden_act", "gelu"), family="bert"),
        gated_mlp=False,
        mlp_bias=True,
        qkv_bias=True,
        out_bias=True,
        learned_positions=True,
        type_vocab_size=cfg.get("type_vocab_size", 2),
        embed_norm=True,
        final_norm=False,
        bos_token_id=None,
        eos_token_ids=eos_ids(cfg.get("eos_token_id")),
        pad_token_id=cfg.get("pad_token_id", 0),
        source_dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32"),
    )


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    weights = rename(raw, _RULES, drop=_DROP)
    # TF-era checkpoints name LayerNorm parameters gamma/beta.
    return {n.replace(".gamma", ".weight").replace(".beta", ".bias"): w for n, w in weights.items()}


def bert_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a BERT spec (the inverse of `bert_spec`), updating `base` if given."""
    cfg = base_config(base, spec.family)
    cfg.update(
        hidden_size=spec.hidden_size,
        num_attention_heads=spec.num_heads,
        num_hidden_layers=spec.num_layers,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        vocab_size=spec.vocab_size,
        type_vocab_size=spec.type_vocab_size,
        layer_norm_eps=spec.norm.eps,
        hidden_act=activation_name(spec.activation),
        position_embedding_type="absolute",
        pad_token_id=spec.pad_token_id,
        torch_dtype=dtype_name(spec.source_dtype),
    )
    if spec.eos_token_ids or "eos_token_id" in cfg:
        cfg["eos_token_id"] = eos_value(spec.eos_token_ids)
    return cfg


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> BertModel names (the inverse of `sanitize`)."""
    return rename(weights, _INVERSE)


BERT = Family(
    name="bert",
    model_types=("bert",),
    from_config=bert_spec,
    sanitize=sanitize,
    to_config=bert_config,
    to_checkpoint=to_checkpoint,
)
