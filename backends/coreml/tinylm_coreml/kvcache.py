"""Where attention's keys and values live: three ways the program can hold the KV cache.

    NoCache        encoders (and cache-free scoring): attend to this call's keys only
    StateCache     iOS 18 / macOS 15: one Core ML state per tensor, (L, 1, nkv, C, hd) fp16, updated
                   in place with `slice_update` at positions [start, end) and read back up to `end`
    IOCache        older targets: the cache is an input (L, 1, nkv, C, hd); this call's keys and values
                   are outputs (L, 1, nkv, T, hd) that the host writes into its copy at [start, end)

A cache's `append(layer, k, v)` takes this call's k, v (1, nkv, T, hd) float32 and returns what
attention reads, (1, nkv, S, hd) float32. The leading L axis has one slot per attention layer
(`ModelSpec.attention_layers`; LFM2's conv layers keep no keys, their state is in `conv.py`);
`slots` maps a layer to its slot (all layers, in order, when every layer attends). `Buffer` separates
reading and writing a state from the cache logic, so `evaluate` can stand a numpy array in for the Core ML state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types

from tinylm.arch.spec import ModelSpec

__all__ = ["KVCache", "NoCache", "StateCache", "IOCache", "Buffer", "CoreMLState", "kv_slots"]


class KVCache(Protocol):
    def append(self, layer: int, k: Var, v: Var) -> tuple[Var, Var]: ...


def kv_slots(spec: ModelSpec) -> dict[int, int]:
    """Attention layer -> its slot on the cache's leading axis."""
    return {layer: slot for slot, layer in enumerate(spec.attention_layers)}


class NoCache:
    def append(self, layer: int, k: Var, v: Var) -> tuple[Var, Var]:
        return k, v


class Buffer(Protocol):
    """A persistent tensor the program reads and overwrites (a Core ML state, or a stand-in)."""

    def read(self) -> Var: ...

    def write(self, value: Var) -> Var: ...


@dataclass
class CoreMLState:
    """A Core ML state input (iOS 18): `read_state` / `coreml_update_state`."""

    state: Var

    def read(self) -> Var:
        return mb.read_state(input=self.state)

    def write(self, value: Var) -> Var:
        return mb.coreml_update_state(state=self.state, value=value)


@dataclass
class StateCache:
    """The stateful layout. `start`, `end` are int32 tensors (1,) of this call's positions [start, end)."""

    keys: Buffer
    values: Buffer
    start: Var
    end: Var
    num_kv_heads: int
    head_dim: int
    slots: dict[int, int] | None = None  # layer -> slot (None: the layer's own index)

    def _bounds(self, layer: int, lo: Var) -> tuple[Var, Var]:
        begin = mb.concat(values=[np.array([layer, 0, 0], np.int32), lo, np.array([0], np.int32)], axis=0)
        end = mb.concat(
            values=[
                np.array([layer + 1, 1, self.num_kv_heads], np.int32),
                self.end,
                np.array([self.head_dim], np.int32),
            ],
            axis=0,
        )
        return begin, end  # (5,) each

    def _append(self, buffer: Buffer, layer: int, new: Var) -> Var:
        whole = buffer.read()  # (L, 1, nkv, C, hd)
        update = mb.cast(
            x=mb.expand_dims(x=new, axes=[0]), dtype=types.builtin_to_string(whole.dtype)
        )  # (1, 1, nkv, T, hd)
        begin, end = self._bounds(layer, self.start)
        whole = buffer.write(mb.slice_update(x=whole, update=update, begin=begin, end=end))
        begin, end = self._bounds(layer, mb.const(val=np.array([0], np.int32)))
        seen = mb.slice_by_index(x=whole, begin=begin, end=end)  # (1, 1, nkv, S, hd)
        # a dynamic `end` leaves every dim symbolic: the reshape restores the static ones (and the rank)
        seen = mb.reshape(x=seen, shape=[1, self.num_kv_heads, -1, self.head_dim])  # (1, nkv, S, hd)
        return mb.cast(x=seen, dtype="fp32")

    def append(self, layer: int, k: Var, v: Var) -> tuple[Var, Var]:
        slot = layer if self.slots is None else self.slots[layer]
        return self._append(self.keys, slot, k), self._append(self.values, slot, v)


@dataclass
class IOCache:
    """The stateless layout: attend to [cached slots | this call], collect this call's k, v as outputs."""

    keys: Var  # (L, 1, nkv, C, hd), an input
    values: Var
    new_keys: list[Var] = field(default_factory=list)
    new_values: list[Var] = field(default_factory=list)

    @staticmethod
    def _layer(cache: Var, layer: int) -> Var:
        past = mb.slice_by_index(
            x=cache, begin=[layer, 0, 0, 0, 0], end=[layer + 1, 0, 0, 0, 0], end_mask=[False] + [True] * 4
        )
        return mb.cast(x=mb.squeeze(x=past, axes=[0]), dtype="fp32")  # (1, nkv, C, hd)

    def append(self, layer: int, k: Var, v: Var) -> tuple[Var, Var]:
        self.new_keys.append(mb.cast(x=k, dtype=types.builtin_to_string(self.keys.dtype)))
        self.new_values.append(mb.cast(x=v, dtype=types.builtin_to_string(self.values.dtype)))
        k_all = mb.concat(values=[self._layer(self.keys, layer), k], axis=2)  # (1, nkv, C + T, hd)
        v_all = mb.concat(values=[self._layer(self.values, layer), v], axis=2)
        return k_all, v_all

    def outputs(self) -> tuple[Var, Var]:
        """This call's keys and values of every layer, (L, 1, nkv, T, hd) each."""
        return mb.stack(values=self.new_keys, axis=0), mb.stack(values=self.new_values, axis=0)
