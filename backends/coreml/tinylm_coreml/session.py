"""Sessions over a converted package on macOS: Core ML predictions (`CompiledMLModel`), KV cache as Core ML state.

    DecoderSession (stateful)   predict({input_ids, causal_mask}, state=...) ; reset() makes a new state
    DecoderSession (stateless)  the host keeps the cache arrays and writes each call's new keys/values
    EncoderSession              predict({input_ids, attention_mask[, token_type_ids]}) in chunks of max_batch

Written against coremltools' MLModel API; it runs only on macOS (see docs/backends/coreml.md for where
this has been verified).
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinylm import inputs
from tinylm.arch.spec import ModelSpec
from tinylm.backend import OpenRequest
from tinylm.errors import BackendUnavailable, CapabilityError, GenerationError, PromptTooLong

from .devices import compute_unit
from .masks import stateful_mask, stateless_mask

__all__ = ["DecoderSession", "EncoderSession", "open_session"]


class _Base:
    def __init__(self, model: Any, spec: ModelSpec, meta: dict[str, Any], scratch: Path | None = None) -> None:
        self.model: Any | None = model
        self.spec = spec
        self.meta = meta
        self._scratch = scratch  # the compiled model's folder, removed on close

    def _live(self) -> Any:
        if self.model is None:
            raise GenerationError("this Core ML session was closed. Fix: load the model again with tinylm.load(...).")
        return self.model

    def close(self) -> None:
        self.model = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


class DecoderSession(_Base):
    """One sequence (batch 1) with its KV cache."""

    def __init__(self, model: Any, spec: ModelSpec, meta: dict[str, Any], scratch: Path | None = None) -> None:
        super().__init__(model, spec, meta, scratch)
        self.capacity = int(meta["context_length"])
        self.stateful = bool(meta["stateful"])
        self._length = 0
        shape = (spec.num_layers, 1, spec.num_kv_heads, self.capacity, spec.head_dim)  # (L, 1, nkv, C, hd)
        self._state: Any = model.make_state() if self.stateful else None
        self._keys = None if self.stateful else np.zeros(shape, np.float16)
        self._values = None if self.stateful else np.zeros(shape, np.float16)

    @property
    def length(self) -> int:
        return self._length

    def reset(self) -> None:
        if self.stateful and self.model is not None:
            self._state = self.model.make_state()
        self._length = 0  # stateless: slots past `length` are masked, so the arrays need no clearing

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        model = self._live()
        ids = inputs.token_ids(token_ids, self.spec, "forward()").astype(np.int32)
        if ids.shape[0] != 1:
            raise CapabilityError(
                f"the coreml backend runs one sequence at a time, got a batch of {ids.shape[0]}. "
                "Fix: call forward() once per sequence (reset() between them), or use another backend for batches."
            )
        start, new = self._length, ids.shape[1]
        if start + new > self.capacity:
            raise PromptTooLong(
                f"{start} cached + {new} new tokens exceed this Core ML model's context of {self.capacity}. "
                "Fix: shorten the prompt or max_new_tokens, call reset(), or convert with a larger "
                "context_length option (up to the model's max_positions)."
            )
        window = self.spec.sliding_window
        if self.stateful:
            out = model.predict({"input_ids": ids, "causal_mask": stateful_mask(start, new, window)}, state=self._state)
        else:
            feed = {
                "input_ids": ids,
                "position_ids": np.arange(start, start + new, dtype=np.int32)[None],
                "causal_mask": stateless_mask(start, new, self.capacity, window),
                "key_cache": self._keys,
                "value_cache": self._values,
            }
            out = model.predict(feed)
            self._keys[:, :, :, start : start + new] = out["new_keys"]  # type: ignore[index]
            self._values[:, :, :, start : start + new] = out["new_values"]  # type: ignore[index]
        self._length = start + new
        logits = np.asarray(out["logits"], dtype=np.float32)  # (1, T, V)
        return logits if all_positions else logits[:, -1]

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        raise CapabilityError(
            f"embed() needs an encoder; this {self.spec.family} model is a decoder. Fix: use forward()."
        )


class EncoderSession(_Base):
    """Last hidden states for padded batches (no cache)."""

    length = 0

    def reset(self) -> None:
        pass

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        raise CapabilityError(
            f"forward() needs a decoder; this {self.spec.family} model is an encoder. Fix: use embed()."
        )

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        model = self._live()
        ids = inputs.token_ids(token_ids, self.spec, "embed()").astype(np.int32)
        if ids.shape[1] > self.spec.max_positions:
            raise PromptTooLong(
                f"{ids.shape[1]} tokens exceed the model's {self.spec.max_positions} positions. "
                "Fix: truncate the texts (the tokenizer's max_length does)."
            )
        mask = np.asarray(attention_mask, dtype=np.int32)
        types = np.asarray(token_type_ids, dtype=np.int32)
        if mask.shape != ids.shape or types.shape != ids.shape:
            raise GenerationError(
                f"embed(): token_ids {ids.shape}, attention_mask {mask.shape} and token_type_ids {types.shape} "
                "must have the same shape. Fix: pad all three to (batch, length)."
            )
        rows = int(self.meta.get("max_batch", 1))
        out = []
        for lo in range(0, ids.shape[0], rows):
            feed = {"input_ids": ids[lo : lo + rows], "attention_mask": mask[lo : lo + rows]}
            if self.spec.type_vocab_size:
                feed["token_type_ids"] = types[lo : lo + rows]
            out.append(np.asarray(model.predict(feed)["last_hidden_state"], dtype=np.float32))  # (b, T, H)
        return np.concatenate(out, axis=0)


def _macos() -> tuple[int, ...]:
    release = platform.mac_ver()[0]
    return tuple(int(p) for p in release.split(".") if p.isdigit()) if release else ()


def open_session(request: OpenRequest) -> DecoderSession | EncoderSession:
    """Load the artifact's package on the requested compute units and open a session."""
    import coremltools as ct

    folder = Path(request.artifact) if request.artifact is not None else None
    meta = dict(request.meta)
    if folder is None or not meta:
        raise BackendUnavailable(
            "the coreml backend needs a converted artifact and none was given. "
            "Fix: load through tinylm.load(...) (it converts and caches), or convert with `tinylm convert`."
        )
    needs = (15,) if meta.get("target") == "iOS18" else (13,)
    if _macos() and _macos() < needs:
        raise BackendUnavailable(
            f"{folder} targets {meta.get('target')} (macOS {needs[0]}+); this is macOS {platform.mac_ver()[0]}. "
            "Fix: convert with stateful=False and precision fp16 or int8 (macOS 13+), or update macOS."
        )
    # Compile to a private folder and load that: opening the .mlpackage itself with MLModel would rewrite
    # its Manifest.json, and tinylm trusts an artifact only while its files are unchanged.
    scratch = Path(tempfile.mkdtemp(prefix="tinylm-coreml-"))
    try:
        compiled = ct.utils.compile_model(str(folder / meta["package"]), str(scratch / "model.mlmodelc"))
        model = ct.models.CompiledMLModel(compiled, compute_units=compute_unit(request.device))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if request.spec.kind == "encoder":
        return EncoderSession(model, request.spec, meta, scratch)
    return DecoderSession(model, request.spec, meta, scratch)
