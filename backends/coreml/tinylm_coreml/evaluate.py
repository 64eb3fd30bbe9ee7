"""Numerical evaluation of the lowered program on any OS, without a Core ML runtime.

Core ML executes only on macOS, and coremltools has no MIL interpreter. But every MIL op the lowering uses
has a numpy *value inference* in coremltools (the code its constant folding runs): when an op's inputs are
constants, building the op computes its value. So the same body functions that `program.py` wraps in a
Core ML signature are built here inside a bare MIL function with the inputs as constants, and the outputs'
values are read back. A numpy array stands in for each Core ML state, so prefill, decode and the cache
update (`slice_update`) are evaluated too.

What this verifies: the lowering of the spec (every op, shape, mask, rotary table, the cache layout)
in float32, op for op as built. What it does not: the converter's passes (fp16 lowering, fusions),
weight compression, and Core ML's own kernels; those need macOS (the conformance tests run there).
"""

from __future__ import annotations

from collections.abc import Mapping

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function, Var

from tinylm.arch.spec import ModelSpec
from tinylm.errors import CapabilityError

from .masks import stateful_mask, stateless_mask
from .program import conv_shape, encoder_body, kv_shape, refuse_stateless, stateful_body, stateless_body
from .weights import Constants

__all__ = ["ArrayState", "Evaluator"]


class ArrayState:
    """A numpy array in place of a Core ML state: `read` makes it a constant, `write` keeps the new value."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self._latest: Var | None = None

    def read(self) -> Var:
        return self._latest if self._latest is not None else mb.const(val=self.array)

    def write(self, value: Var) -> Var:
        self._latest = value
        return value

    def commit(self) -> None:
        """After a call: the state holds what the program wrote."""
        if self._latest is not None:
            self.array = _value(self._latest)
            self._latest = None


def _value(var: Var) -> np.ndarray:
    if var.val is None:
        raise RuntimeError(f"coremltools could not evaluate {var.op.op_type} ({var.name}) with numpy")
    return np.asarray(var.val)


class Evaluator:
    """Runs a model's MIL lowering with numpy: `forward` (decoders, with a KV cache) and `embed` (encoders).

    `stateful` picks the cache layout evaluated (states, or cache inputs/outputs). Caches are float32 here
    so the comparison with the reference isolates the lowering from fp16 rounding.
    """

    def __init__(self, spec: ModelSpec, weights: Mapping[str, np.ndarray], *, capacity: int, stateful: bool = True):
        self.spec, self.weights, self.capacity, self.stateful = spec, weights, capacity, stateful
        if spec.kind == "decoder" and spec.conv_layers and not stateful:
            refuse_stateless(spec)
        shape = kv_shape(spec, capacity)  # (L, 1, nkv, C, hd), L: the attention layers
        self.keys = ArrayState(np.zeros(shape, np.float32))
        self.values = ArrayState(np.zeros(shape, np.float32))
        # LFM2's conv states (Lc, 1, H, K - 1); left as they are by reset(): a call at position 0 reads zeros
        self.conv = ArrayState(np.zeros(conv_shape(spec), np.float32)) if spec.conv_layers else None
        self.length = 0

    def reset(self) -> None:
        self.keys.array[:] = 0
        self.values.array[:] = 0
        self.length = 0

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids (T,) -> logits (T, V) float32, appending to the cache."""
        if self.spec.kind != "decoder":
            raise CapabilityError("forward() needs a decoder. Fix: use embed() for encoders.")
        ids = np.asarray(ids, np.int32)[None]  # (1, T)
        start, length = self.length, ids.shape[1]
        window = self.spec.sliding_window
        with Function({}, opset_version=ct.target.iOS18):
            w = Constants(self.spec, self.weights)
            if self.stateful:
                mask = mb.const(val=stateful_mask(start, length, window, np.float32))
                logits = stateful_body(
                    self.spec, w, mb.const(val=ids), mask, self.keys, self.values, self.capacity, self.conv
                )
                out = _value(logits)
                for state in (self.keys, self.values, self.conv):
                    if state is not None:
                        state.commit()
            else:
                positions = mb.const(val=np.arange(start, start + length, dtype=np.int32)[None])
                mask = mb.const(val=stateless_mask(start, length, self.capacity, window, np.float32))
                logits, new_k, new_v = stateless_body(
                    self.spec, w, mb.const(val=ids), positions, mask,
                    mb.const(val=self.keys.array), mb.const(val=self.values.array), self.capacity,
                )  # fmt: skip
                out = _value(logits)
                self.keys.array[:, :, :, start : start + length] = _value(new_k)  # (L, 1, nkv, T, hd)
                self.values.array[:, :, :, start : start + length] = _value(new_v)
        self.length += length
        return out[0].astype(np.float32)

    def embed(self, ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """(B, T) each -> last hidden states (B, T, H) float32."""
        with Function({}, opset_version=ct.target.iOS18):
            w = Constants(self.spec, self.weights)
            types = mb.const(val=np.asarray(token_type_ids, np.int32)) if self.spec.type_vocab_size else None
            hidden = encoder_body(
                self.spec,
                w,
                mb.const(val=np.asarray(ids, np.int32)),
                mb.const(val=np.asarray(attention_mask, np.int32)),
                types,
            )
            return _value(hidden).astype(np.float32)
