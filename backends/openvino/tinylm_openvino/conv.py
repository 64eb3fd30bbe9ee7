"""LFM2's gated short causal convolution, its state kept in OpenVINO state next to the KV cache:

    past   = ReadValue(var, init: zeros (B, H, K - 1)) -> Gather(past, beam_idx, 0)
    b, c, u = Split(in(x), 3)                                          (B, T, H) each
    window = Concat(past, Transpose(b * u), axis 2)                     (B, H, K - 1 + T)
    Assign(var, window[:, :, -(K - 1):])                                the last K - 1 inputs
    y = out(c * Transpose(GroupConvolution(window, kernel (H, 1, 1, K))))   (B, T, H)

`reset_state` puts every variable back to its initializer: zeros, as a new sequence needs.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
from openvino.op.util import Variable, VariableInfo

from .graph import Output, const, ints, ops
from .layers import Lowering

__all__ = ["short_conv"]


def _state(lw: Lowering, i: int, channels: int, width: int) -> tuple[Output, Variable]:
    """The conv state of layer i as this call reads it, (B, H, K - 1), and its variable."""
    f = lw.frame
    info = VariableInfo()
    info.variable_id = f"past_conv.{i}"
    info.data_type = ov.Type.f32
    info.data_shape = ov.PartialShape([-1, channels, width])
    var = Variable(info)
    init = ops.broadcast(const(np.float32(0.0), "zero"), ops.concat([f.batch, ints([channels, width])], 0))
    past = ops.gather(ops.read_value(init, var), f.beam_idx, ints(0)).output(0)  # (B, H, K - 1)
    return past, var


def short_conv(lw: Lowering, x: Output, i: int) -> tuple[Output, list[object]]:
    """(output (B, T, H), the Assign sink of its state) for conv layer i."""
    s, p = lw.spec, f"layers.{i}.conv"
    assert s.conv is not None
    h, k, bias = s.hidden_size, s.conv.kernel, s.conv.bias
    b, c, u = ops.split(lw.linear(x, f"{p}.in", bias=bias), ints(-1), 3).outputs()  # (B, T, H) each
    bu = ops.transpose(ops.multiply(b, u), ints([0, 2, 1]))  # (B, H, T)
    past, var = _state(lw, i, h, k - 1)
    window = ops.concat([past, bu], 2).output(0)  # (B, H, K - 1 + T)
    present = ops.slice(window, ints([-(k - 1)]), ints([np.iinfo(np.int64).max]), ints([1]), ints([2]))
    kernel = const(lw.w(f"{p}.kernel.weight")[:, None, None, :], f"{p}.kernel.weight")  # (H, 1, 1, K)
    y = ops.group_convolution(window, kernel, [1], [0], [0], [1]).output(0)  # (B, H, T)
    if bias:
        y = ops.add(y, const(lw.w(f"{p}.kernel.bias")[None, :, None], f"{p}.kernel.bias")).output(0)
    y = ops.transpose(y, ints([0, 2, 1]))  # (B, T, H)
    out = lw.linear(ops.multiply(c, y).output(0), f"{p}.out", bias=bias)
    return out, [ops.assign(present, var)]
