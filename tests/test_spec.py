"""The architecture description: every family parses from transformers' own configs."""

from __future__ import annotations

import numpy as np
import pytest

from tinylm.arch import expected_shapes, family_for
from tinylm.arch.rope import inv_freq
from tinylm.errors import UnsupportedArchitecture

transformers = pytest.importorskip("transformers", reason="transformers is the test oracle (pip install tinylm[test])")

SMALL = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96, num_hidden_layers=2)

CASES = {
    "llama": ("LlamaConfig", SMALL, dict(num_kv_heads=2, head_dim=16, gated_mlp=True, tie_embeddings=False)),
    "mistral": ("MistralConfig", SMALL, dict(num_kv_heads=2, sliding_window=4096)),
    "qwen2": ("Qwen2Config", SMALL, dict(qkv_bias=True, out_bias=False, sliding_window=None)),
    "qwen3": ("Qwen3Config", {**SMALL, "head_dim": 24}, dict(qk_norm=True, head_dim=24)),
    "phi3": ("Phi3Config", {**SMALL, "partial_rotary_factor": 0.5}, dict(family="phi3")),
    "gemma": (
        "GemmaConfig",
        {**SMALL, "head_dim": 16},
        dict(embed_scale=8.0, tie_embeddings=True, activation="gelu_tanh"),
    ),
    "gpt2": (
        "GPT2Config",
        dict(n_embd=64, n_head=4, n_layer=2),
        dict(gated_mlp=False, learned_positions=True, intermediate_size=256),
    ),
    "bert": (
        "BertConfig",
        {**SMALL, "num_key_value_heads": None},
        dict(kind="encoder", norm_placement="post", final_norm=False),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_family_parses_transformers_config(name):
    cls_name, kwargs, expect = CASES[name]
    config = getattr(transformers, cls_name)(**{k: v for k, v in kwargs.items() if v is not None})
    spec = family_for(config.to_dict()).from_config(config.to_dict())
    assert spec.num_layers == 2 and spec.hidden_size == 64
    for key, value in expect.items():
        assert getattr(spec, key) == value, key
    assert expected_shapes(spec)["embed.weight"] == (spec.vocab_size, 64)
    if name == "phi3":
        assert spec.rope is not None and spec.rope.rotary_dim == spec.head_dim // 2


def test_old_style_rope_keys_are_read():
    cfg = {
        "model_type": "llama",
        **SMALL,
        "vocab_size": 100,
        "rope_theta": 500000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0},
    }
    spec = family_for(cfg).from_config(cfg)
    assert spec.rope.theta == 500000.0 and spec.rope.scaling == {"rope_type": "linear", "factor": 2.0}


@pytest.mark.parametrize(
    "scaling",
    [
        {"rope_type": "linear", "factor": 4.0},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 256,
        },
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256},
        {"rope_type": "dynamic", "factor": 2.0},
    ],
    ids=lambda s: s["rope_type"],
)
def test_rope_frequencies_match_transformers(scaling):
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = transformers.LlamaConfig(
        **SMALL, max_position_embeddings=1024, rope_parameters={"rope_theta": 10000.0, **scaling}
    )
    spec = family_for(config.to_dict()).from_config(config.to_dict())
    ours, factor = inv_freq(spec.rope)
    kind = scaling["rope_type"]
    if kind == "dynamic":  # static within the original context: the default frequencies
        ref, ref_factor = ROPE_INIT_FUNCTIONS["dynamic"](config, "cpu", seq_len=16)
    else:
        ref, ref_factor = ROPE_INIT_FUNCTIONS[kind](config, "cpu")
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-6)
    assert factor == pytest.approx(ref_factor)


def test_unknown_family_is_a_typed_error_naming_the_supported_ones():
    with pytest.raises(UnsupportedArchitecture) as err:
        family_for({"model_type": "mamba"})
    message = str(err.value)
    for family in ("llama", "qwen2", "qwen3", "phi3", "gemma", "gpt2", "bert"):
        assert family in message
    assert "Fix" in message


def test_unsupported_variant_is_refused_with_a_reason():
    config = transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(UnsupportedArchitecture, match="scale_attn_by_inverse_layer_idx"):
        family_for(config.to_dict()).from_config(config.to_dict())
