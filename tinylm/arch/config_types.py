"""The types of the `config.json` values the families read, checked before any family computes with them.

A string where a number belongs (`"num_attention_heads": "four"`) would otherwise surface as whatever Python
says when the family divides by it ("not all arguments converted during string formatting").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_config_types"]

INTEGERS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "max_position_embeddings",
    "original_max_position_embeddings",
    "type_vocab_size",
    "sliding_window",
    "n_embd",
    "n_head",
    "n_layer",
    "n_inner",
    "n_positions",
    "bos_token_id",
    "pad_token_id",
)
NUMBERS = ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "partial_rotary_factor")


def check_config_types(config: Mapping[str, Any]) -> str | None:
    """What is wrong with the type of a value `config` holds (one sentence), or None when all are right."""
    for key in INTEGERS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{key} is {value!r} ({type(value).__name__}); it must be an integer"
    for key in NUMBERS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{key} is {value!r} ({type(value).__name__}); it must be a number"
    eos = config.get("eos_token_id")
    if eos is not None and not all(
        isinstance(i, int) and not isinstance(i, bool) for i in (eos if isinstance(eos, list) else [eos])
    ):
        return f"eos_token_id is {eos!r}; it must be an integer or a list of integers"
    return None
