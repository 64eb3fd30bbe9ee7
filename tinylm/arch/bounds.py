"""Range checks on a `ModelSpec` read from an untrusted `config.json`, before anything is sized by it.

A config may say anything: `num_hidden_layers: 1000000000` would make every loop over the layers (the
expected tensors, `tinylm info`'s parameter count) run for hours, and `max_position_embeddings: 1e11`
would make a backend allocate rotary tables and a KV cache of terabytes. The tensor sizes themselves
are checked against the weights (`layout.check_weights`, which reads only the safetensors headers'
shapes) before a backend builds anything; what the weights do not bound is checked here:

- every size is a positive integer, and the layer count is at most `MAX_LAYERS` (real checkpoints
  have at most a few hundred);
- the positions: the rotary tables for `max_positions` positions (computed or baked whole by the
  onnx and openvino backends) must fit in this machine's memory, as must one layer's float32 key buffer
  for one sequence (the torch backend reserves each layer's buffers whole; untouched pages cost nothing,
  but one allocation larger than the memory is refused).
"""

from __future__ import annotations

import os

from ..errors import ModelFileError
from .spec import ModelSpec

__all__ = ["MAX_LAYERS", "check_bounds", "memory_bytes"]

#: The most layers a config may declare (the deepest small models have a few dozen).
MAX_LAYERS = 4096
_SIZES = ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "intermediate_size")
_FALLBACK_MEMORY = 1 << 40  # when the OS does not say (1 TiB: the check then only stops absurd values)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (a generous constant where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return _FALLBACK_MEMORY


def _refuse(where: str, what: str, fix: str) -> ModelFileError:
    return ModelFileError(f"{where}: {what}. Fix: {fix}.")


def check_bounds(spec: ModelSpec, *, where: str, memory: int | None = None) -> None:
    """Raise `ModelFileError` (naming the config key's value and the limit) when `spec` is out of range.

    `where`: the config.json path, for the message; `memory`: bytes available (default: physical memory)."""
    fix = "use the config.json the checkpoint was saved with"
    for field in _SIZES:
        value = getattr(spec, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _refuse(where, f"{field} is {value!r}, not a positive integer", fix)
    if spec.num_layers > MAX_LAYERS:
        raise _refuse(where, f"declares {spec.num_layers} layers; tinylm reads at most {MAX_LAYERS}", fix)
    positions = spec.max_positions
    if not isinstance(positions, int) or isinstance(positions, bool) or positions < 1:
        raise _refuse(where, f"max_positions is {positions!r}, not a positive integer", fix)
    memory = memory_bytes() if memory is None else memory
    rotary = spec.rope.rotary_dim if spec.rope is not None else 0
    tables = positions * rotary * 2 * 4  # cos and sin, float32
    layer_cache = spec.num_kv_heads * spec.head_dim * positions * 4  # one layer's keys, one sequence, float32
    need = max(tables, layer_cache)
    if need > memory:
        raise _refuse(
            where,
            f"max_position_embeddings {positions} needs {need / 2**30:.1f} GiB in one allocation (rotary tables or "
            f"one layer's KV cache); this machine has {memory / 2**30:.1f} GiB",
            f"{fix}; if it is the real context, set max_position_embeddings to the context you need",
        )
