"""ModernBERT specifics beyond the conformance suite: the configs checkpoints on the Hub carry (the pre-5.0 keys),
masked-LM checkpoints (weights under `model.`, a prediction head beside them), padded batches against each text
alone, and what cannot be written back."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from tinylm.arch import family_for
from tinylm.errors import UnsupportedArchitecture

transformers = pytest.importorskip("transformers", reason="transformers is the test oracle (pip install tinylm[test])")

# answerdotai/ModernBERT-base's config.json keys (transformers 4.47 era), shrunk
HUB_STYLE = {
    "architectures": ["ModernBertForMaskedLM"],
    "model_type": "modernbert",
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 5,
    "num_attention_heads": 4,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "local_attention": 16,
    "local_rope_theta": 10000.0,
    "hidden_activation": "gelu",
    "max_position_embeddings": 128,
    "norm_bias": False,
    "norm_eps": 1e-05,
    "attention_bias": False,
    "mlp_bias": False,
    "vocab_size": 384,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "cls_token_id": 2,
    "eos_token_id": 3,
    "sep_token_id": 3,
    "position_embedding_type": "absolute",
    "classifier_pooling": "mean",
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}


def test_hub_config_reads_as_transformers_5_saves_it():
    old = family_for(HUB_STYLE).from_config(HUB_STYLE)
    saved = transformers.ModernBertConfig(**{k: v for k, v in HUB_STYLE.items() if k != "model_type"}).to_dict()
    assert "layer_types" in saved and "global_rope_theta" not in saved
    assert family_for(saved).from_config(saved) == old
    assert [old.window(i) for i in range(5)] == [None, 16, 16, None, 16]  # global every 3rd layer, from layer 0
    assert (old.rope.theta, old.local_rope.theta) == (160000.0, 10000.0)
    assert [old.rope_kind(i) for i in range(5)] == ["global", "local", "local", "global", "local"]
    assert old.no_attn_norm_layers == (0,) and not old.norm.bias and old.gated_mlp and old.activation == "gelu"


def test_pruned_first_layer_cannot_be_written_as_modernbert():
    family = family_for(HUB_STYLE)
    spec = family.from_config(HUB_STYLE)
    with pytest.raises(UnsupportedArchitecture, match=r"layer 0.*Fix: "):
        family.to_config(spec.with_layers([1, 2]))
    assert family.from_config(family.to_config(spec.with_layers([0, 3]))) == spec.with_layers([0, 3])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    pytest.importorskip("torch")
    from tinylm.testing.models import build_model

    return build_model("modernbert", tmp_path_factory.mktemp("modernbert") / "m")


def test_masked_lm_checkpoint_embeds_as_its_encoder(folder, tmp_path):
    """ModernBERT-base is saved as ModernBertForMaskedLM: `model.` prefix, `head.` and `decoder.` beside it."""
    import torch

    import tinylm

    encoder = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    mlm = transformers.ModernBertForMaskedLM(encoder.config)
    mlm.model.load_state_dict(encoder.state_dict())
    other = tmp_path / "mlm"
    shutil.copytree(folder, other)
    (other / "model.safetensors").unlink()
    mlm.save_pretrained(other, safe_serialization=True)
    from safetensors import safe_open

    with safe_open(other / "model.safetensors", "np") as f:
        names = set(f.keys())
    assert any(n.startswith("model.layers.") for n in names) and any(n.startswith("head.") for n in names)
    texts = ["where is my parcel?", "a refund please " * 12]
    with tinylm.load(folder, backend="torch") as a, tinylm.load(other, backend="torch") as b:
        np.testing.assert_array_equal(a.embed(texts), b.embed(texts))


@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_padded_batch_equals_each_text_alone(folder, backend):
    """Unpadded semantics: a text's embedding does not depend on the longer texts it is batched with (40+ tokens
    against a local window of 16), and equals transformers run on that text alone."""
    pytest.importorskip(f"tinylm_{backend}")
    import tinylm
    from tinylm.testing.conformance import LONG_TEXT, reference

    texts = ["short one", LONG_TEXT, "a middle sized sentence about a parcel that never came"]
    with tinylm.load(folder, backend=backend) as model:
        batched = model.embed(texts)
        alone = np.stack([model.embed(t) for t in texts])
        ids = [model.tokenizer.encode_batch([t])[0][0] for t in texts]
    ref = reference(folder)
    ones = [np.ones((1, len(r)), np.int64) for r in ids]
    want = np.concatenate([ref.pooled(np.asarray([r]), m, 0 * m, "cls") for r, m in zip(ids, ones)])
    assert max(map(len, ids)) >= 40
    assert float(np.abs(batched - alone).max()) <= 1e-5
    assert float(np.abs(batched - want).max()) <= 1e-4


def test_spec_rejects_attn_norm_skips_on_post_norm_blocks():
    spec = family_for(HUB_STYLE).from_config(HUB_STYLE)
    with pytest.raises(ValueError, match="input norms"):
        dataclasses.replace(spec, norm_placement="post")
