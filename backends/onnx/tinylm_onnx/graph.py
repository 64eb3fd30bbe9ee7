"""A small ONNX graph builder over `onnx.helper`: unique names, numpy initializers, one call per node.

g = Graph("decoder")
x = g.input("input_ids", INT64, ["B", "T"])
w = g.const(weight, "layers.0.attn.q")          # initializer name
y = g.op("MatMul", [x, w])                      # output name(s)
g.output(y, "logits", FLOAT, ["B", "T", "V"])
model = g.model()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Graph", "FLOAT", "INT64", "INT32", "MS", "OPSET"]

FLOAT, INT64, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
MS = "com.microsoft"  # ONNX Runtime's contrib-op domain
OPSET = 21  # Gelu(approximate=) needs 20


class Graph:
    """Nodes, initializers, inputs and outputs of one graph, named uniquely as they are added."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: dict[str, int] = {}
        self._consts: dict[tuple[Any, ...], str] = {}

    def fresh(self, hint: str) -> str:
        """A name not used yet, derived from `hint`."""
        n = self._used.get(hint, 0)
        self._used[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def input(self, name: str, elem_type: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        self._used[name] = 1
        return name

    def output(self, value: str, name: str, elem_type: int, shape: Sequence[int | str] | None) -> None:
        """Expose `value` as graph output `name` (an Identity renames it when they differ)."""
        if value != name:
            self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape)))

    def const(self, array: np.ndarray, hint: str) -> str:
        """An initializer holding `array` (copied into the graph)."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float | int | Sequence[int], dtype: Any = np.int64) -> str:
        """A small constant (shared: the same value and dtype give the same initializer)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.const(array, "const")
        return self._consts[key]

    def op(
        self, op_type: str, inputs: Sequence[str], *, outputs: int = 1, domain: str = "", hint: str = "", **attrs: Any
    ) -> Any:
        """Add one node; returns its output name, or a list of names when `outputs` > 1."""
        base = hint or op_type.lower()
        names = [self.fresh(base if i == 0 else f"{base}.out{i}") for i in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), names, name=self.fresh(f"n.{base}"), domain=domain, **attrs)
        )
        return names[0] if outputs == 1 else names

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializer=self.initializers)
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="tinylm-onnx")
        model.ir_version = 10
        return model
