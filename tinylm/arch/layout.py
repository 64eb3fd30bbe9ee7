"""Canonical weight names and shapes: the one vocabulary every family maps its checkpoint to.

Linear weights are stored (out_features, in_features), as `torch.nn.Linear` holds them.

    embed.weight                      (V, H)
    pos_embed.weight                  (P, H)      learned positions (GPT-2, BERT)
    type_embed.weight                 (T, H)      token types (BERT)
    embed_norm.{weight,bias}          (H,)        BERT
    layers.{i}.attn_norm.{weight,bias}            before attention (pre) / after its residual (post); absent on
                                                  `ModelSpec.no_attn_norm_layers` (ModernBERT's layer 0)
    layers.{i}.attn.{q,k,v,o}.{weight,bias}       q: (nh*hd, H)  k,v: (nkv*hd, H)  o: (H, nh*hd)
    layers.{i}.attn.{q_norm,k_norm}.weight (hd,)  Qwen3; (nh*hd,), (nkv*hd,) over the whole projection (OLMo 2)
    layers.{i}.conv.in.{weight,bias}  (3H, H)     conv layers (LFM2) instead of attn.*: rows b | c | u
    layers.{i}.conv.kernel.{weight,bias} (H, K)  the depthwise causal kernel (K = ConvSpec.kernel), bias (H,)
    layers.{i}.conv.out.{weight,bias} (H, H)
    layers.{i}.attn_post_norm.weight  (H,)        on attention's output (Gemma 2/3 sandwich, OLMo 2)
    layers.{i}.mlp_norm.{weight,bias}
    layers.{i}.mlp_post_norm.weight   (H,)        on the MLP's output
    layers.{i}.mlp.{gate,up}.{weight,bias}        (I, H)   (gate only for gated MLPs)
    layers.{i}.mlp.down.{weight,bias}             (H, I)
    final_norm.{weight,bias}          (H,)
    lm_head.weight                    (V, H)      absent when tied to embed.weight
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import WeightsError
from .spec import ModelSpec, NormSpec

__all__ = ["expected_shapes", "check_weights", "is_norm_weight", "NORMS"]

Shape = tuple[int, ...]

# the modules whose `.weight` is a norm scale (`NormSpec.weight_offset` applies to these)
NORMS = ("attn_norm", "mlp_norm", "attn_post_norm", "mlp_post_norm", "embed_norm", "final_norm", "q_norm", "k_norm")


def is_norm_weight(name: str) -> bool:
    """Whether canonical tensor `name` is a norm's scale, e.g. `layers.0.attn.q_norm.weight`."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in NORMS


def _norm(prefix: str, norm: NormSpec, h: int) -> dict[str, Shape]:
    out = {f"{prefix}.weight": (h,)}
    if norm.bias:
        out[f"{prefix}.bias"] = (h,)
    return out


def _linear(prefix: str, out_f: int, in_f: int, bias: bool) -> dict[str, Shape]:
    out: dict[str, Shape] = {f"{prefix}.weight": (out_f, in_f)}
    if bias:
        out[f"{prefix}.bias"] = (out_f,)
    return out


def expected_shapes(spec: ModelSpec) -> dict[str, Shape]:
    """Every canonical tensor the spec needs, with its shape."""
    h, s = spec.hidden_size, spec
    shapes: dict[str, Shape] = {"embed.weight": (s.vocab_size, h)}
    if s.learned_positions:
        shapes["pos_embed.weight"] = (s.max_positions + s.position_offset, h)
    if s.type_vocab_size:
        shapes["type_embed.weight"] = (s.type_vocab_size, h)
    if s.embed_norm:
        shapes.update(_norm("embed_norm", s.norm, h))
    for i in range(s.num_layers):
        p = f"layers.{i}"
        if s.has_attn_norm(i):
            shapes.update(_norm(f"{p}.attn_norm", s.norm, h))
        if s.output_norms:
            shapes.update(_norm(f"{p}.attn_post_norm", s.norm, h))
            shapes.update(_norm(f"{p}.mlp_post_norm", s.norm, h))
        if s.mixer(i) == "conv":
            shapes.update(_conv(f"{p}.conv", s, h))
        else:
            shapes.update(_attention(f"{p}.attn", s, h))
        if s.norm_placement != "output":
            shapes.update(_norm(f"{p}.mlp_norm", s.norm, h))
        if s.gated_mlp:
            shapes.update(_linear(f"{p}.mlp.gate", s.intermediate_size, h, s.mlp_bias))
        shapes.update(_linear(f"{p}.mlp.up", s.intermediate_size, h, s.mlp_bias))
        shapes.update(_linear(f"{p}.mlp.down", h, s.intermediate_size, s.mlp_bias))
    if s.final_norm:
        shapes.update(_norm("final_norm", s.norm, h))
    if s.kind == "decoder" and not s.tie_embeddings:
        shapes["lm_head.weight"] = (s.vocab_size, h)
    return shapes


def _attention(p: str, s: ModelSpec, h: int) -> dict[str, Shape]:
    shapes = _linear(f"{p}.q", s.q_size, h, s.qkv_bias)
    shapes.update(_linear(f"{p}.k", s.kv_size, h, s.qkv_bias))
    shapes.update(_linear(f"{p}.v", s.kv_size, h, s.qkv_bias))
    shapes.update(_linear(f"{p}.o", h, s.q_size, s.out_bias))
    if s.qk_norm:
        whole = s.qk_norm_over == "all"
        shapes[f"{p}.q_norm.weight"] = (s.q_size,) if whole else (s.head_dim,)
        shapes[f"{p}.k_norm.weight"] = (s.kv_size,) if whole else (s.head_dim,)
    return shapes


def _conv(p: str, s: ModelSpec, h: int) -> dict[str, Shape]:
    assert s.conv is not None
    bias = s.conv.bias
    shapes = _linear(f"{p}.in", 3 * h, h, bias)
    shapes[f"{p}.kernel.weight"] = (h, s.conv.kernel)
    if bias:
        shapes[f"{p}.kernel.bias"] = (h,)
    shapes.update(_linear(f"{p}.out", h, h, bias))
    return shapes


def check_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray], *, where: str) -> None:
    """Raise `WeightsError` naming each missing, unexpected or mis-shaped tensor (`where`: the model folder).

    An unexpected tensor is an error, not ignored: it usually means config.json describes fewer layers or
    smaller blocks than the weights hold, which would run a different model than the checkpoint."""
    expected = expected_shapes(spec)
    missing = [name for name in expected if name not in weights]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WeightsError(
            f"{where}: the checkpoint lacks {len(missing)} tensor(s) the {spec.family} config needs: {shown}. "
            "Fix: check that every shard listed in model.safetensors.index.json is present and that "
            "config.json belongs to these weights."
        )
    unexpected = sorted(name for name in weights if name not in expected)
    if unexpected:
        shown = ", ".join(unexpected[:5]) + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
        raise WeightsError(
            f"{where}: the checkpoint holds {len(unexpected)} tensor(s) the {spec.family} config does not use: "
            f"{shown}. Fix: config.json does not match the weights (e.g. a wrong num_hidden_layers); use the config "
            "the checkpoint was saved with, or remove the extra tensors."
        )
    for name, shape in expected.items():
        got = tuple(weights[name].shape)
        if got != shape:
            raise WeightsError(
                f"{where}: tensor {name} has shape {got} but config.json implies {shape}. "
                "Fix: config.json does not match the weights; use the config the checkpoint was saved with."
            )
