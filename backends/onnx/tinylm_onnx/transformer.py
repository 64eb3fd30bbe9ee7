"""The whole graph, lowered from a `ModelSpec` and canonical numpy weights alone (no torch):

    embed (* embed_scale) (+ positions + token types) -> [embed_norm] -> N x block -> [final_norm] -> lm_head

    pre-norm block:   h = norm(x); x = x + attn(h); h = norm(x); x = x + mlp(h)   (residual adds fused into
                      the next norm: Skip(Simplified)LayerNormalization returns norm(a + b) and a + b)
    post-norm block:  x = norm(x + attn(x)); x = norm(x + mlp(x))                 (BERT)

Decoder graph I/O (the session binds these):
    input_ids (B, T) int64, seqlens_k (B,) int32 = each row's total - 1 (rows may differ: the new tokens of
    row b sit at positions [seqlens_k[b] + 1 - T, seqlens_k[b] + 1), or [0, T) for a right-padded first
    prompt), total_sequence_length () int32 = the longest row's total (longrope: picks the table),
    logits_from (1,) int64 (first position whose logits are computed: T - 1 in decode, 0 for all),
    past_key.{i} / past_value.{i} (B, nkv, S_max, hd)  ->  logits (B, T - logits_from, V), present_*.{i}
    (attention layers; conv layers (LFM2) have past_conv.{i} -> present_conv.{i} (B, H, K - 1) instead, conv.py)
Encoder graph: input_ids, attention_mask (B, T) int64 [, token_type_ids]  ->  hidden (B, T, H)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import onnx

from tinylm.arch.spec import ModelSpec

from .attention import decoder_attention, encoder_attention
from .conv import short_conv
from .graph import BOOL, FLOAT, INT32, INT64, MS, Graph
from .linear import linear, quantized
from .lowering import Lowering
from .mlp import mlp
from .options import BuildOptions
from .rope import external_tables, gqa_caches, gqa_can_rotate

__all__ = ["build_graph"]


def _tied_decoder_head(lw: Lowering) -> bool:
    """fp32 tied embeddings: one (V, H) table serves both the lookup (rows gathered) and the LM head (a Gemm with
    transB), with no second copy."""
    s = lw.spec
    return s.kind == "decoder" and s.tie_embeddings and (lw.opts.bits == 0 or not lw.opts.quantize_lm_head)


def _quantized_tied_head(lw: Lowering) -> bool:
    """int4 tied embeddings with the head quantized: the lookup reads the head's codes (GatherBlockQuantized), so
    the table is stored once, quantized (SmolLM2-135M int4: 86 MB of files instead of 200). Not at int8: on the
    trained test llama the quantized lookup drops greedy agreement from 95% to 80% of continuations (below the
    90% bar), while at int4 it moves 35.9% of tokens to 34.4%."""
    s, o = lw.spec, lw.opts
    return s.kind == "decoder" and s.tie_embeddings and o.bits == 4 and o.quantize_lm_head


def _embed(lw: Lowering, ids: str, types: str | None) -> str:
    s, g, f = lw.spec, lw.g, lw.frame
    if _tied_decoder_head(lw):
        # (V, H), also the LM head. Row-major for the lookup: gathering B*T columns of an (H, V) table read
        # H scattered floats per token (5% of a 16-row step of the bundled 6.8M model, 10% of a 40-token prefill)
        table = g.const(lw.w("embed.weight"), "embed.weight")
        lw.head_table = table
        x = g.op("Gather", [table, ids], hint="embed")  # (B, T, H)
    elif _quantized_tied_head(lw):
        o = lw.opts
        codes, scales = quantized(g, lw.w("embed.weight"), bits=o.bits, block=o.block_size, hint="embed")
        lw.head_stored = codes, scales
        blocks = -(-s.hidden_size // o.block_size)
        rows = g.op(  # (B, T, blocks, block): the codes are (V, blocks, block * bits / 8), one scale a block
            "GatherBlockQuantized",
            [codes, ids, g.op("Reshape", [scales, g.scalar([s.vocab_size, blocks, 1])], hint="embed.block_scales")],
            domain=MS,
            hint="embed.rows",
            bits=o.bits,
            block_size=o.block_size,
            gather_axis=0,
            quantize_axis=2,
        )
        x = g.op("Reshape", [rows, g.scalar([0, 0, blocks * o.block_size])], hint="embed")  # (B, T, K_pad)
        if blocks * o.block_size != s.hidden_size:
            x = g.op("Slice", [x, g.scalar([0]), g.scalar([s.hidden_size]), g.scalar([2])], hint="embed.unpad")
    else:
        x = g.op("Gather", [g.const(lw.w("embed.weight"), "embed.weight"), ids], hint="embed")  # (B, T, H)
    if s.embed_scale != 1.0:
        x = g.op("Mul", [x, g.scalar(s.embed_scale, np.float32)], hint="embed.scaled")
    if s.learned_positions:
        table = g.const(lw.w("pos_embed.weight"), "pos_embed.weight")
        if f.positions is not None:  # each row's own positions: (B, T, H)
            at = g.op("Add", [f.positions, g.scalar(s.position_offset)], hint="embed.positions.at")
            rows = g.op("Gather", [table, at], hint="embed.positions.rows")
        else:  # rows [offset, offset + T) of the table, (T, H)
            lo, hi = (g.op("Add", [b, g.scalar([s.position_offset])]) for b in f.span)
            rows = g.op("Slice", [table, lo, hi, g.scalar([0])])
        x = g.op("Add", [x, rows], hint="embed.positions")
    if s.type_vocab_size:
        table = g.const(lw.w("type_embed.weight"), "type_embed.weight")
        picked = g.op("Gather", [table, types]) if types else g.op("Gather", [table, g.scalar(0)])
        x = g.op("Add", [x, picked], hint="embed.types")
    return lw.norm(x, "embed_norm") if s.embed_norm else x


def _span(g: Graph, ids: str, total: str | None) -> tuple[str, str]:
    """[lo, hi) (1,) int64 each: [0, T) without a cache (encoders); with one, hi is the longest row's total
    length [total - T, total) (the end longrope compares with its switch).

    Encoder tables are sliced by this span rather than gathered at Range(...) positions: ORT 1.32 rewrites
    Gather(table, Range) into a Slice with scalar starts, which then fails ("Starts must be a 1-D array")."""
    t = g.op("Shape", [ids], start=1, end=2, hint="T")  # (1,) int64
    if total is None:
        return g.scalar([0]), t
    hi = g.op("Reshape", [g.op("Cast", [total], to=INT64), g.scalar([1])], hint="total64")  # (1,)
    return g.op("Sub", [hi, t], hint="start"), hi


def _positions(g: Graph, ids: str, seqlens: str) -> str:
    """(B, T) int64: row b's new tokens at [max(seqlens_k[b] + 1 - T, 0), ... + T): after its own cached
    prefix, so rows of different lengths run in one call; from 0 for a right-padded first prompt (a row shorter
    than T)."""
    t = g.op("Shape", [ids], start=1, end=2, hint="T.pos")  # (1,)
    ends = g.op("Add", [g.op("Cast", [seqlens], to=INT64), g.scalar(1)], hint="row_ends")  # (B,)
    starts = g.op("Max", [g.op("Sub", [ends, t]), g.scalar(0)], hint="row_starts")  # (B,)
    steps = g.op("Range", [g.scalar(0), g.op("Squeeze", [t, g.scalar([0])]), g.scalar(1)], hint="steps")  # (T,)
    return g.op("Add", [g.op("Unsqueeze", [starts, g.scalar([1])]), steps], hint="positions")  # (B, T)


def _rope_frame(lw: Lowering, cap: int) -> None:
    s, f = lw.spec, lw.frame
    inside = s.kind == "decoder" and lw.opts.fused_ops and gqa_can_rotate(s)
    for kind in s.rope_kinds:  # "global" [, "local"]: the tables some layer uses
        rope, prefix = s.rope_of(kind), "rope" if kind == "global" else f"rope_{kind}"
        if inside:
            f.inside[kind] = gqa_caches(lw.g, rope, cap, f.span[1], prefix)
        else:
            f.outside[kind] = external_tables(lw.g, rope, cap, f.span, prefix, positions_at=f.positions)


def _decoder(lw: Lowering) -> None:
    s, g, f = lw.spec, lw.g, lw.frame
    ids = g.input("input_ids", INT64, ["B", "T"])
    f.seqlens = g.input("seqlens_k", INT32, ["B"])
    f.total = g.input("total_sequence_length", INT32, [])
    logits_from = g.input("logits_from", INT64, [1])
    cache_shape = ["B", s.num_kv_heads, "S", s.head_dim]
    f.span = _span(g, ids, f.total)
    f.positions = _positions(g, ids, f.seqlens)
    _rope_frame(lw, lw.opts.capacity(s))
    x = _embed(lw, ids, None)
    presents, conv_states = [], []
    residual, h = x, _input_norm(lw, x, x, "layers.0.attn_norm", s.has_attn_norm(0))[0]
    for i in range(s.num_layers):
        if s.mixer(i) == "conv":
            (state,) = s.states(i)
            conv_shape = ["B", state.channels, state.width]
            a, present = short_conv(lw, h, i, g.input(f"past_conv.{i}", FLOAT, conv_shape))
            conv_states.append((i, present, conv_shape))
        else:
            past = g.input(f"past_key.{i}", FLOAT, cache_shape), g.input(f"past_value.{i}", FLOAT, cache_shape)
            a, pk, pv = decoder_attention(lw, h, i, *past)
            presents.append((i, pk, pv))
        h, residual = _input_norm(
            lw, _sublayer_out(lw, a, f"layers.{i}.attn_post_norm"), residual, f"layers.{i}.mlp_norm"
        )
        m = _sublayer_out(lw, mlp(lw, h, i), f"layers.{i}.mlp_post_norm")
        if i + 1 < s.num_layers:
            h, residual = _input_norm(lw, m, residual, f"layers.{i + 1}.attn_norm", s.has_attn_norm(i + 1))
        elif s.final_norm:
            h, _ = lw.add_norm(m, residual, "final_norm")
        else:
            h = g.op("Add", [m, residual], hint="residual.last")
    h = g.op("Slice", [h, logits_from, g.scalar([2**62]), g.scalar([1])], hint="head.positions")  # (B, T', H)
    g.output(_head(lw, h), "logits", FLOAT, ["B", "T_out", s.vocab_size])
    for i, pk, pv in presents:
        g.output(pk, f"present_key.{i}", FLOAT, cache_shape)
        g.output(pv, f"present_value.{i}", FLOAT, cache_shape)
    for i, present, conv_shape in conv_states:
        g.output(present, f"present_conv.{i}", FLOAT, conv_shape)


def _input_norm(lw: Lowering, y: str, residual: str, prefix: str, has: bool = True) -> tuple[str, str]:
    """(the next sublayer's input, the residual stream) after adding y to it: the sum normalised by `prefix`
    (fused with the add where the runtime can), or the sum itself where sublayers take their input as is (OLMo 2,
    or `has` False: a layer in `no_attn_norm_layers`).
    For the first layer, y is the embedding and residual the same value: nothing is added."""
    normed = lw.spec.input_norms and has
    if y == residual:
        return (lw.norm(y, prefix) if normed else y), y
    if normed:
        return lw.add_norm(y, residual, prefix)
    total = lw.g.op("Add", [y, residual], hint=f"{prefix}.residual")
    return total, total


def _sublayer_out(lw: Lowering, y: str, prefix: str) -> str:
    """A sublayer's output as the residual stream adds it: normalised by `prefix` where the spec has output norms
    (Gemma 2/3, OLMo 2), times residual_scale (Granite)."""
    if lw.spec.output_norms:
        y = lw.norm(y, prefix)
    return _residual_scaled(lw, y)


def _residual_scaled(lw: Lowering, y: str) -> str:
    """A sublayer's output as the residual stream adds it: times residual_scale (Granite)."""
    r = lw.spec.residual_scale
    return y if r == 1.0 else lw.g.op("Mul", [y, lw.g.scalar(r, np.float32)], hint="residual.scaled")


def _head(lw: Lowering, h: str) -> str:
    s, g, o = lw.spec, lw.g, lw.opts
    if lw.head_table is not None:
        rows = g.op("Reshape", [h, g.scalar([-1, s.hidden_size])], hint="lm_head.rows")  # (B*T, H)
        flat = g.op("Gemm", [rows, lw.head_table], transB=1, hint="lm_head.flat")  # (B*T, V)
        shape = g.op("Concat", [g.op("Shape", [h], end=2), g.scalar([s.vocab_size])], axis=0)
        logits = g.op("Reshape", [flat, shape], hint="lm_head")  # (B, T, V)
    else:
        weight = lw.w("embed.weight" if s.tie_embeddings else "lm_head.weight")  # (V, H)
        bits = o.bits if o.quantize_lm_head else 0
        logits = linear(
            g, h, weight, None, bits=bits, block=o.block_size, level=o.accuracy_level, hint="lm_head",
            stored=lw.head_stored,
        )  # fmt: skip
    if s.logits_scaling != 1.0:
        logits = g.op("Div", [logits, g.scalar(s.logits_scaling, np.float32)], hint="logits.scaled")
    if s.logits_softcap is not None:
        cap = g.scalar(s.logits_softcap, np.float32)
        logits = g.op("Mul", [g.op("Tanh", [g.op("Div", [logits, cap])]), cap], hint="logits.capped")
    return logits


def _encoder(lw: Lowering) -> None:
    s, g, f = lw.spec, lw.g, lw.frame
    ids = g.input("input_ids", INT64, ["B", "T"])
    mask = g.input("attention_mask", INT64, ["B", "T"])
    types = g.input("token_type_ids", INT64, ["B", "T"]) if s.type_vocab_size else None
    f.span = _span(g, ids, None)
    _rope_frame(lw, s.max_positions)
    keep = g.op("Cast", [mask], to=FLOAT)  # (B, T) 1 attended, 0 padding
    bias = g.op("Mul", [g.op("Sub", [g.scalar(1.0, np.float32), keep]), g.scalar(np.finfo(np.float32).min, np.float32)])
    f.mask_bias = g.op("Unsqueeze", [bias, g.scalar([1, 2])], hint="mask_bias")  # (B, 1, 1, T)
    _window_biases(lw, mask)
    x = _embed(lw, ids, types)
    post = s.norm_placement == "post"
    for i in range(s.num_layers):
        p = f"layers.{i}"
        if post:
            x, _ = lw.add_norm(encoder_attention(lw, x, i), x, f"{p}.attn_norm")
            x, _ = lw.add_norm(mlp(lw, x, i), x, f"{p}.mlp_norm")
        else:
            h = lw.norm(x, f"{p}.attn_norm") if s.has_attn_norm(i) else x
            x = g.op("Add", [x, _residual_scaled(lw, encoder_attention(lw, h, i))])
            x = g.op("Add", [x, _residual_scaled(lw, mlp(lw, lw.norm(x, f"{p}.mlp_norm"), i))])
    if s.final_norm:
        x = lw.norm(x, "final_norm")
    g.output(x, "hidden", FLOAT, ["B", "T", s.hidden_size])


def _window_biases(lw: Lowering, mask: str) -> None:
    """For each window of an encoder's local layers: (B, 1, T, T) additive, 0 where key k is a token within
    window // 2 positions of query q either way, float32's lowest elsewhere (one finite value, so a padding
    query whose window holds only padding still gets finite, ignored states)."""
    s, g, f = lw.spec, lw.g, lw.frame
    windows = [w for w in s.windows if w is not None]
    if not windows:
        return
    length = g.op("Squeeze", [f.span[1], g.scalar([0])], hint="T.scalar")  # () int64
    pos = g.op("Range", [g.scalar(0), length, g.scalar(1)], hint="positions")  # (T,)
    distance = g.op("Abs", [g.op("Sub", [g.op("Unsqueeze", [pos, g.scalar([1])]), pos])], hint="distance")  # (T, T)
    token = g.op("Unsqueeze", [g.op("Cast", [mask], to=BOOL), g.scalar([1, 2])], hint="is_token")  # (B, 1, 1, T)
    zero, lowest = g.scalar(0.0, np.float32), g.scalar(np.finfo(np.float32).min, np.float32)
    for window in windows:
        band = g.op("LessOrEqual", [distance, g.scalar(window // 2)], hint=f"band{window}")  # (T, T)
        allowed = g.op("And", [token, band], hint=f"allowed{window}")  # (B, 1, T, T)
        f.window_bias[window] = g.op("Where", [allowed, zero, lowest], hint=f"window_bias{window}")


def build_graph(spec: ModelSpec, weights: Mapping[str, np.ndarray], opts: BuildOptions) -> onnx.ModelProto:
    """The ONNX model for `spec` (decoder or encoder) at `opts.precision`."""
    opts = replace(opts, block_size=opts.block(spec))  # the kind's default block where none was given
    lw = Lowering(Graph(spec.family), spec, opts, weights)
    (_decoder if spec.kind == "decoder" else _encoder)(lw)
    return lw.g.model()
