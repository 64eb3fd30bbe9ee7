"""The whole model, lowered from a `ModelSpec` and canonical numpy weights alone (no torch):

    embed (* embed_scale) (+ positions + token types) -> [embed_norm] -> N x block -> [final_norm] -> lm_head

    pre-norm block:   x = x + attn(norm(x)); x = x + mlp(norm(x))
    post-norm block:  x = norm(x + attn(x)); x = norm(x + mlp(x))                 (BERT)

Decoder I/O (stateful: the KV cache is in OpenVINO state, see attention.py; so are LFM2's conv states, conv.py):
    input_ids (B, T) int64, beam_idx (B,) int32 (the state row each row continues: arange(B), or a selection
    that drops and reorders rows), position_ids (B, T) int64 (each row's positions of its new tokens: its
    rotary table rows), attention_bias (B, 1, T, S) float32 (0 where query t of row b attends the state's key j,
    past then new; float32's lowest elsewhere) and attention_bias.w<W> for each sliding window W, logits_from
    (1,) int64 (first position whose logits are computed: T - 1 when decoding, 0 for all)
        ->  logits (B, T - logits_from, V)
    The session writes the masks from the positions it keeps (`masks.py`), so rows of different lengths, with
    holes in the state (padding, steps a row sat out), share one state and one run.
Encoder I/O: input_ids, attention_mask (B, T) int64 [, token_type_ids]  ->  hidden (B, T, H)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import openvino as ov

from tinylm.arch.spec import ModelSpec

from .attention import decoder_attention, encoder_attention
from .compress import weight
from .conv import short_conv
from .graph import Output, const, ints, model, named, ops
from .layers import ACTIVATIONS, Lowering
from .options import BuildOptions

__all__ = ["build_model", "INPUTS"]

INPUTS = ("input_ids", "beam_idx", "position_ids", "attention_bias", "logits_from")  # [+ attention_bias.w<window>]


def _param(name: str, dtype: str, shape: list[int]) -> tuple[Output, object]:
    p = ops.parameter(ov.PartialShape(shape), ov.Type(np.dtype(dtype)), name=name)
    p.output(0).get_tensor().set_names({name})
    return p.output(0), p


def _mlp(lw: Lowering, x: Output, i: int) -> Output:
    s, p = lw.spec, f"layers.{i}.mlp"
    act = ACTIVATIONS[s.activation]
    up = lw.linear(x, f"{p}.up", bias=s.mlp_bias)
    if s.gated_mlp:
        up = ops.multiply(act(lw.linear(x, f"{p}.gate", bias=s.mlp_bias)), up).output(0)
    else:
        up = act(up)
    return lw.linear(up, f"{p}.down", bias=s.mlp_bias)


def _input_norm(lw: Lowering, x: Output, prefix: str, has: bool = True) -> Output:
    """A sublayer's input: x normalised by `prefix`, or x itself where the spec has no input norms (OLMo 2) or
    this layer has none (`has` False: a layer in `no_attn_norm_layers`)."""
    return lw.norm(x, prefix) if lw.spec.input_norms and has else x


def _sublayer_out(lw: Lowering, y: Output, prefix: str) -> Output:
    """A sublayer's output as the residual stream adds it: normalised by `prefix` where the spec has output norms
    (Gemma 2/3, OLMo 2), times residual_scale (Granite)."""
    return _residual_scaled(lw, lw.norm(y, prefix) if lw.spec.output_norms else y)


def _residual_scaled(lw: Lowering, y: Output) -> Output:
    """A sublayer's output as the residual stream adds it: times residual_scale (Granite)."""
    r = lw.spec.residual_scale
    return y if r == 1.0 else ops.multiply(y, const(np.float32(r), "residual_scale")).output(0)


def _table(lw: Lowering) -> Output:
    """The embedding table (V, H) as float32."""
    return weight(lw.w("embed.weight"), lw.opts.plan.embed, "embed.weight")


def _embed(lw: Lowering, ids: Output, types: Output | None, table: Output) -> Output:
    s, f = lw.spec, lw.frame
    x = ops.gather(table, ids, ints(0)).output(0)  # (B, T, H)
    if s.embed_scale != 1.0:
        x = ops.multiply(x, const(np.float32(s.embed_scale), "embed_scale")).output(0)
    if s.learned_positions:
        table = const(lw.w("pos_embed.weight"), "pos_embed.weight")
        if f.positions is not None:  # each row's own positions, (B, T, H)
            rows = ops.gather(table, ops.add(f.positions, ints(s.position_offset)), ints(0))
        else:  # rows [offset + start, offset + end) of the table, (T, H)
            lo, hi = (ops.add(b, ints([s.position_offset])) for b in (f.start, f.end))
            rows = ops.slice(table, lo, hi, ints([1]))
        x = ops.add(x, rows).output(0)
    if s.type_vocab_size:
        tt = const(lw.w("type_embed.weight"), "type_embed.weight")
        x = ops.add(x, ops.gather(tt, types if types is not None else ints(0), ints(0))).output(0)
    return lw.norm(x, "embed_norm") if s.embed_norm else x


def bias_name(window: int | None) -> str:
    """The input holding the additive attention mask of the layers with `window` (None: full attention)."""
    return "attention_bias" if window is None else f"attention_bias.w{window}"


def _mask_inputs(lw: Lowering) -> list[object]:
    """One (B, 1, T, S) float input per distinct window of the layers: 0 where row b's query t attends the state's
    key j, float32's lowest elsewhere (written by the session from the positions it keeps). An input rather than
    a mask computed in the graph from positions: on the CPU plugin's fused stateful attention, such a mask was
    read at the wrong keys once a cache was held (the greedy tokens of a row with holes changed; 2026.4.1)."""
    f, params = lw.frame, []
    for window in lw.spec.windows:
        value, param = _param(bias_name(window), "float32", [-1, 1, -1, -1])
        params.append(param)
        if window is None:
            f.mask = value
        else:
            f.masks[window] = value
    return params


def _window_masks(lw: Lowering, token: Output) -> None:
    """Encoders' local layers: for each window, (B, 1, T, T) float, 0 where key k is a token within window // 2
    positions of query q either way (ModernBERT), float32's lowest elsewhere: `masks[window]`."""
    f = lw.frame
    pos = ops.range(ints(0), ops.squeeze(f.end, ints([0])), ints(1), "i64")  # (T,)
    distance = ops.abs(ops.subtract(ops.unsqueeze(pos, ints([1])), ops.unsqueeze(pos, ints([0]))))  # (T, T)
    for window in lw.spec.windows:
        if window is not None:
            f.masks[window] = _additive(ops.logical_and(token, ops.less_equal(distance, ints(window // 2))))


def _additive(allowed: Output) -> Output:
    """A bool mask as the float one SDPA adds to its scores: 0 where attended, float32's lowest elsewhere (finite,
    so a row with nothing to attend stays a number). The CPU plugin's SDPA runs about 2.5x faster on it than on
    a bool mask it converts in every layer (prefill of 32 tokens, SmolLM2-135M: 1.7-2.4 ms vs 4.6-5.0 ms)."""
    lowest = const(np.float32(np.finfo(np.float32).min), "mask.lowest")
    return ops.select(allowed, const(np.float32(0.0), "mask.zero"), lowest).output(0)


def _decoder(lw: Lowering) -> ov.Model:
    s, f, plan = lw.spec, lw.frame, lw.opts.plan
    (ids, p_ids), (f.beam_idx, p_beam) = _param("input_ids", "int64", [-1, -1]), _param("beam_idx", "int32", [-1])
    f.positions, p_pos = _param("position_ids", "int64", [-1, -1])
    logits_from, p_from = _param("logits_from", "int64", [1])
    f.batch = ops.gather(ops.shape_of(ids), ints([0]), ints(0)).output(0)  # (1,) B
    ends = ops.add(ops.reduce_max(f.positions, ints([1]), keep_dims=True), ints(1))  # (B, 1)
    f.ends = ops.unsqueeze(ends, ints([2, 3])).output(0)  # (B, 1, 1, 1)
    p_masks = _mask_inputs(lw)
    lw.rope_frame(lw.opts.capacity(s))
    table = _table(lw)
    x = _embed(lw, ids, None, table)
    sinks: list[object] = []
    for i in range(s.num_layers):
        p = f"layers.{i}"
        mix = short_conv if s.mixer(i) == "conv" else decoder_attention
        a, assigns = mix(lw, _input_norm(lw, x, f"{p}.attn_norm", s.has_attn_norm(i)), i)
        sinks += assigns
        x = ops.add(x, _sublayer_out(lw, a, f"{p}.attn_post_norm")).output(0)
        x = ops.add(
            x, _sublayer_out(lw, _mlp(lw, _input_norm(lw, x, f"{p}.mlp_norm"), i), f"{p}.mlp_post_norm")
        ).output(0)
    if s.final_norm:
        x = lw.norm(x, "final_norm")
    x = ops.slice(x, logits_from, ints([2**62]), ints([1]), ints([1])).output(0)  # (B, T', H)
    if s.tie_embeddings and plan.head == plan.embed:
        logits = ops.matmul(x, table, False, True).output(0)  # one table for the lookup and the head
    else:
        logits = lw.linear(x, "embed" if s.tie_embeddings else "lm_head", bias=False, storage=plan.head)
    if s.logits_scaling != 1.0:
        logits = ops.divide(logits, const(np.float32(s.logits_scaling), "logits_scaling")).output(0)
    if s.logits_softcap is not None:
        cap = const(np.float32(s.logits_softcap), "logits_softcap")
        logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap).output(0)
    return model([named(logits, "logits")], sinks, [p_ids, p_beam, p_pos, *p_masks, p_from], s.family)


def _encoder(lw: Lowering) -> ov.Model:
    s, f = lw.spec, lw.frame
    (ids, p_ids), (mask, p_mask) = _param("input_ids", "int64", [-1, -1]), _param("attention_mask", "int64", [-1, -1])
    params = [p_ids, p_mask]
    types = None
    if s.type_vocab_size:
        types, p_types = _param("token_type_ids", "int64", [-1, -1])
        params.append(p_types)
    f.start = ints([0])
    f.end = ops.gather(ops.shape_of(ids), ints([1]), ints(0)).output(0)
    token = ops.unsqueeze(ops.not_equal(mask, ints(0)), ints([1, 2]))  # (B, 1, 1, T) bool
    f.mask = _additive(token)  # (B, 1, 1, T)
    _window_masks(lw, token)
    lw.rope_frame(s.max_positions)
    x = _embed(lw, ids, types, _table(lw))
    for i in range(s.num_layers):
        p = f"layers.{i}"
        if s.norm_placement == "post":
            x = lw.norm(ops.add(x, encoder_attention(lw, x, i)).output(0), f"{p}.attn_norm")
            x = lw.norm(ops.add(x, _mlp(lw, x, i)).output(0), f"{p}.mlp_norm")
        else:
            h = _input_norm(lw, x, f"{p}.attn_norm", s.has_attn_norm(i))
            x = ops.add(x, _residual_scaled(lw, encoder_attention(lw, h, i))).output(0)
            x = ops.add(x, _residual_scaled(lw, _mlp(lw, lw.norm(x, f"{p}.mlp_norm"), i))).output(0)
    if s.final_norm:
        x = lw.norm(x, "final_norm")
    return model([named(x, "hidden")], [], params, s.family)


def build_model(spec: ModelSpec, weights: Mapping[str, np.ndarray], opts: BuildOptions) -> ov.Model:
    """The OpenVINO model for `spec` (decoder or encoder) at `opts.precision`."""
    lw = Lowering(spec, weights, opts)
    return (_decoder if spec.kind == "decoder" else _encoder)(lw)
