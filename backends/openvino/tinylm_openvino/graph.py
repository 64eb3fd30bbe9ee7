"""Small helpers over OpenVINO's opset API: constants from numpy, shared small integer constants, names.

Every function takes and returns `openvino.Output`s; `ops` is the opset the model is built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops

__all__ = ["ops", "const", "ints", "named", "Output"]

Output = Any  # openvino.Output (the stubs do not type the opset functions)


def const(array: np.ndarray, name: str) -> Output:
    """A constant holding `array` (copied), with a friendly name for debugging and profiling."""
    node = ops.constant(np.ascontiguousarray(array), name=name)
    return node.output(0)


def ints(values: int | Sequence[int]) -> Output:
    """An int64 constant: a scalar for an int, else a 1-D tensor."""
    return ops.constant(np.asarray(values, dtype=np.int64)).output(0)


def named(value: Output, name: str) -> Output:
    """Give `value` the tensor name `name` (model outputs are looked up by it)."""
    value.get_tensor().set_names({name})
    return value


def model(results: list[Output], sinks: list[Any], params: list[Any], name: str) -> ov.Model:
    return ov.Model([ops.result(r) for r in results], sinks, params, name)
