"""The whole model as MIL ops, lowered from a `ModelSpec` alone (no family names):

    embed (* embed_scale) (+ positions + token types) -> [embed_norm] -> N x block -> [final_norm] -> lm_head

    pre-norm block:   x = x + r * attn(attn_norm(x));  x = x + r * mlp(mlp_norm(x))   (r: Granite)
    post-norm block:  x = attn_norm(x + attn(x));  x = mlp_norm(x + mlp(x))        (BERT)
    sandwich / output blocks: attention's and the MLP's outputs normalised before the residual add
    (Gemma 2/3 with the input norms too; OLMo 2 without them)

`decoder_logits` and `encoder_hidden` take input vars and return output vars; `program.py` wraps them
in Core ML program signatures, `evaluate.py` feeds them constants.
"""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var

from tinylm.arch.rope import cos_sin, switch_length
from tinylm.arch.spec import ModelSpec

from .attention import Frame, attention
from .conv import ConvStates, short_conv
from .kvcache import KVCache, NoCache
from .layers import ACTIVATIONS, linear, norm
from .masks import MASKED
from .weights import Constants

__all__ = ["decoder_logits", "encoder_hidden"]


def _norm(x: Var, spec: ModelSpec, w: Constants, prefix: str) -> Var:
    return norm(x, spec.norm, w(f"{prefix}.weight"), w.optional(f"{prefix}.bias"))


def _mlp(x: Var, spec: ModelSpec, w: Constants, layer: int) -> Var:
    p = f"layers.{layer}.mlp"
    act = ACTIVATIONS[spec.activation]
    up = linear(x, w(f"{p}.up.weight"), w.optional(f"{p}.up.bias"))  # (B, T, I)
    if spec.gated_mlp:
        up = mb.mul(x=act(linear(x, w(f"{p}.gate.weight"), w.optional(f"{p}.gate.bias"))), y=up)
    else:
        up = act(up)
    return linear(up, w(f"{p}.down.weight"), w.optional(f"{p}.down.bias"))  # (B, T, H)


def _block(x: Var, spec: ModelSpec, w: Constants, layer: int, frame: Frame) -> Var:
    p = f"layers.{layer}"
    if spec.norm_placement == "post":
        x = _norm(mb.add(x=x, y=attention(x, spec, w, layer, frame)), spec, w, f"{p}.attn_norm")
        return _norm(mb.add(x=x, y=_mlp(x, spec, w, layer)), spec, w, f"{p}.mlp_norm")
    h = _input_norm(x, spec, w, f"{p}.attn_norm", spec.has_attn_norm(layer))
    a = (
        short_conv(h, spec, w, layer, frame.conv)
        if spec.mixer(layer) == "conv"
        else attention(h, spec, w, layer, frame)
    )
    x = mb.add(x=x, y=_sublayer_out(a, spec, w, f"{p}.attn_post_norm"))
    m = _mlp(_input_norm(x, spec, w, f"{p}.mlp_norm"), spec, w, layer)
    return mb.add(x=x, y=_sublayer_out(m, spec, w, f"{p}.mlp_post_norm"))


def _input_norm(x: Var, spec: ModelSpec, w: Constants, prefix: str, has: bool = True) -> Var:
    """A sublayer's input: x normalised by `prefix`, or x itself where the spec has no input norms (OLMo 2) or this
    layer has none (`has` False: a layer in `no_attn_norm_layers`, ModernBERT's first)."""
    return _norm(x, spec, w, prefix) if spec.input_norms and has else x


def _sublayer_out(y: Var, spec: ModelSpec, w: Constants, prefix: str) -> Var:
    """A sublayer's output as the residual stream adds it: normalised by `prefix` where the spec has output norms
    (Gemma 2/3, OLMo 2), times residual_scale (Granite)."""
    return _residual_scaled(_norm(y, spec, w, prefix) if spec.output_norms else y, spec)


def _residual_scaled(y: Var, spec: ModelSpec) -> Var:
    """A sublayer's output as the residual stream adds it: times residual_scale (Granite)."""
    return y if spec.residual_scale == 1.0 else mb.mul(x=y, y=np.float32(spec.residual_scale))


def _embed(ids: Var, positions: Var, types: Var | None, spec: ModelSpec, w: Constants) -> Var:
    """ids (B, T) int32, positions (T,) int32 -> (B, T, H)."""
    x = mb.gather(x=w("embed.weight"), indices=ids, axis=0)  # (B, T, H)
    if spec.embed_scale != 1.0:
        x = mb.mul(x=x, y=np.float32(spec.embed_scale))
    if spec.learned_positions:
        at = mb.add(x=positions, y=np.int32(spec.position_offset)) if spec.position_offset else positions
        x = mb.add(x=x, y=mb.gather(x=w("pos_embed.weight"), indices=at, axis=0))  # + (T, H)
    if spec.type_vocab_size and types is not None:
        x = mb.add(x=x, y=mb.gather(x=w("type_embed.weight"), indices=types, axis=0))
    return _norm(x, spec, w, "embed_norm") if spec.embed_norm else x


def _rope_tables(spec: ModelSpec, w: Constants, positions: Var, capacity: int) -> dict[str, tuple[Var, Var]]:
    """For each rotary table the layers use: cos, sin (1, 1, T, rd) for `positions`, gathered from tables baked
    for [0, capacity). longrope: both tables baked; a sequence longer than the switch length (its last position
    >= switch) reads the long one."""
    out = {}
    for kind in spec.rope_kinds:
        rope, prefix = spec.rope_of(kind), "rope" if kind == "global" else f"rope_{kind}"
        names = (f"{prefix}_cos", f"{prefix}_sin")
        tables = [w.table(name, t) for name, t in zip(names, cos_sin(rope, capacity))]  # (C, rd)
        switch = switch_length(rope)
        if switch is not None and switch < capacity:
            long = [w.table(f"{n}_long", t) for n, t in zip(names, cos_sin(rope, capacity, long=True))]
            last = mb.slice_by_index(x=positions, begin=[-1], end=[0], end_mask=[True])  # (1,) the last position
            past = mb.greater_equal(x=last, y=np.int32(switch))  # (1,) bool, broadcast over the (C, rd) tables
            tables = [mb.select(cond=past, a=lt, b=st) for lt, st in zip(long, tables)]
        cos, sin = (mb.expand_dims(x=mb.gather(x=t, indices=positions, axis=0), axes=[0, 1]) for t in tables)
        out[kind] = (cos, sin)
    return out


def _window_bands(spec: ModelSpec, positions: Var, mask: Var) -> dict[int, Var]:
    """Per-layer sliding windows (the host's mask is causal only when windows differ by layer): for each window,
    (1, 1, T, S) additive, MASKED where key position k <= q - window. Keys are the mask's S slots: positions
    0..S-T-1 (the cache, in both layouts) then this call's `positions`."""
    if not spec.layer_windows:
        return {}
    T = mb.gather(x=mb.shape(x=positions), indices=0, axis=0)
    S = mb.gather(x=mb.shape(x=mask), indices=3, axis=0)
    keys = mb.concat(values=[mb.range_1d(start=0, end=mb.sub(x=S, y=T), step=1), positions], axis=0)  # (S,)
    q = mb.expand_dims(x=positions, axes=[1])  # (T, 1)
    bands = {}
    for window in spec.windows:
        if window is None:
            continue
        inside = mb.greater_equal(x=mb.sub(x=mb.add(x=keys, y=np.int32(window)), y=q), y=np.int32(1))  # (T, S)
        band = mb.mul(x=mb.sub(x=np.float32(1.0), y=mb.cast(x=inside, dtype="fp32")), y=np.float32(MASKED))
        bands[window] = mb.expand_dims(x=band, axes=[0, 1])  # (1, 1, T, S)
    return bands


def _centred_bands(spec: ModelSpec, positions: Var) -> dict[int, Var]:
    """Encoders' local layers: for each window, (1, 1, T, T) additive, MASKED where |q - k| > window // 2
    (ModernBERT), added to the padding mask on the layers with that window. Written with greater_equal on both
    signs of q - k (at most one holds), ops the package test already allows."""
    q, k = mb.expand_dims(x=positions, axes=[1]), mb.expand_dims(x=positions, axes=[0])  # (T, 1), (1, T)
    ahead, behind = mb.sub(x=q, y=k), mb.sub(x=k, y=q)  # (T, T) each
    bands = {}
    for window in spec.windows:
        if window is not None:
            reach = np.int32(window // 2 + 1)
            far = [mb.cast(x=mb.greater_equal(x=d, y=reach), dtype="fp32") for d in (ahead, behind)]
            outside = mb.add(x=far[0], y=far[1])  # (T, T) 1 outside the window, 0 inside
            bands[window] = mb.expand_dims(x=mb.mul(x=outside, y=np.float32(MASKED)), axes=[0, 1])  # (1, 1, T, T)
    return bands


def decoder_logits(
    spec: ModelSpec,
    w: Constants,
    ids: Var,
    positions: Var,
    mask: Var,
    cache: KVCache,
    capacity: int,
    conv: ConvStates | None = None,
) -> Var:
    """ids (1, T) int32, positions (T,) int32, additive mask (1, 1, T, S) float32 -> logits (1, T, V) float32.
    `conv`: the conv layers' states (LFM2)."""
    frame = Frame(
        rope=_rope_tables(spec, w, positions, capacity),
        mask=mask,
        cache=cache,
        bands=_window_bands(spec, positions, mask),
        conv=conv,
    )
    x = _embed(ids, positions, None, spec, w)  # (1, T, H)
    for layer in range(spec.num_layers):
        x = _block(x, spec, w, layer, frame)
    if spec.final_norm:
        x = _norm(x, spec, w, "final_norm")
    logits = linear(x, w.head())  # (1, T, V)
    if spec.logits_scaling != 1.0:
        logits = mb.real_div(x=logits, y=np.float32(spec.logits_scaling))
    if spec.logits_softcap is not None:
        cap = np.float32(spec.logits_softcap)
        logits = mb.mul(x=mb.tanh(x=mb.real_div(x=logits, y=cap)), y=cap)
    return logits


def encoder_hidden(spec: ModelSpec, w: Constants, ids: Var, attention_mask: Var, types: Var | None) -> Var:
    """ids, attention_mask (1 = token, 0 = padding), types: (B, T) int32 -> last hidden states (B, T, H)."""
    length = mb.gather(x=mb.shape(x=ids), indices=1, axis=0)  # T, a scalar
    positions = mb.range_1d(start=0, end=length, step=1)  # (T,)
    keep = mb.cast(x=attention_mask, dtype="fp32")  # (B, T)
    additive = mb.mul(x=mb.sub(x=1.0, y=keep), y=np.float32(MASKED))
    mask = mb.expand_dims(x=additive, axes=[1, 2])  # (B, 1, 1, T)
    frame = Frame(
        rope=_rope_tables(spec, w, positions, spec.max_positions),
        mask=mask,
        cache=NoCache(),
        bands=_centred_bands(spec, positions),
    )
    x = _embed(ids, positions, types, spec, w)  # (B, T, H)
    for layer in range(spec.num_layers):
        x = _block(x, spec, w, layer, frame)
    return _norm(x, spec, w, "final_norm") if spec.final_norm else x
