"""The feed-forward layer: gated, down(act(gate(x)) * up(x)) with gate|up as one projection, or plain
down(act(up(x)))."""

from __future__ import annotations

from collections.abc import Callable

from .graph import Graph
from .lowering import Lowering

__all__ = ["mlp", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[Graph, str], str]] = {
    "silu": lambda g, x: g.op("Mul", [x, g.op("Sigmoid", [x])], hint="silu"),
    "gelu": lambda g, x: g.op("Gelu", [x], approximate="none"),
    "gelu_tanh": lambda g, x: g.op("Gelu", [x], approximate="tanh"),
    "relu": lambda g, x: g.op("Relu", [x]),
}


def mlp(lw: Lowering, x: str, i: int) -> str:
    s, g, p = lw.spec, lw.g, f"layers.{i}.mlp"
    act = ACTIVATIONS[s.activation]
    if not s.gated_mlp:
        return lw.linear(
            act(g, lw.linear(x, [f"{p}.up"], bias=s.mlp_bias, hint=f"{p}.up")),
            [f"{p}.down"],
            bias=s.mlp_bias,
            hint=f"{p}.down",
        )
    both = lw.linear(x, [f"{p}.gate", f"{p}.up"], bias=s.mlp_bias, hint=f"{p}.gate_up")  # (B, T, 2I)
    gate, up = g.op("Split", [both, g.scalar([s.intermediate_size] * 2)], outputs=2, axis=-1, hint=f"{p}.split")
    return lw.linear(g.op("Mul", [act(g, gate), up], hint=f"{p}.glu"), [f"{p}.down"], bias=s.mlp_bias, hint=f"{p}.down")
