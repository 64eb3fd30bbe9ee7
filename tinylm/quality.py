"""The quality bar a lossy precision must keep before the automatic choice runs it, per model kind.

Measured once per artifact, when it is built (`tinylm.parity`, recorded in its metadata under "parity"), against
the reference backend's fp32 (tinylm-torch) or, without it, the backend's own fp32 build:

    encoder   every sentence of `tinylm.parity.TEXT`, embedded and pooled as the model says, has cosine similarity
              >= ENCODER_MIN_COSINE with the reference's embedding ("cosine_min"). On all-MiniLM-L6-v2 the lossy
              precisions that pass keep >= 99% of fp32's retrieval MRR on recipes/eval/faq_retrieval*.jsonl
              (docs/choosing-a-backend.md, "Embedders"), above the embedder's bar of 95% of the teacher's.
    decoder   greedy agreement >= DECODER_MIN_AGREEMENT over the parity prompt's tokens.

A user who names the precision gets it whatever it measures; the bar only gates what tinylm picks by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ENCODER_MIN_COSINE", "DECODER_MIN_AGREEMENT", "verdict"]

ENCODER_MIN_COSINE = 0.99
DECODER_MIN_AGREEMENT = 0.9


def verdict(meta: Mapping[str, Any], kind: str) -> tuple[bool, str]:
    """Whether an artifact's recorded parity (`meta`, its tinylm-artifact.json) keeps the bar of `kind`, and
    the figure in words. Not measured (parity=False, or no session to measure against) does not keep it."""
    parity = meta.get("parity") or {}
    if kind == "encoder":
        value, bar, what = parity.get("cosine_min"), ENCODER_MIN_COSINE, "embeddings' least cosine with fp32"
    else:
        value, bar, what = parity.get("greedy_agreement"), DECODER_MIN_AGREEMENT, "greedy agreement with fp32"
    if value is None:
        return False, f"{what} not measured"
    return value >= bar, f"{what} {value:.4f} {'>=' if value >= bar else '<'} {bar}"
