"""RoBERTa and XLM-RoBERTa encoders: the multilingual sentence embedders (multilingual-e5-small/base,
paraphrase-multilingual-MiniLM-L12-v2, sentence-transformers' xlm-r models).

BERT's block and names (under `roberta.` when saved from a task model), with one difference: position ids
start past the padding index (`padding_idx + 1`, so `max_position_embeddings` counts those rows too), which
tinylm reads as `ModelSpec.position_offset`. Token types: the table has one row (XLM-R) or two.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..spec import ModelSpec
from ._base import Family, Weights
from .bert import bert_config, bert_spec
from .bert import sanitize as bert_sanitize
from .bert import to_checkpoint as bert_to_checkpoint


def roberta_spec(cfg: dict[str, Any]) -> ModelSpec:
    spec = bert_spec(cfg)
    pad = int(cfg.get("pad_token_id", 1))
    offset = pad + 1
    return dataclasses.replace(
        spec,
        family="roberta",
        position_offset=offset,
        max_positions=int(cfg.get("max_position_embeddings", 514)) - offset,
        pad_token_id=pad,
    )


def roberta_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a (XLM-)RoBERTa spec (the inverse of `roberta_spec`), updating `base` if given (whose
    `model_type`, roberta or xlm-roberta, is kept; the two are the same architecture)."""
    return bert_config(dataclasses.replace(spec, max_positions=spec.max_positions + spec.position_offset), base)


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    plain = {n.removeprefix("roberta."): w for n, w in raw.items() if not n.startswith("lm_head.")}
    return bert_sanitize(plain, spec)


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> RobertaModel / XLMRobertaModel names (the inverse of `sanitize`)."""
    return bert_to_checkpoint(weights, spec)


ROBERTA = Family(
    name="roberta",
    model_types=("roberta", "xlm-roberta"),
    from_config=roberta_spec,
    sanitize=sanitize,
    to_config=roberta_config,
    to_checkpoint=to_checkpoint,
)
