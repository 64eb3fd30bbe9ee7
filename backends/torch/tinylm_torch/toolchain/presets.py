"""Model sizes for training from scratch, and the config.json of a new model of a chosen family.

The config is built in the family's own format and read back through the family (`from_config`),
so the spec, and the config.json later written from it (`to_config`), are the family's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinylm.arch import family_for
from tinylm.arch.spec import ModelSpec

from .errors import ToolchainError

__all__ = ["Size", "SIZES", "scratch_spec", "SCRATCH_FAMILIES"]


@dataclass(frozen=True, kw_only=True)
class Size:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


SIZES: dict[str, Size] = {
    "tiny": Size(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=192),
    "small": Size(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384),
    "base": Size(hidden=256, layers=6, heads=8, kv_heads=4, intermediate=768),
    "medium": Size(hidden=512, layers=8, heads=8, kv_heads=4, intermediate=1536),
}
SCRATCH_FAMILIES = (
    *("llama", "qwen2", "qwen3", "gemma", "phi3", "gpt2"),
    *("gemma2", "gemma3_text", "smollm3", "olmo2", "granite"),
)


def scratch_spec(
    family: str, size: Size, *, vocab_size: int, max_positions: int, bos: int | None, eos: int | None, pad: int | None
) -> ModelSpec:
    """The spec of a new decoder of `family` and `size` (tied embeddings; GPT-2: no kv groups; Gemma 2 / 3: sliding
    windows of max_positions / 4 on their local layers; the rest as the family's config defaults say)."""
    if family not in SCRATCH_FAMILIES:
        raise ToolchainError(
            f"cannot train a {family!r} model from scratch (decoder families: {', '.join(SCRATCH_FAMILIES)}). "
            "Fix: pick one of those; make an embedding model with `tinylm distill` from a teacher."
        )
    ids = {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "vocab_size": vocab_size}
    cfg: dict[str, Any]
    if family == "gpt2":
        cfg = {
            "model_type": "gpt2",
            "n_embd": size.hidden,
            "n_head": size.heads,
            "n_layer": size.layers,
            "n_inner": size.intermediate,
            "n_positions": max_positions,
        }
    else:
        cfg = {
            "model_type": family,
            "hidden_size": size.hidden,
            "num_attention_heads": size.heads,
            "num_key_value_heads": size.kv_heads,
            "num_hidden_layers": size.layers,
            "intermediate_size": size.intermediate,
            "max_position_embeddings": max_positions,
            "rms_norm_eps": 1e-5,
            "use_sliding_window": False,
        }
    if family in ("gemma2", "gemma3_text"):  # their local layers (alternating; five of six) see a quarter of it
        cfg["sliding_window"] = max(1, max_positions // 4)
    return family_for(cfg).from_config({**cfg, **ids, "tie_word_embeddings": True})
