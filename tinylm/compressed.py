"""Checkpoints stored with int8 weights: compressed-tensors' `int-quantized` layout, read and written.

A checkpoint whose config.json carries

    "quantization_config": {"quant_method": "compressed-tensors", "format": "int-quantized",
                            "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int",
                                                                      "symmetric": true, "strategy": "channel"}}}}

stores each quantized weight `W` (out, in) as int8 `name` plus a float `name_scale`: (out, 1) for the
`channel` strategy, (1,) or () for `tensor`, (out, in // group_size) for `group`. Symmetric, no zero
point: W = q * scale. tinylm widens such weights to float32 as it reads them, so every backend sees an
ordinary float checkpoint and quantizes again at its own precision; storage in int8 only makes the
file small (a quarter of float32). Other quantized checkpoints (GPTQ, AWQ, bitsandbytes, fp8,
asymmetric or packed int4) are refused with a `WeightsError`: tinylm reads float checkpoints and
quantizes them itself (`precision="int8"`).

`quantize_int8(tensors, targets)` writes the same layout (per output channel), for bundling models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from .errors import WeightsError

__all__ = ["Int8Storage", "int8_storage", "quantize_int8", "QUANTIZATION_CONFIG"]

_SUFFIXES = ("_scale", "_zero_point", "_g_idx")
_STRATEGIES = ("channel", "tensor", "group")

#: The `quantization_config` `quantize_int8` writes: weights only, int8, symmetric, per output channel.
QUANTIZATION_CONFIG: dict[str, Any] = {
    "quant_method": "compressed-tensors",
    "format": "int-quantized",
    "quantization_status": "compressed",
    "config_groups": {
        "group_0": {
            "targets": ["Linear", "Embedding"],
            "weights": {
                "num_bits": 8,
                "type": "int",
                "symmetric": True,
                "strategy": "channel",
                "dynamic": False,
                "group_size": None,
            },
            "input_activations": None,
            "output_activations": None,
        }
    },
    "ignore": [],
}


def _refuse(where: str, what: str) -> WeightsError:
    return WeightsError(
        f"{where}: {what}; tinylm reads float checkpoints and compressed-tensors int8 ones (symmetric, per "
        "tensor, channel or group). Fix: use the model's float (unquantized) checkpoint and choose "
        "precision='int8' or 'int4' when loading; tinylm quantizes it for the backend."
    )


def int8_storage(config: Mapping[str, Any], *, where: str) -> bool:
    """Whether config.json declares int8 weight storage tinylm reads; `WeightsError` for other quantizations."""
    q = config.get("quantization_config")
    if q is None:
        return False
    if not isinstance(q, Mapping):
        raise _refuse(where, "quantization_config is not an object")
    method, fmt = q.get("quant_method"), q.get("format")
    if method != "compressed-tensors" or fmt not in ("int-quantized", "naive-quantized"):
        raise _refuse(where, f"a checkpoint quantized with {method!r} (format {fmt!r})")
    groups = q.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise _refuse(where, "quantization_config has no config_groups")
    for name, group in groups.items():
        w = group.get("weights") if isinstance(group, Mapping) else None
        if not isinstance(w, Mapping):
            raise _refuse(where, f"config group {name!r} quantizes no weights")
        if w.get("num_bits") != 8 or w.get("type") != "int" or w.get("symmetric") is not True:
            raise _refuse(
                where,
                f"config group {name!r} stores {w.get('num_bits')}-bit {w.get('type')} weights "
                f"(symmetric: {w.get('symmetric')})",
            )
        if w.get("strategy") not in _STRATEGIES:
            raise _refuse(where, f"config group {name!r} uses the {w.get('strategy')!r} strategy")
    return True


class Int8Storage(Mapping[str, np.ndarray]):
    """A checkpoint's tensors with int8-stored weights widened to float32 (scales hidden)."""

    def __init__(self, raw: Mapping[str, np.ndarray], *, where: str) -> None:
        self._raw = raw
        self._where = where
        self._names = [n for n in raw if not n.endswith(_SUFFIXES)]
        zero_points = [n for n in raw if n.endswith(("_zero_point", "_g_idx"))]
        if zero_points:
            raise _refuse(where, f"tensor {zero_points[0]!r} (zero points or activation order)")

    def __getitem__(self, name: str) -> np.ndarray:
        if name.endswith(_SUFFIXES):
            raise KeyError(name)
        array = self._raw[name]
        scale_name = f"{name}_scale"
        if scale_name not in self._raw:
            if array.dtype == np.int8:
                raise WeightsError(
                    f"{self._where}: tensor {name!r} is int8 but has no {scale_name!r}. "
                    "Fix: the checkpoint is incomplete; save it again with its scales."
                )
            return array
        if array.dtype != np.int8 or array.ndim != 2:
            raise WeightsError(
                f"{self._where}: tensor {name!r} has a scale but is {array.dtype} {array.shape}, not 2-D int8. "
                "Fix: save the checkpoint again with compressed-tensors' int-quantized format."
            )
        scale = np.asarray(self._raw[scale_name], dtype=np.float32)
        rows, cols = array.shape
        if scale.size == 1:
            scale = scale.reshape(1, 1)
        elif scale.ndim == 1 and scale.shape[0] == rows:
            scale = scale.reshape(rows, 1)
        if scale.ndim != 2 or scale.shape[0] not in (1, rows) or scale.shape[1] < 1 or cols % scale.shape[1]:
            raise WeightsError(
                f"{self._where}: scale {scale_name!r} has shape {scale.shape}, which does not divide "
                f"{name!r} {array.shape} into channels or groups. Fix: save the checkpoint again."
            )
        group = cols // scale.shape[1]
        widened = array.astype(np.float32).reshape(rows, scale.shape[1], group) * scale[:, :, None]
        return widened.reshape(rows, cols)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def quantize_int8(
    tensors: Mapping[str, np.ndarray], targets: Callable[[str, np.ndarray], bool]
) -> dict[str, np.ndarray]:
    """The tensors with each 2-D one `targets` accepts stored as int8 + per-row float16 scale.

    Symmetric per output channel (row): scale = max|row| / 127, q = round(W / scale). Tensors not
    targeted are returned as given. Pair the result with `QUANTIZATION_CONFIG` in config.json.
    """
    out: dict[str, np.ndarray] = {}
    for name, w in tensors.items():
        if w.ndim != 2 or not targets(name, w):
            out[name] = w
            continue
        w32 = np.asarray(w, dtype=np.float32)  # (out, in)
        scale = (np.abs(w32).max(axis=1, keepdims=True) / 127.0).astype(np.float16)  # (out, 1)
        safe = np.where(scale == 0, 1.0, scale.astype(np.float32))
        out[name] = np.clip(np.rint(w32 / safe), -127, 127).astype(np.int8)
        out[f"{name}_scale"] = scale
    return out
