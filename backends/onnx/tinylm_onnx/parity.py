"""Parity measured while converting, recorded in the artifact's metadata (tinylm-artifact.json).

Decoders: max |logit difference| over 32 teacher-forced positions and greedy agreement over 16 tokens
against the reference (the torch backend when it is installed, else, for int8/int4, this backend's own
fp32 graph); for int8/int4 also the perplexity change on `heldout.TEXT` against the fp32 graph.
Encoders: max |hidden-state difference| on a padded batch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tinylm.backend import OpenRequest, Session

from .heldout import TEXT

__all__ = ["torch_reference", "measure", "perplexity"]

POSITIONS, PROMPT, GREEDY = 32, 8, 16


def torch_reference(request: OpenRequest) -> Session | None:
    """The torch backend's fp32 session on the same model, when that backend is installed here."""
    from tinylm.plugins import get_manager

    backend = get_manager().backends().get("torch")
    if backend is None or not backend.availability().ok:
        return None
    return backend.open(replace(request, precision="fp32", artifact=None, options={}))


def _ids(vocab: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, min(vocab, 400), size=(1, n)).astype(np.int64)


def _greedy(session: Session, prompt: np.ndarray, n: int) -> list[int]:
    session.reset()
    logits, out = session.forward(prompt)[0], []
    for _ in range(n):
        out.append(int(np.argmax(logits)))
        logits = session.forward(np.array([[out[-1]]], np.int64))[0]
    return out


def perplexity(session: Session, ids: np.ndarray) -> float:
    """exp(mean next-token NLL) of ids (1, T) under a decoder session."""
    session.reset()
    logits = session.forward(ids, all_positions=True)[0, :-1].astype(np.float64)  # (T-1, V)
    logits -= logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return float(np.exp(-logp[np.arange(ids.shape[1] - 1), ids[0, 1:]].mean()))


def _decoder(ours: Session, ref: Session, vocab: int) -> dict[str, Any]:
    ids = _ids(vocab, POSITIONS, 0)
    ours.reset()
    ref.reset()
    diff = np.abs(ours.forward(ids, all_positions=True) - ref.forward(ids, all_positions=True)).max()
    prompt = _ids(vocab, PROMPT, 1)
    a, b = _greedy(ours, prompt, GREEDY), _greedy(ref, prompt, GREEDY)
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), GREEDY)
    return {
        "max_logit_diff": float(diff),
        "positions": POSITIONS,
        "greedy_agreement": float(np.mean(np.equal(a, b))),
        "greedy_same_prefix": same,
        "greedy_tokens": GREEDY,
    }


def _encoder(ours: Session, ref: Session, vocab: int) -> dict[str, Any]:
    ids = _ids(vocab, 16, 0).repeat(2, axis=0)
    mask = np.ones_like(ids)
    mask[1, 10:] = 0
    types = np.zeros_like(ids)
    diff = np.abs(ours.embed(ids, mask, types) - ref.embed(ids, mask, types))[mask.astype(bool)].max()
    return {"max_hidden_diff": float(diff), "positions": int(ids.shape[1])}


def measure(ours: Session, ref: Session, request: OpenRequest, reference: str) -> dict[str, Any]:
    """Parity of `ours` against `ref` (named `reference` in the record)."""
    spec = request.spec
    fn = _decoder if spec.kind == "decoder" else _encoder
    return {"reference": reference, **fn(ours, ref, spec.vocab_size)}


def heldout_ids(request: OpenRequest, limit: int) -> np.ndarray:
    """The held-out text in the model's tokens (1, T), at most `limit` of them."""
    from tinylm.source import ModelFolder

    ids = ModelFolder(request.folder).tokenizer.encode(TEXT)[:limit]
    return np.asarray(ids, np.int64)[None]
