"""bf16 and int8: they load, generate, and stay close to fp32 (bounds a broken implementation would miss).

Measured on the tiny models (max |logit diff| / max |logit|): bf16 ~0.02-0.04, int8 ~0.04-0.06 for
Llama-like models; the bounds below leave about 3x room.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm

VARIANTS = ["llama", "qwen2", "gpt2", "llama-mha-untied"]
BOUNDS = {"bf16": 0.12, "int8": 0.2}


@pytest.mark.parametrize("precision", ["bf16", "int8"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_close_to_fp32(variant, precision, model_folder):
    folder = model_folder(variant)
    ref = tinylm.load(folder, backend="torch")
    model = tinylm.load(folder, backend="torch", precision=precision)
    assert model.precision == precision
    ids = np.random.default_rng(0).integers(3, model.spec.vocab_size, 32)
    expected, got = ref.logits(ids), model.logits(ids)
    assert got.dtype == np.float32 and got.shape == expected.shape
    relative = float(np.abs(got - expected).max() / np.abs(expected).max())
    agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
    print(f"{variant} {precision}: max rel logit diff {relative:.3f}, top-1 agreement {agree:.2f}")
    assert relative < BOUNDS[precision]
    assert agree >= 0.8


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_generate(precision, model_folder):
    folder = model_folder("smollm")
    ref = tinylm.load(folder, backend="torch").generate("The quick brown fox", max_new_tokens=4, ignore_eos=True)
    out = tinylm.load(folder, backend="torch", precision=precision).generate(
        "The quick brown fox", max_new_tokens=16, ignore_eos=True
    )
    assert out.usage.completion_tokens == 16
    assert out.token_ids[:2] == ref.token_ids[:2]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_embed(precision, model_folder):
    folder = model_folder("bert")
    texts = ["hello world", "café 東京 😀"]
    expected = tinylm.load(folder, backend="torch").embed(texts)
    got = tinylm.load(folder, backend="torch", precision=precision).embed(texts)
    cosine = (got * expected).sum(-1)
    assert (cosine > 0.99).all()


def test_unknown_precision(model_folder):
    with pytest.raises(tinylm.PrecisionUnsupported, match="Fix:"):
        tinylm.load(model_folder("llama"), backend="torch", precision="int4")
