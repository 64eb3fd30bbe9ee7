"""The tinylm `Session` over an ONNX Runtime `InferenceSession`: numpy in, float32 numpy out.

The KV cache is one numpy buffer per layer for keys and one for values, (B, nkv, room, hd), allocated per
batch size with room for 256 positions and doubled (copying what is cached) when a call needs more, up to the
capacity: memory follows the sequence, not the model's context (GroupQueryAttention touches the whole buffer).
Each buffer is bound by pointer through IOBinding as both GroupQueryAttention's past input and its present
output, so a step writes its keys and values in place and nothing of the cache crosses Python. A decode step
writes its token and lengths into buffers that stay bound, and its logits into one that stays bound too (binding
an output costs ONNX Runtime 0.1-0.2 ms; in generation, +0.5-2% decode tokens/s on SmolLM2-135M at int4/int8).

Conv layers (LFM2) keep their state the same way: one buffer (B, H, K - 1) per layer bound as past_conv and
present_conv, rewritten in place by each call; unlike the KV cache (read only up to the length) it is zeroed on
`reset()`, since a fresh sequence must see zeros before its first token.

`truncate(length)` (speculative decoding's rollback) only moves the length: the keys past it are overwritten by
the next call before anything reads them. A model with conv states is refused (they cannot be cut back).

`reset()` keeps the keys too, and a batch-1 session remembers the ids of those its prefills computed: the next
prompt runs only from where it differs from them, or its last MIN_RUN tokens, the rest of its keys being in place.
A conversation's next turn, or a prompt with the same system prompt, prefills only what is new. A prefill of two
tokens or more computes keys and logits with the same bits however the prompt is cut (its matrix products run
the same kernels row by row), where one token at a time runs the decode kernels (at int8 up to ~1e-6 off): so
only prefilled keys are held, at least MIN_RUN tokens run, and a prompt's logits never depend on what ran before.
Not with conv states (zeroed by reset), across longrope's switch (a prefix's keys depend on the table the whole
length picks), or for all-position logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.rope import switch_length
from tinylm.arch.spec import ModelSpec
from tinylm.errors import GenerationError
from tinylm.row_slots import shared_length

__all__ = ["OnnxSession", "MIN_RUN"]

FIRST_ROOM = 256  # positions the KV buffers hold at first (doubled as needed, up to the capacity)
MIN_RUN = 2  # tokens of a prompt that run even when their keys are held: the prefill kernels, the same bits


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class OnnxSession:
    """One model on ONNX Runtime. Used by one thread at a time (the core serialises calls)."""

    def __init__(self, session: Any, spec: ModelSpec, *, capacity: int) -> None:
        self._sess: Any = session
        self.spec = spec
        self.capacity = capacity
        self._io = session.io_binding() if spec.kind == "decoder" else None
        self._batch = 0
        self._length = 0
        self._k: list[np.ndarray] = []  # per attention layer (spec.attention_layers), (B, nkv, room, hd)
        self._v: list[np.ndarray] = []
        self._conv: dict[int, np.ndarray] = {}  # conv layer -> its state (B, H, K - 1)
        self._step_ids = np.zeros((1, 1), np.int64)
        self._seqlens = np.zeros(1, np.int32)  # (B,) total - 1
        self._total = np.zeros((), np.int32)
        self._from = np.zeros(1, np.int64)
        self._bound_ids: np.ndarray | None = None
        self._step_out = np.zeros((0, 1, spec.vocab_size), np.float32)  # (B, 1, V): every decode step's logits
        self._bound_out: np.ndarray | None = None
        self._room = 0
        self.prefilled = 0  # tokens `forward` (and a rows session's add_rows) ran: what held keys saved shows here
        self._held = np.zeros(0, np.int64)  # batch 1: the ids whose keys the buffers hold at 0..held_n - 1
        self._held_n = 0
        switch = switch_length(spec.rope) if spec.kind == "decoder" else None
        self._reuses = spec.kind == "decoder" and not spec.conv_layers and (switch is None or switch >= capacity)

    # helpers --------------------------------------------------------------------------------

    def _live(self) -> Any:
        if self._sess is None:
            raise GenerationError("this onnx session was closed. Fix: load the model again with tinylm.load(...).")
        return self._sess

    def _bind(
        self, name: str, array: np.ndarray, *, output: bool = False, shape: tuple[int, ...] | None = None
    ) -> None:
        bind = self._io.bind_output if output else self._io.bind_input
        bind(name, "cpu", 0, array.dtype, list(array.shape if shape is None else shape), _ptr(array))

    def _bind_cache(self, row: int | None = None) -> None:
        """Bind every layer's buffers as past and present: all rows, or one row (a (1, ...) view)."""
        named = [(f"conv.{i}", buf) for i, buf in self._conv.items()]
        for i, k, v in zip(self.spec.attention_layers, self._k, self._v):
            named += [(f"key.{i}", k), (f"value.{i}", v)]
        for name, buf in named:
            part = buf if row is None else buf[row : row + 1]  # contiguous: rows are the outer axis
            self._bind(f"past_{name}", part)
            self._bind(f"present_{name}", part, output=True)

    def _cache_for(self, batch: int) -> None:
        if batch == self._batch:
            return
        inputs.same_batch(self._batch, batch, cached=self._length)
        self._k = self._v = []  # free the old buffers first
        self._conv = {}
        for i in self.spec.conv_layers:
            (state,) = self.spec.states(i)
            self._conv[i] = np.zeros((batch, state.channels, state.width), np.float32)  # (B, H, K - 1)
        self._batch, self._room, self._held_n = batch, 0, 0
        self._seqlens = np.zeros(batch, np.int32)
        self._step_ids = np.zeros((batch, 1), np.int64)
        self._step_out = np.zeros((batch, 1, self.spec.vocab_size), np.float32)
        self._bind("seqlens_k", self._seqlens)
        self._bind("total_sequence_length", self._total)
        self._bind("logits_from", self._from)
        self._bound_ids = self._bound_out = None

    def _make_room(self, total: int) -> None:
        """Grow the cache buffers to hold `total` positions (doubling from FIRST_ROOM, at most the capacity)."""
        if total <= self._room:
            return
        room = min(self.capacity, max(FIRST_ROOM, 2 * self._room, total))
        s, n = self.spec, self._length
        shape = (self._batch, s.num_kv_heads, room, s.head_dim)  # (B, nkv, room, hd)
        old, layers = [*self._k, *self._v], len(s.attention_layers)
        grown = [np.zeros(shape, np.float32) for _ in range(2 * layers)]
        for new, before in zip(grown, old):
            new[:, :, :n] = before[:, :, :n]
        self._k, self._v = grown[:layers], grown[layers:]
        self._room = room
        self._held_n = min(self._held_n, n)  # only what was cached came along
        self._bind_cache()

    def _run(self, ids: np.ndarray, all_positions: bool) -> np.ndarray:
        """One run over ids (b, T) appended at the current length; logits (b, T or 1, V)."""
        b, t = ids.shape
        total = self._length + t
        if t == 1 and b == self._batch:  # decode: reuse the bound step buffer
            self._step_ids[:] = ids
            ids = self._step_ids
        if ids is not self._bound_ids:
            self._bind("input_ids", ids)
            self._bound_ids = ids
        self._seqlens[:] = total - 1
        self._total[()] = total
        self._from[0] = 0 if all_positions else t - 1
        if ids is self._step_ids:  # decode: the step's logits buffer stays bound (re-binding costs ~0.1 ms a step)
            out = self._step_out
        else:
            out = np.empty((b, t if all_positions else 1, self.spec.vocab_size), np.float32)
        if out is not self._bound_out:
            self._bind("logits", out, output=True)
        self._sess.run_with_iobinding(self._io)
        if out is not self._step_out:
            self._bound_out = None  # a one-off buffer: the next run binds its own
            return out
        self._bound_out = out
        return out.copy()  # the caller may keep it; the next step rewrites the buffer

    def _run_rows(self, ids: np.ndarray, all_positions: bool) -> np.ndarray:
        """T > 1 on top of a cache with B > 1, which GroupQueryAttention runs one row at a time."""
        one = np.zeros(1, np.int32)
        self._bind("seqlens_k", one, shape=(1,))
        saved, self._seqlens = self._seqlens, one
        try:
            outs = []
            for row in range(ids.shape[0]):
                self._bind_cache(row)
                outs.append(self._run(np.ascontiguousarray(ids[row : row + 1]), all_positions))
        finally:
            self._seqlens = saved
            self._bind_cache()
            self._bind("seqlens_k", self._seqlens)
        return np.concatenate(outs, axis=0)

    # Session ----------------------------------------------------------------------------------

    @property
    def length(self) -> int:
        return self._length

    def reset(self) -> None:
        self._length = 0
        for state in self._conv.values():
            state.fill(0.0)  # in place: the buffers stay bound

    def truncate(self, length: int) -> None:
        """Keep the first `length` cached tokens: GroupQueryAttention reads the buffers up to the length it is
        given (seqlens_k), and the next call writes its keys from there, so only the length moves."""
        self._length = inputs.truncation(length, cached=self._length, spec=self.spec)

    def _held_prefix(self, prompt: np.ndarray) -> int:
        """How many first ids of `prompt` the buffers hold the keys of (leaving at least MIN_RUN to run)."""
        return shared_length(self._held[: self._held_n], prompt, len(prompt) - MIN_RUN)

    def _hold(self, ids: np.ndarray, start: int) -> None:
        """ids (B, T) were just run from position `start`: remember a batch-1 prefill's, forget what they
        overwrote otherwise."""
        end = start + ids.shape[1]
        if ids.shape[0] != 1 or ids.shape[1] < MIN_RUN or start > self._held_n:
            # a decode step, another batch, or a prefill after decoded keys: held only up to where this wrote
            self._held_n = min(self._held_n, start) if ids.shape[0] == 1 else 0
            return
        if end > len(self._held):
            grown = np.zeros(min(self.capacity, max(end, 2 * len(self._held), FIRST_ROOM)), np.int64)
            grown[: self._held_n] = self._held[: self._held_n]
            self._held = grown
        self._held[start:end] = ids[0]
        self._held_n = end

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        self._live()
        inputs.need_kind(self.spec, "decoder", "forward()")
        ids = inputs.token_ids(token_ids, self.spec, "forward()")
        batch, new = ids.shape
        self._cache_for(batch)
        if self._length == 0 and batch == 1 and not all_positions and self._reuses:
            self._length = self._held_prefix(ids[0])  # their keys are in place
            ids, new = ids[:, self._length :], new - self._length
        inputs.room(self.spec, cached=self._length, new=new, capacity=self.capacity)
        self._make_room(self._length + new)
        if batch > 1 and new > 1 and self._length:
            out = self._run_rows(ids, all_positions)
        else:
            out = self._run(ids, all_positions)
        self._hold(ids, self._length)
        self._length += new
        self.prefilled += batch * new
        return out if all_positions else out[:, 0]  # (B, T, V) or (B, V)

    def step(self, token_id: int) -> np.ndarray:
        """`forward` of one token on a batch-1 sequence; the logits (V,) are a view of the bound step buffer,
        valid until the next call (the generation loop's fast path: no copy, nothing re-bound)."""
        token = inputs.token_id(token_id, self.spec, "step()")
        n = self._length + 1
        bound = self._batch == 1 and self._bound_ids is self._step_ids and self._bound_out is self._step_out
        if not bound or n > self._room:
            # first step after a prefill (binds the step buffers), another batch size, or a cache to grow
            return self.forward(np.array([[token]], np.int64))[0]
        self._step_ids[0, 0] = token
        self._seqlens[0] = n - 1
        self._total[()] = n
        self._from[0] = 0
        self._live().run_with_iobinding(self._io)
        self._length = n
        self._held_n = min(self._held_n, n - 1)  # a decode step's key is not held (see the module's docstring)
        return self._step_out[0, 0]

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        sess = self._live()
        ids, mask, types = inputs.embed_inputs(token_ids, attention_mask, token_type_ids, self.spec)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.spec.type_vocab_size:
            feeds["token_type_ids"] = types
        return sess.run(["hidden"], feeds)[0]  # (B, T, H)

    def close(self) -> None:
        self._sess = None
        self._io = None
        self._k = self._v = []
        self._conv = {}
