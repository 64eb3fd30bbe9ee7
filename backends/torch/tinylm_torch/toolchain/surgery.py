"""Structured edits of canonical weights that keep a valid model of the same family.

Each function takes canonical numpy weights and their spec and returns new ones; nothing here
knows a checkpoint format. `check_representable` asks the family whether its config.json can
describe the result (e.g. BERT derives head_dim from hidden_size / num_heads, so it cannot drop heads).

Shapes: q (nh*hd, H), k/v (nkv*hd, H), o (H, nh*hd); gate/up (I, H), down (H, I); embed (V, H).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinylm.arch import family_for
from tinylm.arch.spec import ModelSpec

from .errors import PruneError

__all__ = [
    "Weights",
    "keep_layers",
    "keep_kv_groups",
    "keep_mlp_channels",
    "keep_vocab",
    "check_representable",
    "spaced_layers",
]

Weights = dict[str, np.ndarray]


def spaced_layers(num_layers: int, keep: int) -> list[int]:
    """`keep` layer indices spread evenly over `num_layers`, first and last included."""
    if not 1 <= keep <= num_layers:
        raise PruneError(f"cannot keep {keep} of {num_layers} layers. Fix: choose between 1 and {num_layers}.")
    return sorted({round(float(x)) for x in np.linspace(0, num_layers - 1, keep)})


def keep_layers(weights: Mapping[str, np.ndarray], spec: ModelSpec, keep: Sequence[int]) -> tuple[Weights, ModelSpec]:
    """Only the layers `keep` (in that order), renumbered from 0."""
    bad = [i for i in keep if not 0 <= i < spec.num_layers]
    if bad or not keep or len(set(keep)) != len(keep):
        raise PruneError(
            f"invalid layer selection {list(keep)} for a model of {spec.num_layers} layers. "
            f"Fix: pass distinct indices in 0..{spec.num_layers - 1}, at least one."
        )
    out: Weights = {n: w for n, w in weights.items() if not n.startswith("layers.")}
    for new, old in enumerate(keep):
        prefix = f"layers.{old}."
        for name, w in weights.items():
            if name.startswith(prefix):
                out[f"layers.{new}.{name[len(prefix) :]}"] = w
    return out, spec.with_layers(keep)


def _rows(blocks: Sequence[int], width: int) -> np.ndarray:
    """Row indices of the given blocks of `width` rows: [b * width, (b + 1) * width) for each b."""
    return (np.asarray(blocks, dtype=np.int64)[:, None] * width + np.arange(width)[None, :]).reshape(-1)


def keep_kv_groups(
    weights: Mapping[str, np.ndarray], spec: ModelSpec, keep: Mapping[int, Sequence[int]]
) -> tuple[Weights, ModelSpec]:
    """Keep, in each layer i, the kv groups `keep[i]` (a kv head and the query heads that share it).

    Every layer must keep the same number of groups (the spec has one head count); conv layers (LFM2) have none,
    and what `keep` lists for them is ignored."""
    counts = {len(g) for g in keep.values()}
    if len(counts) != 1 or set(keep) != set(range(spec.num_layers)):
        raise PruneError("keep the same number of kv groups in every layer. Fix: pass one group list per layer.")
    n_groups = counts.pop()
    g, hd = spec.num_heads // spec.num_kv_heads, spec.head_dim
    out = dict(weights)
    for i, groups in keep.items():
        if spec.mixer(i) != "attention":
            continue
        groups = sorted(groups)
        q_rows = _rows([grp * g + j for grp in groups for j in range(g)], hd)  # (kept nh * hd,)
        kv_rows = _rows(groups, hd)  # (kept nkv * hd,)
        p = f"layers.{i}.attn"
        for kind in ("weight", "bias"):
            if f"{p}.q.{kind}" in weights:
                out[f"{p}.q.{kind}"] = np.ascontiguousarray(weights[f"{p}.q.{kind}"][q_rows])
                out[f"{p}.k.{kind}"] = np.ascontiguousarray(weights[f"{p}.k.{kind}"][kv_rows])
                out[f"{p}.v.{kind}"] = np.ascontiguousarray(weights[f"{p}.v.{kind}"][kv_rows])
        out[f"{p}.o.weight"] = np.ascontiguousarray(weights[f"{p}.o.weight"][:, q_rows])  # (H, kept nh * hd)
    return out, dataclasses.replace(spec, num_heads=n_groups * g, num_kv_heads=n_groups)


def keep_mlp_channels(
    weights: Mapping[str, np.ndarray], spec: ModelSpec, keep: Mapping[int, Sequence[int]]
) -> tuple[Weights, ModelSpec]:
    """Keep, in each layer i, the intermediate channels `keep[i]` (same count in every layer)."""
    counts = {len(c) for c in keep.values()}
    if len(counts) != 1 or set(keep) != set(range(spec.num_layers)):
        raise PruneError("keep the same MLP width in every layer. Fix: pass one channel list per layer.")
    out = dict(weights)
    for i, channels in keep.items():
        idx = np.sort(np.asarray(channels, dtype=np.int64))
        p = f"layers.{i}.mlp"
        for part in ("gate", "up"):
            for kind in ("weight", "bias"):
                if f"{p}.{part}.{kind}" in weights:
                    out[f"{p}.{part}.{kind}"] = np.ascontiguousarray(weights[f"{p}.{part}.{kind}"][idx])
        out[f"{p}.down.weight"] = np.ascontiguousarray(weights[f"{p}.down.weight"][:, idx])  # (H, kept I)
    return out, dataclasses.replace(spec, intermediate_size=counts.pop())


def keep_vocab(
    weights: Mapping[str, np.ndarray], spec: ModelSpec, keep: Sequence[int]
) -> tuple[Weights, ModelSpec, dict[int, int]]:
    """Keep the token ids `keep` (sorted; new id = rank); returns the old -> new id map too."""
    ids = np.asarray(sorted(set(keep)), dtype=np.int64)
    mapping = {int(old): new for new, old in enumerate(ids)}
    out = dict(weights)
    out["embed.weight"] = np.ascontiguousarray(weights["embed.weight"][ids])  # (kept V, H)
    if "lm_head.weight" in weights:
        out["lm_head.weight"] = np.ascontiguousarray(weights["lm_head.weight"][ids])

    def remap(token: int | None) -> int | None:
        return None if token is None else mapping.get(token)

    spec = dataclasses.replace(
        spec,
        vocab_size=len(ids),
        bos_token_id=remap(spec.bos_token_id),
        pad_token_id=remap(spec.pad_token_id),
        eos_token_ids=tuple(mapping[t] for t in spec.eos_token_ids if t in mapping),
    )
    return out, spec, mapping


def check_representable(spec: ModelSpec, base_config: dict[str, Any] | None, *, what: str) -> None:
    """`PruneError` unless the family's config.json can describe `spec` exactly."""
    family = family_for({"model_type": (base_config or {}).get("model_type", spec.family)})
    back = family.from_config(family.to_config(spec, base_config))
    if dataclasses.replace(back, pooling=None) != dataclasses.replace(
        spec, pooling=None, source_dtype=back.source_dtype
    ):
        changed = [f.name for f in dataclasses.fields(spec) if getattr(back, f.name) != getattr(spec, f.name)]
        changed = [c for c in changed if c not in ("pooling", "source_dtype", "extra")]
        hint = (
            "prune layers, MLP width or vocabulary instead (this family derives head_dim from hidden_size / num_heads)"
            if "head_dim" in changed
            else "choose a pruning this family's config.json can describe"
        )
        raise PruneError(
            f"{what}: a {spec.family} config.json cannot describe the result (it would change "
            f"{', '.join(changed)}). Fix: {hint}."
        )
