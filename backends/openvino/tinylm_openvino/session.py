"""The tinylm `Session` over a compiled OpenVINO model: numpy in, float32 numpy out.

Decoders are stateful: one `InferRequest` holds every layer's keys and values in OpenVINO state, which grows
with the sequence; `reset()` empties it (`reset_state`). A call sets input_ids (B, T), beam_idx = arange(B),
position_ids (a view of one arange: every row of a batch at the same positions), the attention masks and
logits_from, runs, and copies out the logits (B, T or 1, V). `step` (one token, batch 1) sets its own buffers as
the inputs once, then per token only views of its position and masks, and returns a view of the output.

`truncate(length)` (speculative decoding's rollback) reads each KV state variable, keeps its first `length`
positions and sets it back: a copy of the kept cache out of the plugin and back in, measured in
docs/speculative.md. A model with conv states is refused (they cannot be cut back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.errors import GenerationError

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

    def _live(self) -> Any:
        if self._req is None:
            raise GenerationError("this openvino session was closed. Fix: load the model again with tinylm.load(...).")
        return self._req

    @property
    def length(self) -> int:
        return self._length

    def reset(self) -> None:
        if self._req is not None and self._length:
            self._req.reset_state()
        self._length = 0

    def truncate(self, length: int) -> None:
        req = self._live()
        kept = inputs.truncation(length, cached=self._length, spec=self.spec)
        if kept == self._length:
            return
        if kept == 0:
            self.reset()
            return
        from .runtime import openvino

        ov = openvino()
        for state in req.query_state():  # every variable is a KV state here: (B, nkv, S, hd)
            value = state.state.data
            state.state = ov.Tensor(np.ascontiguousarray(value[:, :, :kept]))
        self._length = kept

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
        from .masks import biases

        positions = np.ascontiguousarray(np.broadcast_to(self._at[:, self._length : end], (batch, new)))  # (B, T)
        keys = np.broadcast_to(self._at[:, :end], (batch, end))  # (B, S)
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
        return out if all_positions else out[:, 0]  # (B, T, V) or (B, V)

    def step(self, token_id: int) -> np.ndarray:
        """`forward` of one token on a batch-1 sequence; the logits (V,) are a view of the request's output,
        valid until the next call (the generation loop's fast path: inputs set once, read in place)."""
        req = self._live()
        token = inputs.token_id(token_id, self.spec, "step()")
        if self._batch != 1 or self._length >= self.capacity:  # the general path, with its typed errors
            return self.forward(np.array([[token]], np.int64))[0]
        if not self._step_bound:
            from .masks import StepMasks
            from .runtime import openvino

            ov = openvino()
            self._tensor = ov.Tensor
            if self._masks is None:
                self._masks = StepMasks(self.spec, self.capacity)
            feeds = dict(input_ids=self._step_ids, beam_idx=self._beam, logits_from=self._from)
            for name, array in feeds.items():
                req.set_tensor(name, ov.Tensor(array, shared_memory=True))
            self._step_bound = True
        n = self._length
        self._step_ids[0, 0] = token
        self._from[0] = 0
        req.set_tensor("position_ids", self._tensor(self._at[:, n : n + 1], shared_memory=True))  # (1, 1)
        for name, mask in self._masks.at(n).items():  # (1, 1, 1, n + 1) views: nothing computed
            req.set_tensor(name, self._tensor(mask, shared_memory=True))
        req.infer()
        self._length += 1
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
