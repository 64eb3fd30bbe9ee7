"""LFM2's gated short causal convolution as MIL ops, its state a Core ML state beside the KV cache:

    conv_cache (Lc, 1, H, K - 1) fp16          one slot per conv layer (`ModelSpec.conv_layers`)
    b, c, u = split(in(x))                      (1, T, H) each
    window  = concat(past, transpose(b * u))     (1, H, K - 1 + T)    past: zeros when this call starts a sequence
    state  <- window[:, :, -(K - 1):]            written back with slice_update
    y = out(c * transpose(sum_j window[:, :, j : j + T] * kernel[:, j]))     the depthwise causal convolution

The convolution is written as K shifted multiply-adds (K is 3 or 4) rather than MIL's `conv`, which has no
numpy value inference, so the program can be evaluated on Linux like every other op (evaluate.py).

The past is read as zeros on a call that starts at position 0, whatever the state holds, so a fresh sequence
never depends on how a runtime initialises its states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types

from tinylm.arch.spec import ModelSpec

from .kvcache import Buffer
from .layers import linear
from .weights import Constants

__all__ = ["ConvStates", "short_conv"]


@dataclass
class ConvStates:
    """The conv layers' states in one buffer (Lc, 1, H, K - 1); `start` (1,) int32 is this call's first position."""

    buffer: Buffer
    start: Var
    spec: ModelSpec

    def window(self, layer: int, x: Var) -> Var:
        """(past | x) (1, H, K - 1 + T) for the new inputs x (1, H, T); the state keeps its last K - 1."""
        slot = self.spec.conv_layers.index(layer)
        h, width = self.spec.hidden_size, x_width(self.spec)
        whole = self.buffer.read()  # (Lc, 1, H, K - 1)
        past = mb.slice_by_index(x=whole, begin=[slot, 0, 0, 0], end=[slot + 1, 1, h, width])  # (1, 1, H, K - 1)
        past = mb.cast(x=mb.squeeze(x=past, axes=[0]), dtype="fp32")  # (1, H, K - 1)
        fresh = mb.cast(x=mb.greater_equal(x=self.start, y=np.int32(1)), dtype="fp32")  # (1,): 0 on a new sequence
        past = mb.mul(x=past, y=fresh)
        window = mb.concat(values=[past, x], axis=2)  # (1, H, K - 1 + T)
        length = mb.gather(x=mb.shape(x=window), indices=2, axis=0)
        begin = mb.concat(
            values=[np.array([0, 0], np.int32), mb.expand_dims(x=mb.sub(x=length, y=np.int32(width)), axes=[0])], axis=0
        )
        last = mb.slice_by_index(x=window, begin=begin, end=[1, h, 0], end_mask=[False, False, True])  # (1, H, K - 1)
        last = mb.reshape(x=last, shape=[1, 1, h, width])
        update = mb.cast(x=last, dtype=types.builtin_to_string(whole.dtype))
        self.buffer.write(mb.slice_update(x=whole, update=update, begin=[slot, 0, 0, 0], end=[slot + 1, 1, h, width]))
        return window


def x_width(spec: ModelSpec) -> int:
    """K - 1: the inputs a conv layer keeps."""
    assert spec.conv is not None
    return spec.conv.kernel - 1


def short_conv(x: Var, spec: ModelSpec, w: Constants, layer: int, states: ConvStates) -> Var:
    """x (1, T, H) -> (1, T, H)."""
    p, h = f"layers.{layer}.conv", spec.hidden_size
    b, c, u = mb.split(x=linear(x, w(f"{p}.in.weight"), w.optional(f"{p}.in.bias")), num_splits=3, axis=-1)
    bu = mb.transpose(x=mb.mul(x=b, y=u), perm=[0, 2, 1])  # (1, H, T)
    window = states.window(layer, bu)  # (1, H, K - 1 + T)
    kernel = np.asarray(w.weights[f"{p}.kernel.weight"], np.float32)  # (H, K)
    size = kernel.shape[1]
    y = None
    for j in range(size):  # window[:, :, j : j + T]: its end counted from the back, T being flexible
        last = j == size - 1
        end = [1, h, 0 if last else j - size + 1]
        shifted = mb.slice_by_index(x=window, begin=[0, 0, j], end=end, end_mask=[False, False, last])  # (1, H, T)
        term = mb.mul(x=shifted, y=w.table(f"layers_{layer}_conv_kernel_{j}", kernel[:, j : j + 1]))  # * (H, 1)
        y = term if y is None else mb.add(x=y, y=term)
    bias = w.optional(f"{p}.kernel.bias")
    if bias is not None:
        y = mb.add(x=y, y=mb.expand_dims(x=bias, axes=[1]))  # + (H, 1)
    y = mb.transpose(x=y, perm=[0, 2, 1])  # (1, T, H)
    return linear(mb.mul(x=c, y=y), w(f"{p}.out.weight"), w.optional(f"{p}.out.bias"))
