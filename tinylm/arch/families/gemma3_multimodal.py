"""The text model of Gemma 3's multimodal checkpoints (gemma-3-4b/12b/27b(-it), `model_type` "gemma3",
Gemma3ForConditionalGeneration): read as the `gemma3_text` family.

    config.json   {"model_type": "gemma3", "text_config": {...}, "vision_config": {...}, ...}
    weights       language_model.model.* and language_model.lm_head.* (as transformers 4.50-5.x save them) or
                  model.language_model.* and lm_head.*; vision_tower.* and multi_modal_projector.* are not read

The vision tower (SigLIP) and its projector are ignored: tinylm runs the text model, so prompts are text and an
image part in a chat message is refused (`tinylm.arguments.messages`). A Hub config's `text_config` lists only
what differs from Gemma3TextConfig's defaults (gemma-3-4b-it gives sizes, layer count, sliding window and a
linear rope scaling), so the defaults are filled in here; token ids missing from it come from the top level.
Written back (`to_config` / `to_checkpoint`), the folder is a Gemma3ForConditionalGeneration config (the original's
vision config kept) with the text model's weights only: transformers loads it with a freshly initialised vision
tower. Write `gemma3_text` instead for a text-only model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedArchitecture
from ..spec import ModelSpec
from ._base import Family, Weights, rename
from .gemma3 import gemma3_config, gemma3_spec
from .gemma3 import sanitize as text_sanitize
from .gemma3 import to_checkpoint as text_to_checkpoint

# Gemma3TextConfig's defaults (transformers 4.50-5.25), for the keys a Hub text_config leaves out
TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
    "attention_bias": False,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
}
_OLD_ROPE_DEFAULTS = {"rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0}
_TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id")

_RULES = [
    (r"^model\.language_model\.", "model."),
    (r"^language_model\.model\.", "model."),
    (r"^language_model\.lm_head\.", "lm_head."),
]
_DROP = (r"^(?:model\.)?vision_tower\.", r"^(?:model\.)?multi_modal_projector\.")
_INVERSE = [(r"^model\.", "language_model.model."), (r"^lm_head\.", "language_model.lm_head.")]


def text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The complete text config of a multimodal Gemma 3 config.json: its `text_config` over Gemma3TextConfig's
    defaults, token ids from the top level where the text config has none."""
    text = cfg.get("text_config")
    if not isinstance(text, dict):
        raise UnsupportedArchitecture(
            "gemma3: config.json has model_type 'gemma3' but no text_config. Fix: use the checkpoint's own "
            "config.json (a Gemma3ForConditionalGeneration config), or model_type 'gemma3_text' for a text model."
        )
    out = {**TEXT_DEFAULTS, **{k: cfg[k] for k in _TOKENS if cfg.get(k) is not None}, **text}
    if not any(k in text for k in ("rope_parameters", "rope_theta")):
        out = {**out, **{k: v for k, v in _OLD_ROPE_DEFAULTS.items() if k not in text}}
    if "tie_word_embeddings" in cfg:  # the top level decides (Gemma3ForConditionalGeneration ties from it)
        out["tie_word_embeddings"] = cfg["tie_word_embeddings"]
    out.setdefault("tie_word_embeddings", True)
    out["model_type"] = "gemma3_text"
    return out


def gemma3_multimodal_spec(cfg: dict[str, Any]) -> ModelSpec:
    return gemma3_spec(text_config(cfg))


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The language model's tensors renamed to Gemma3ForCausalLM's, then read as gemma3_text; vision dropped."""
    return text_sanitize(rename(raw, _RULES, drop=_DROP), spec)


def gemma3_multimodal_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Gemma3ForConditionalGeneration config.json whose text_config describes `spec` (the inverse of
    `gemma3_multimodal_spec`); the rest of `base` (vision config, image token ids) is kept."""
    out = dict(base or {})
    text = gemma3_config(spec, text_config(base) if base and "text_config" in base else None)
    for key in ("rope_local_base_freq", "sliding_window_pattern", "_sliding_window_pattern"):
        text.pop(key, None)
    out.update(model_type="gemma3", text_config=text, tie_word_embeddings=spec.tie_embeddings)
    out.pop("dtype", None)
    out["architectures"] = ["Gemma3ForConditionalGeneration"]
    return out


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> the language model's names in a Gemma3ForConditionalGeneration checkpoint."""
    return rename(text_to_checkpoint(weights, spec), _INVERSE)


GEMMA3_MULTIMODAL = Family(
    name="gemma3",
    model_types=("gemma3",),
    from_config=gemma3_multimodal_spec,
    sanitize=sanitize,
    to_config=gemma3_multimodal_config,
    to_checkpoint=to_checkpoint,
)

__all__ = ["GEMMA3_MULTIMODAL", "text_config", "TEXT_DEFAULTS"]
