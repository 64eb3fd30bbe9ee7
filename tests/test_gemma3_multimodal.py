"""Gemma 3's multimodal checkpoints (Gemma3ForConditionalGeneration, model_type "gemma3") load as their text model.

The conformance suite runs the `gemma3-multimodal` variant (text-only logits against transformers'
Gemma3ForConditionalGeneration on every backend); these check what it does not: a Hub config whose text_config
lists only the non-default keys, the weight layouts, and the refusal of image inputs."""

from __future__ import annotations

import dataclasses

import pytest

import tinylm
from tinylm.arch import family_for
from tinylm.errors import InvalidArgument, UnsupportedArchitecture

transformers = pytest.importorskip("transformers", reason="transformers is the test oracle (pip install tinylm[test])")

# google/gemma-3-4b-it's config.json (the text_config as the Hub has it; the vision config shortened)
HUB_4B = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "eos_token_id": [1, 106],
    "image_token_index": 262144,
    "initializer_range": 0.02,
    "mm_tokens_per_image": 256,
    "model_type": "gemma3",
    "text_config": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "model_type": "gemma3_text",
        "num_hidden_layers": 34,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
    },
    "torch_dtype": "bfloat16",
    "transformers_version": "4.50.0.dev0",
    "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model", "num_hidden_layers": 27},
}


def test_hub_text_config_is_completed_with_transformers_defaults():
    spec = family_for(HUB_4B).from_config(HUB_4B)
    full = transformers.Gemma3TextConfig(**{k: v for k, v in HUB_4B["text_config"].items() if k != "model_type"})
    reference = family_for(full.to_dict()).from_config(full.to_dict())
    assert spec.family == "gemma3_text"
    sizes = (spec.hidden_size, spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.head_dim)
    assert sizes == (2560, 34, 8, 4, 256)
    assert spec.rope.theta == 1e6 and spec.rope.scaling["factor"] == 8.0 and spec.local_rope.theta == 1e4
    assert spec.local_rope.scaling is None  # the linear scaling is the global layers' only
    assert [spec.window(i) for i in range(6)] == [1024] * 5 + [None]
    assert spec.eos_token_ids == (1, 106)  # from the top level: the text config has none
    assert spec == dataclasses.replace(reference, eos_token_ids=(1, 106), source_dtype=spec.source_dtype)


def test_config_without_text_config_is_refused():
    with pytest.raises(UnsupportedArchitecture, match=r"text_config.*Fix: "):
        family_for({"model_type": "gemma3"}).from_config({"model_type": "gemma3"})


@pytest.mark.parametrize("part", [{"type": "image", "url": "x.png"}, {"type": "image_url", "image_url": {"url": "x"}}])
def test_image_parts_are_refused_with_the_reason(tmp_path, part):
    pytest.importorskip("torch")
    from tinylm.testing.models import build_model

    folder = build_model("gemma3-multimodal", tmp_path / "g")
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, part]}]
    with tinylm.load(folder, backend="torch") as model:
        with pytest.raises(InvalidArgument, match=r"image part.*text model.*Fix: "):
            model.chat(messages, max_new_tokens=2)
        assert model.chat([{"role": "user", "content": "hello"}], max_new_tokens=2).usage.completion_tokens <= 2
