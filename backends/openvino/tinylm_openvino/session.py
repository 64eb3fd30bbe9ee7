"""The tinylm `Session` over a compiled OpenVINO model: numpy in, float32 numpy out.

Decoders are stateful: one `InferRequest` holds every layer's keys and values in OpenVINO state, which grows
with the sequence; `reset()` empties it (`reset_state`). A call sets input_ids (B, T), beam_idx = arange(B),
position_ids (a view of one arange: every row of a batch at the same positions), the attention masks and
logits_from, runs, and copies out the logits (B, T or 1, V). `step` (one token, batch 1) sets its own buffers as
the inputs once, then per token only views of its position and masks, and returns a view of the output.

`truncate(length)` (speculative decoding's rollback) copies nothing: the dropped keys stay in the state as holes,
which the masks of every later call leave out (the session keeps at which position each key of the state sits,
HOLE for a dropped one; the query's rotary position is the sequence's own length). The state is compacted (each
variable read, its kept keys moved to the front, set back) only once holes are half of it. A model with conv
states is refused (they cannot be cut back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.errors import GenerationError

from .masks import HOLE, LOWEST, StepMasks, biases

__all__ = ["OpenVINOSession"]


class OpenVINOSession:
    """One model on one OpenVINO device. Used by one thread at a time (the core serialises calls)."""

    def __init__(self, compiled: Any, spec: ModelSpec, *, capacity: int, device: str, execution: str) -> None:
        self._compiled: Any = compiled
        self._req: Any = compiled.create_infer_request()
        self.spec = spec
        self.capacity = capacity
        self.device = device
        self.execution = execution  # what runs: the compiled model's INFERENCE_PRECISION_HINT
        self._batch = 0
        self._length = 0
        self._beam = np.zeros(0, np.int32)
        self._at = np.arange(capacity, dtype=np.int64)[None]  # (1, capacity): positions, viewed per call
        self._masks: Any = None  # step()'s masks (masks.StepMasks), made at the first step
        self._from = np.zeros(1, np.int64)
        self._step_ids = np.zeros((1, 1), np.int64)
        self._step_bound = False  # whether the request's inputs are step()'s buffers (forward() sets its own)
        self.held: Any = None  # what keeps a compiled model shared between sessions alive (opening.py)
        # the single sequence's state, key by key: its position (HOLE: dropped by truncate) and its mask value
        # (0 attended, LOWEST not), so a step's mask over a state with holes is still a view
        self._where = np.zeros(0, np.int64)  # (entries,) grown as needed
        self._open = np.zeros(0, np.float32)
        self._entries = 0  # keys in the state, holes included
        self._holes = 0

    def _live(self) -> Any:
        if self._req is None:
            raise GenerationError("this openvino session was closed. Fix: load the model again with tinylm.load(...).")
        return self._req

    @property
    def length(self) -> int:
        return self._length

    def reset(self) -> None:
        if self._req is not None and self._entries:
            self._req.reset_state()
        self._length = self._entries = self._holes = 0

    def truncate(self, length: int) -> None:
        self._live()
        kept = inputs.truncation(length, cached=self._length, spec=self.spec)
        if kept == self._length:
            return
        if kept == 0:
            self.reset()
            return
        where = self._where[: self._entries]
        dropped = where >= kept  # the keys past the kept positions (holes already are)
        self._holes = int(np.count_nonzero(dropped))  # every key at or past `kept` is a hole now
        where[dropped] = HOLE
        self._open[: self._entries][dropped] = LOWEST
        self._length = kept
        if self._holes * 2 > self._entries:
            self._drop_holes()

    def _drop_holes(self) -> None:
        """Move the kept keys of every state variable to the front (a copy out of the plugin and back in)."""
        from .runtime import openvino

        ov = openvino()
        live = np.flatnonzero(self._where[: self._entries] != HOLE)
        for state in self._live().query_state():  # every variable is a KV state here: (B, nkv, S, hd)
            value = state.state.data
            state.state = ov.Tensor(np.ascontiguousarray(value[:, :, live]))
        n = live.size
        self._where[:n] = self._where[live]
        self._open[:n] = 0.0
        self._entries, self._holes = n, 0

    def _room_for_keys(self, new: int) -> None:
        """Room in the key bookkeeping for `new` more keys."""
        need = self._entries + new
        if need <= self._where.size:
            return
        size = max(need, 2 * self._where.size, 64)
        self._where = np.concatenate([self._where[: self._entries], np.zeros(size - self._entries, np.int64)])
        self._open = np.concatenate([self._open[: self._entries], np.zeros(size - self._entries, np.float32)])

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        req = self._live()
        inputs.need_kind(self.spec, "decoder", "forward()")
        ids = inputs.token_ids(token_ids, self.spec, "forward()")
        batch, new = ids.shape
        if batch != self._batch:
            inputs.same_batch(self._batch, batch, cached=self._length)
            self._batch, self._beam = batch, np.arange(batch, dtype=np.int32)
        inputs.room(self.spec, cached=self._length, new=new, capacity=self.capacity)
        end = self._length + new
        positions = np.ascontiguousarray(np.broadcast_to(self._at[:, self._length : end], (batch, new)))  # (B, T)
        self._room_for_keys(new)
        self._where[self._entries : self._entries + new] = self._at[0, self._length : end]
        self._open[self._entries : self._entries + new] = 0.0
        keys = np.broadcast_to(self._where[: self._entries + new], (batch, self._entries + new))  # (B, S)
        self._from[0] = 0 if all_positions else new - 1
        feeds = {
            "input_ids": ids,
            "beam_idx": self._beam,
            "position_ids": positions,
            "logits_from": self._from,
            **biases(self.spec, positions, keys),
        }
        req.infer(feeds, share_inputs=True)  # the request reads these arrays (no copy) while it runs
        self._fed = feeds  # and may read them after (a state's beam gather is applied lazily): keep them alive
        self._step_bound = False
        out = np.array(req.get_tensor("logits").data, dtype=np.float32)  # a copy: the next call reuses the buffer
        self._length += new
        self._entries += new
        return out if all_positions else out[:, 0]  # (B, T, V) or (B, V)

    def step(self, token_id: int) -> np.ndarray:
        """`forward` of one token on a batch-1 sequence; the logits (V,) are a view of the request's output,
        valid until the next call (the generation loop's fast path: inputs set once, read in place)."""
        req = self._live()
        token = inputs.token_id(token_id, self.spec, "step()")
        windowed = self._holes and self.spec.windows != (None,)  # a sliding window's mask moves with each step
        if self._batch != 1 or self._length >= self.capacity or windowed:  # the general path, its typed errors
            return self.forward(np.array([[token]], np.int64))[0]
        if not self._step_bound:
            from .runtime import openvino

            ov = openvino()
            self._tensor = ov.Tensor
            if self._masks is None:
                self._masks = StepMasks(self.spec, self.capacity)
            feeds = dict(input_ids=self._step_ids, beam_idx=self._beam, logits_from=self._from)
            for name, array in feeds.items():
                req.set_tensor(name, ov.Tensor(array, shared_memory=True))
            self._step_bound = True
        n, e = self._length, self._entries
        self._step_ids[0, 0] = token
        self._from[0] = 0
        self._room_for_keys(1)
        self._where[e], self._open[e] = n, 0.0
        req.set_tensor("position_ids", self._tensor(self._at[:, n : n + 1], shared_memory=True))  # (1, 1)
        if self._holes:  # every kept key is before this one: its mask is which keys are kept, (1, 1, 1, e + 1)
            (name,) = self._masks.at(n)
            req.set_tensor(name, self._tensor(self._open[: e + 1].reshape(1, 1, 1, e + 1), shared_memory=True))
        else:
            for name, mask in self._masks.at(n).items():  # (1, 1, 1, n + 1) views: nothing computed
                req.set_tensor(name, self._tensor(mask, shared_memory=True))
        req.infer()
        self._length += 1
        self._entries += 1
        return req.get_tensor("logits").data[0, 0]

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        req = self._live()
        ids, mask, types = inputs.embed_inputs(token_ids, attention_mask, token_type_ids, self.spec)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self.spec.type_vocab_size:
            feeds["token_type_ids"] = types
        req.infer(feeds)
        return np.array(req.get_tensor("hidden").data, dtype=np.float32)  # (B, T, H)

    def close(self) -> None:
        self._req = None
        self._compiled = self.held = None
