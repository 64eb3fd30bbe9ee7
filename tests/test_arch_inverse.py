"""The inverses of each family's readers: `to_config` undoes `from_config`, `to_checkpoint` undoes `sanitize`.

They write trained, distilled and pruned models back out in Hugging Face layout, so a round trip
must be exact: canonical -> checkpoint -> sanitize == canonical, and spec -> config -> spec == spec.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinylm.arch import FAMILIES, expected_shapes, family_for
from tinylm.testing.models import VARIANTS

transformers = pytest.importorskip("transformers", reason="transformers is the test oracle (pip install tinylm[test])")

SMALL = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96, num_hidden_layers=2)
LLAMA3_ROPE = VARIANTS["llama-rope-llama3"]["kwargs"]["rope_parameters"]  # the conformance suite's llama3 scaling

CASES = {
    "llama": ("LlamaConfig", SMALL),
    "llama-untied-bias": (
        "LlamaConfig",
        {**SMALL, "tie_word_embeddings": False, "attention_bias": True, "mlp_bias": True},
    ),
    "llama-rope-llama3": ("LlamaConfig", {**SMALL, "rope_parameters": LLAMA3_ROPE}),
    "mistral": ("MistralConfig", {**SMALL, "sliding_window": 16}),
    "qwen2": ("Qwen2Config", SMALL),
    "qwen3": ("Qwen3Config", {**SMALL, "head_dim": 24}),
    "phi3": ("Phi3Config", {**SMALL, "partial_rotary_factor": 0.5}),
    "gemma": ("GemmaConfig", {**SMALL, "head_dim": 16}),
    "granite": (
        "GraniteConfig",
        {
            **SMALL,
            "embedding_multiplier": 12.0,
            "residual_multiplier": 0.22,
            "attention_multiplier": 0.015625,
            "logits_scaling": 8.0,
        },
    ),
    "olmo2": ("Olmo2Config", SMALL),
    "gemma3": (
        "Gemma3TextConfig",
        {**SMALL, "head_dim": 16, "num_hidden_layers": 6, "sliding_window": 8, "_sliding_window_pattern": 3},
    ),
    "gemma2": ("Gemma2Config", {**SMALL, "head_dim": 16, "num_hidden_layers": 4, "sliding_window": 8}),
    "smollm3": ("SmolLM3Config", {**SMALL, "num_hidden_layers": 4, "no_rope_layer_interval": 2}),
    "smollm3-window": (
        "SmolLM3Config",
        {**SMALL, "num_hidden_layers": 4, "no_rope_layer_interval": 2, "use_sliding_window": True, "sliding_window": 8},
    ),
    "lfm2": (
        "Lfm2Config",
        {**SMALL, "num_hidden_layers": 3, "layer_types": ["full_attention", "conv", "conv"], "conv_L_cache": 4},
    ),
    "lfm2-untied": (
        "Lfm2Config",
        {
            **SMALL,
            "head_dim": 24,
            "full_attn_idxs": [1],
            "conv_bias": True,
            "tie_word_embeddings": False,
            "block_multiple_of": 32,
        },
    ),
    "gpt2": ("GPT2Config", dict(n_embd=64, n_head=4, n_layer=2)),
    "gpt2-untied": ("GPT2Config", dict(n_embd=64, n_head=4, n_layer=2, tie_word_embeddings=False)),
    "bert": ("BertConfig", {**SMALL, "num_key_value_heads": None}),
    "roberta": ("RobertaConfig", {**SMALL, "num_key_value_heads": None}),
    "xlm-roberta": ("XLMRobertaConfig", {**SMALL, "num_key_value_heads": None, "type_vocab_size": 1}),
    "gemma3-multimodal": (
        "Gemma3Config",
        {
            "text_config": {**SMALL, "head_dim": 16, "sliding_window": 8, "tie_word_embeddings": False},
            "vision_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2},
            "tie_word_embeddings": False,
        },
    ),
    "modernbert": (
        "ModernBertConfig",
        {**SMALL, "num_key_value_heads": None, "num_hidden_layers": 3, "local_attention": 16, "norm_bias": True},
    ),
}


def _config(case: str) -> dict:
    cls, kwargs = CASES[case]
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return getattr(transformers, cls)(**kwargs).to_dict()


def test_every_family_has_both_inverses():
    covered = {family_for(_config(case)).name for case in CASES}
    assert covered == {f.name for f in FAMILIES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
    original = _config(case)
    family = family_for(original)
    spec = family.from_config(original)
    fresh = family.to_config(spec)  # from the spec alone (a model trained from scratch)
    assert family_for(fresh) is family
    assert family.from_config(fresh) == spec
    updated = family.to_config(spec, original)  # the original config, updated
    assert family.from_config(updated) == spec
    keep = [0, 2] if spec.no_attn_norm_layers else [1]  # ModernBERT: its first layer (no attn_norm) stays first
    smaller = dataclasses.replace(spec.with_layers(keep), intermediate_size=spec.intermediate_size // 2, vocab_size=77)
    assert family.from_config(family.to_config(smaller, original)) == smaller


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_round_trip(case):
    family = family_for(_config(case))
    spec = family.from_config(_config(case))
    rng = np.random.default_rng(0)
    canonical = {n: rng.standard_normal(s).astype(np.float32) for n, s in expected_shapes(spec).items()}
    checkpoint = family.to_checkpoint(canonical, spec)
    renamed = {n for n in canonical if n.startswith("layers.") and (".attn." in n or ".mlp." in n)}
    assert not set(checkpoint) & renamed  # names really change
    back = family.sanitize(checkpoint, spec)
    assert back.keys() == canonical.keys()
    for name, array in canonical.items():
        np.testing.assert_array_equal(back[name], array, err_msg=name)


@pytest.mark.parametrize(
    "variant",
    [
        "llama",
        "llama-mha-untied",
        "qwen3",
        "phi3",
        "gemma",
        "gpt2",
        "bert",
        "modernbert",
        "modernbert-mean",
        "gemma3-multimodal",
        "lfm2",
        "lfm2-k4",
    ],
)
def test_checkpoint_names_are_the_ones_transformers_saves(variant, tmp_path):
    pytest.importorskip("torch")
    from tinylm.source import ModelFolder
    from tinylm.testing.models import build_model
    from tinylm.weights import CheckpointWeights, weight_files

    folder = ModelFolder(build_model(variant, tmp_path / variant))
    raw = CheckpointWeights(weight_files(folder.path))
    written = folder.family.to_checkpoint(folder.weights(), folder.spec)
    # what sanitize drops on purpose: GPT-2's causal-mask buffers, BERT's pooler (unused for embeddings), Gemma 3's
    # vision tower and projector (tinylm runs the text model)
    dropped = ("pooler.", "vision_tower.", "multi_modal_projector.")
    kept = {n for n in raw if not n.endswith((".attn.bias", ".attn.masked_bias")) and not n.startswith(dropped)}
    assert set(written) == kept
    for name in written:
        np.testing.assert_array_equal(written[name], raw[name], err_msg=name)
