"""LFM2's gated short causal convolution, with its state as a graph input and output (no contrib op needed):

    past_conv.{i} (B, H, K - 1)  the last K - 1 inputs of the convolution (zeros at the start of a sequence)
    b, c, u = Split(in(x))                                   (B, T, H) each
    window  = Concat(past_conv, Transpose(b * u), axis 2)      (B, H, K - 1 + T)
    present_conv.{i} = window[:, :, -(K - 1):]                 (B, H, K - 1), the next call's past
    y = out(c * Transpose(Conv(window, kernel (H, 1, K), group=H)))   (B, T, H)

The session binds past and present to one buffer per layer (as the KV cache): Concat reads the past before the
Slice writes the present, so updating it in place is safe.
"""

from __future__ import annotations

from .lowering import Lowering

__all__ = ["short_conv"]


def short_conv(lw: Lowering, x: str, i: int, past: str) -> tuple[str, str]:
    """(output (B, T, H), present conv state (B, H, K - 1)) for conv layer i."""
    s, g, p = lw.spec, lw.g, f"layers.{i}.conv"
    assert s.conv is not None
    h, k, bias = s.hidden_size, s.conv.kernel, s.conv.bias
    bcu = lw.linear(x, [f"{p}.in"], bias=bias, hint=f"{p}.in")  # (B, T, 3H)
    b, c, u = g.op("Split", [bcu, g.scalar([h, h, h])], outputs=3, axis=-1, hint=f"{p}.split")
    bu = g.op("Transpose", [g.op("Mul", [b, u], hint=f"{p}.bu")], perm=[0, 2, 1], hint=f"{p}.bu_t")  # (B, H, T)
    window = g.op("Concat", [past, bu], axis=2, hint=f"{p}.window")  # (B, H, K - 1 + T)
    present = g.op(
        "Slice", [window, g.scalar([-(k - 1)]), g.scalar([2**62]), g.scalar([2])], hint=f"{p}.present"
    )  # (B, H, K - 1)
    inputs = [window, g.const(lw.w(f"{p}.kernel.weight")[:, None, :], f"{p}.kernel.weight")]  # (H, 1, K)
    if bias:
        inputs.append(g.const(lw.w(f"{p}.kernel.bias"), f"{p}.kernel.bias"))
    y = g.op("Conv", inputs, group=h, kernel_shape=[k], pads=[0, 0], strides=[1], hint=f"{p}.conv")  # (B, H, T)
    y = g.op("Transpose", [y], perm=[0, 2, 1], hint=f"{p}.conv_t")  # (B, T, H)
    gated = g.op("Mul", [c, y], hint=f"{p}.gated")
    return lw.linear(gated, [f"{p}.out"], bias=bias, hint=f"{p}.out"), present
