"""Parity measured while converting, recorded in each artifact's metadata (tinylm-artifact.json).

One measurement for every converting backend, so their figures compare. Decoders: max |logit
difference| over 32 teacher-forced positions and greedy agreement over 16 tokens against the
reference (the backend that declares `Capabilities(reference=True)` — tinylm-torch — when it is
installed, else the converting backend's own fp32 build); for lossy precisions also the perplexity
change on `TEXT`. Encoders: max |hidden-state difference| on a padded batch, and the cosine similarity of each
sentence's embedding of `TEXT` (pooled as the model says) with the reference's: the figure the automatic choice
holds a lossy precision to (`tinylm.quality`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import OpenRequest, Session

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = ["reference_session", "measure", "greedy", "perplexity", "heldout_ids", "TEXT"]

POSITIONS, PROMPT, GREEDY = 32, 8, 16

#: Held-out text for the perplexity change of lossy precisions (written for tinylm; in no training set).
TEXT = (
    "The harbour town woke slowly. Fishing boats came back before dawn, and by the time the bakery opened "
    "the nets were already drying on the stone wall by the pier. Children walked to school along the "
    "seafront, counting the gulls on the railings, while their parents argued about the price of bread and "
    "the weather for the weekend. In the afternoon the wind turned, clouds gathered over the hills, and the "
    "ferry to the island left twenty minutes late. Nobody minded much. The captain said the sea was calm "
    "enough, the passengers drank tea in the small cabin, and an old man told anyone who would listen how "
    "the lighthouse had been built by his grandfather, one stone at a time, over three long summers. When "
    "the ferry returned in the evening, the streets were wet and shining, the lamps were lit, and the smell "
    "of frying fish drifted from the open door of the tavern on the corner."
)


def reference_session(request: OpenRequest) -> tuple[Session, str] | None:
    """An fp32 session of the reference backend (the one declaring `reference=True`) on the same
    model and its name, when such a backend is available here; else None."""
    from .plugins import get_manager

    manager = get_manager()
    for backend in manager.backends().values():
        caps = backend.capabilities
        if caps.reference and manager.availability(backend).ok and not caps.converts:
            devices = manager.devices(backend)
            if not devices:
                continue
            options = caps.options.parse("fp32", {}, backend=backend.name)
            fp32 = replace(request, precision="fp32", device=devices[0], artifact=None, meta={})
            return backend.open(replace(fp32, options=options)), f"{backend.name} fp32"
    return None


def _ids(vocab: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, min(vocab, 400), size=(1, n)).astype(np.int64)


def greedy(session: Session, prompt: np.ndarray, n: int) -> list[int]:
    """The `n` greedy tokens after `prompt` (1, T) from a fresh sequence of a decoder session."""
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
    a, b = greedy(ours, prompt, GREEDY), greedy(ref, prompt, GREEDY)
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


def sentences_cosine(ours: Session, ref: Session, request: OpenRequest, tokenizer: Tokenizer) -> dict[str, Any]:
    """Each sentence of `TEXT` embedded by both encoder sessions in one padded batch, pooled as the model says:
    the least and the mean cosine similarity of the pairs."""
    from .model import pool

    texts = [t.strip() + "." for t in TEXT.split(".") if t.strip()]
    rows, type_rows = tokenizer.encode_batch(texts, max_length=min(128, request.spec.max_positions))
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), request.spec.pad_token_id or 0, np.int64)  # (B, T)
    mask, types = np.zeros_like(ids), np.zeros_like(ids)
    for i, (row, trow) in enumerate(zip(rows, type_rows)):
        ids[i, : len(row)], mask[i, : len(row)], types[i, : len(row)] = row, 1, trow
    mode = request.spec.pooling.mode if request.spec.pooling else "mean"
    a, b = (pool(s.embed(ids, mask, types).astype(np.float64), mask, mode) for s in (ours, ref))  # (B, H) each
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)  # (B,)
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "cosine_sentences": len(texts)}


def measure(
    ours: Session, ref: Session, request: OpenRequest, reference: str, tokenizer: Tokenizer | None = None
) -> dict[str, Any]:
    """Parity of `ours` against `ref` (named `reference` in the record); an encoder's sentence cosines with
    `tokenizer` (the model's, else read from its folder)."""
    spec = request.spec
    if spec.kind == "decoder":
        return {"reference": reference, **_decoder(ours, ref, spec.vocab_size)}
    if tokenizer is None:
        from .source import ModelFolder

        tokenizer = ModelFolder(request.folder).tokenizer
    cosine = sentences_cosine(ours, ref, request, tokenizer)
    return {"reference": reference, **_encoder(ours, ref, spec.vocab_size), **cosine}


def heldout_ids(request: OpenRequest, limit: int, tokenizer: Tokenizer | None = None) -> np.ndarray:
    """The held-out text in the model's tokens (1, T), at most `limit` of them (with `tokenizer` when the
    caller has it loaded, else the model folder's)."""
    if tokenizer is None:
        from .source import ModelFolder

        tokenizer = ModelFolder(request.folder).tokenizer
    ids = tokenizer.encode(TEXT)[:limit]
    return np.asarray(ids, np.int64)[None]


def record(
    ours: Session,
    fp32: Session | None,
    request: OpenRequest,
    *,
    backend: str,
    max_tokens: int,
    tokenizer: Tokenizer | None = None,
) -> dict[str, Any]:
    """The metadata the conversion pipeline stores: parity against the reference backend (or, without it,
    against `fp32`, the converting backend's own fp32 build) and, when `fp32` is given, the perplexity change.

    `ours` is the session under test; `fp32` is None at fp32 itself. The caller closes both.
    """
    out: dict[str, Any] = {}
    found = reference_session(request)
    ref, name = found if found is not None else (fp32, f"{backend} fp32 (the reference backend is not installed)")
    if ref is None:
        out["parity"] = {"reference": None, "note": "no reference here: install tinylm-torch to measure"}
    else:
        out["parity"] = measure(ours, ref, request, name, tokenizer)
    if found is not None:
        found[0].close()
    if fp32 is not None and request.spec.kind == "decoder":
        ids = heldout_ids(request, max_tokens, tokenizer)
        base, quant = perplexity(fp32, ids), perplexity(ours, ids)
        out["perplexity"] = {
            "text": "tinylm.parity.TEXT",
            "tokens": int(ids.shape[1]),
            "fp32": base,
            request.precision: quant,
            "change": quant - base,
            "relative_change": quant / base - 1.0,
        }
    return out
