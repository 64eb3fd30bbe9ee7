"""The three Core ML program signatures tinylm builds, and their bodies (shared with `evaluate`).

    stateful decoder   (iOS 18 / macOS 15)
        inputs   input_ids (1, T) int32, causal_mask (1, 1, T, S) fp16      T in [1, C], S = start + T
        states   key_cache, value_cache (L, 1, nkv, C, hd) fp16              L: the attention layers
                 [conv_cache (Lc, 1, H, K - 1) fp16                          LFM2: the conv layers, conv.py]
        outputs  logits (1, T, V) fp32
    stateless decoder  (iOS 16 / macOS 13; iOS 18 when weights are int4): the cache passed in and out
        inputs   input_ids (1, T) int32, position_ids (1, T) int32, causal_mask (1, 1, T, C + T) fp16,
                 key_cache, value_cache (L, 1, nkv, C, hd) fp16
        outputs  logits (1, T, V) fp32, new_keys, new_values (L, 1, nkv, T, hd) fp16
                 (not for models with conv layers: their state needs the stateful program; CapabilityError)
    encoder            (iOS 16, or 18 for int4)
        inputs   input_ids, attention_mask[, token_type_ids] (B, T) int32       B in [1, max_batch]
        outputs  last_hidden_state (B, T, H) fp32

The start position of a stateful call is not an input: it is S - T, read from the mask's shape, so the
mask the host builds (causal, sliding window) also places the new keys in the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Program, Var, get_new_symbol, types

from tinylm.arch.spec import ModelSpec
from tinylm.errors import CapabilityError

from .conv import ConvStates
from .kvcache import Buffer, CoreMLState, IOCache, StateCache, kv_slots
from .transformer import decoder_logits, encoder_hidden
from .weights import Constants

__all__ = ["Built", "build", "stateful_body", "stateless_body", "encoder_body", "TARGETS"]

TARGETS = {"iOS16": ct.target.iOS16, "iOS18": ct.target.iOS18}


@dataclass(frozen=True)
class Built:
    """A program and its declared interface (what the package's spec must show)."""

    program: Program
    target: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    states: list[dict[str, Any]] = field(default_factory=list)


def _scalar(shape: Var, axis: int) -> Var:
    return mb.gather(x=shape, indices=axis, axis=0)  # rank 0


def _item(shape: Var, axis: int) -> Var:
    return mb.slice_by_index(x=shape, begin=[axis], end=[axis + 1])  # (1,)


# bodies: inputs as vars -> outputs as vars -----------------------------------------------------


def stateful_body(
    spec: ModelSpec,
    w: Constants,
    input_ids: Var,
    causal_mask: Var,
    keys: Buffer,
    values: Buffer,
    capacity: int,
    conv: Buffer | None = None,
) -> Var:
    shape = mb.shape(x=causal_mask)  # (4,) = [1, 1, T, S]
    start, end = mb.sub(x=_item(shape, 3), y=_item(shape, 2)), _item(shape, 3)  # (1,) each
    positions = mb.range_1d(start=mb.sub(x=_scalar(shape, 3), y=_scalar(shape, 2)), end=_scalar(shape, 3), step=1)
    cache = StateCache(keys, values, start, end, spec.num_kv_heads, spec.head_dim, kv_slots(spec))
    states = ConvStates(conv, start, spec) if conv is not None else None
    mask = mb.cast(x=causal_mask, dtype="fp32")
    return decoder_logits(spec, w, input_ids, positions, mask, cache, capacity, states)  # (1, T, V)


def kv_shape(spec: ModelSpec, capacity: int) -> tuple[int, ...]:
    """The KV cache's shape: (attention layers, 1, nkv, C, hd)."""
    return (len(spec.attention_layers), 1, spec.num_kv_heads, capacity, spec.head_dim)


def conv_shape(spec: ModelSpec) -> tuple[int, ...]:
    """The conv states' shape: (conv layers, 1, H, K - 1)."""
    assert spec.conv is not None
    return (len(spec.conv_layers), 1, spec.hidden_size, spec.conv.kernel - 1)


def stateless_body(
    spec: ModelSpec,
    w: Constants,
    input_ids: Var,
    position_ids: Var,
    causal_mask: Var,
    key_cache: Var,
    value_cache: Var,
    capacity: int,
) -> tuple[Var, Var, Var]:
    cache = IOCache(key_cache, value_cache)
    positions = mb.squeeze(x=position_ids, axes=[0])  # (T,)
    mask = mb.cast(x=causal_mask, dtype="fp32")
    logits = decoder_logits(spec, w, input_ids, positions, mask, cache, capacity)
    new_keys, new_values = cache.outputs()
    return logits, new_keys, new_values


def encoder_body(spec: ModelSpec, w: Constants, input_ids: Var, attention_mask: Var, types_: Var | None) -> Var:
    return encoder_hidden(spec, w, input_ids, attention_mask, types_)


def refuse_stateless(spec: ModelSpec) -> NoReturn:
    """Raise: a model with conv layers has no stateless program; the error says what to do instead."""
    raise CapabilityError(
        f"coreml: the {spec.family} model's conv layers keep a state between calls, which tinylm holds only as a "
        "Core ML state (macOS 15 / iOS 18), not as cache inputs and outputs. Fix: convert with stateful=True "
        "(the default), or run this model on another backend for macOS 13 / iOS 16."
    )


# signatures -------------------------------------------------------------------------------------


def _io(name: str, dtype: str, shape: list[Any]) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape}


def _range(dim: Any) -> Any:
    return dim if isinstance(dim, int) else [dim.lower_bound, dim.upper_bound]


def _declare(program: Program, declared: list[Any]) -> list[dict[str, Any]]:
    """Set the inputs' flexible ranges on `program` and describe them."""
    program.functions["main"].input_types = declared
    described = []
    for t in declared:
        if isinstance(t, ct.StateType):
            continue
        dtype = np.dtype(types.nptype_from_builtin(t.dtype)).name
        described.append(_io(t.name, dtype, [_range(d) for d in t.shape.shape]))
    return described


def _tensor(name: str, shape: tuple[Any, ...], dtype: type) -> ct.TensorType:
    return ct.TensorType(name=name, shape=ct.Shape(shape), dtype=dtype)


def _stateful(spec: ModelSpec, weights: Mapping[str, np.ndarray], capacity: int) -> Built:
    cache_shape = kv_shape(spec, capacity)
    T, S = get_new_symbol(), get_new_symbol()
    specs = [
        mb.TensorSpec((1, T), dtype=types.int32),
        mb.TensorSpec((1, 1, T, S), dtype=types.fp16),
        mb.StateTensorSpec(cache_shape, dtype=types.fp16),
        mb.StateTensorSpec(cache_shape, dtype=types.fp16),
    ]

    def body(input_ids: Var, causal_mask: Var, key_cache: Var, value_cache: Var, conv_cache: Var | None) -> Var:
        w = Constants(spec, weights)
        conv = CoreMLState(conv_cache) if conv_cache is not None else None
        logits = stateful_body(
            spec, w, input_ids, causal_mask, CoreMLState(key_cache), CoreMLState(value_cache), capacity, conv
        )
        return mb.cast(x=logits, dtype="fp32", name="logits")

    if spec.conv_layers:  # LFM2: one more state, the conv layers' last inputs

        @mb.program(
            input_specs=[*specs, mb.StateTensorSpec(conv_shape(spec), dtype=types.fp16)],
            opset_version=ct.target.iOS18,
        )
        def program(input_ids, causal_mask, key_cache, value_cache, conv_cache):  # type: ignore[no-untyped-def]
            return body(input_ids, causal_mask, key_cache, value_cache, conv_cache)

    else:

        @mb.program(input_specs=specs, opset_version=ct.target.iOS18)
        def program(input_ids, causal_mask, key_cache, value_cache):  # type: ignore[no-untyped-def]
            return body(input_ids, causal_mask, key_cache, value_cache, None)

    steps = ct.RangeDim(1, capacity, default=1)
    state_shapes = {"key_cache": cache_shape, "value_cache": cache_shape}
    if spec.conv_layers:
        state_shapes["conv_cache"] = conv_shape(spec)
    inputs = _declare(
        program,
        [
            _tensor("input_ids", (1, steps), np.int32),
            _tensor("causal_mask", (1, 1, steps, ct.RangeDim(1, capacity, default=1)), np.float16),
            *(
                ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=name)
                for name, shape in state_shapes.items()
            ),
        ],
    )
    states = [_io(name, "float16", list(shape)) for name, shape in state_shapes.items()]
    outputs = [_io("logits", "float32", [1, [1, capacity], spec.vocab_size])]
    return Built(program=program, target="iOS18", inputs=inputs, outputs=outputs, states=states)


def _stateless(spec: ModelSpec, weights: Mapping[str, np.ndarray], capacity: int, target: str) -> Built:
    cache_shape = (spec.num_layers, 1, spec.num_kv_heads, capacity, spec.head_dim)
    T, S = get_new_symbol(), get_new_symbol()

    @mb.program(
        input_specs=[
            mb.TensorSpec((1, T), dtype=types.int32),
            mb.TensorSpec((1, T), dtype=types.int32),
            mb.TensorSpec((1, 1, T, S), dtype=types.fp16),
            mb.TensorSpec(cache_shape, dtype=types.fp16),
            mb.TensorSpec(cache_shape, dtype=types.fp16),
        ],
        opset_version=TARGETS[target],
    )
    def program(input_ids, position_ids, causal_mask, key_cache, value_cache):  # type: ignore[no-untyped-def]
        w = Constants(spec, weights)
        logits, new_keys, new_values = stateless_body(
            spec, w, input_ids, position_ids, causal_mask, key_cache, value_cache, capacity
        )
        return (
            mb.cast(x=logits, dtype="fp32", name="logits"),
            mb.identity(x=new_keys, name="new_keys"),
            mb.identity(x=new_values, name="new_values"),
        )

    steps = ct.RangeDim(1, capacity, default=1)
    inputs = _declare(
        program,
        [
            _tensor("input_ids", (1, steps), np.int32),
            _tensor("position_ids", (1, steps), np.int32),
            _tensor(
                "causal_mask", (1, 1, steps, ct.RangeDim(capacity + 1, 2 * capacity, default=capacity + 1)), np.float16
            ),
            _tensor("key_cache", cache_shape, np.float16),
            _tensor("value_cache", cache_shape, np.float16),
        ],
    )
    new_shape = [spec.num_layers, 1, spec.num_kv_heads, [1, capacity], spec.head_dim]
    outputs = [
        _io("logits", "float32", [1, [1, capacity], spec.vocab_size]),
        _io("new_keys", "float16", new_shape),
        _io("new_values", "float16", new_shape),
    ]
    return Built(program=program, target=target, inputs=inputs, outputs=outputs)


def _encoder(spec: ModelSpec, weights: Mapping[str, np.ndarray], max_batch: int, target: str) -> Built:
    B, T = get_new_symbol(), get_new_symbol()
    with_types = spec.type_vocab_size > 0
    specs = [mb.TensorSpec((B, T), dtype=types.int32) for _ in range(3 if with_types else 2)]

    def body(input_ids: Var, attention_mask: Var, token_type_ids: Var | None) -> Var:
        hidden = encoder_body(spec, Constants(spec, weights), input_ids, attention_mask, token_type_ids)
        return mb.cast(x=hidden, dtype="fp32", name="last_hidden_state")

    if with_types:

        @mb.program(input_specs=specs, opset_version=TARGETS[target])
        def program(input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return body(input_ids, attention_mask, token_type_ids)

    else:

        @mb.program(input_specs=specs, opset_version=TARGETS[target])
        def program(input_ids, attention_mask):  # type: ignore[no-untyped-def]
            return body(input_ids, attention_mask, None)

    batch, steps = ct.RangeDim(1, max_batch, default=1), ct.RangeDim(1, spec.max_positions, default=spec.max_positions)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    inputs = _declare(program, [_tensor(n, (batch, steps), np.int32) for n in names])
    outputs = [_io("last_hidden_state", "float32", [[1, max_batch], [1, spec.max_positions], spec.hidden_size])]
    return Built(program=program, target=target, inputs=inputs, outputs=outputs)


def build(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], *, stateful: bool, capacity: int, max_batch: int, target: str
) -> Built:
    """The program for `spec`: an encoder, or a decoder with its cache as states or as inputs/outputs."""
    if spec.kind == "encoder":
        return _encoder(spec, weights, max_batch, target)
    if not stateful and spec.conv_layers:
        refuse_stateless(spec)
    if stateful:
        return _stateful(spec, weights, capacity)
    return _stateless(spec, weights, capacity, target)
