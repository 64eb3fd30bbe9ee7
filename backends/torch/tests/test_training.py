"""The module trains: the cache-free forward is differentiable and equals the session; weights round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tinylm_torch.session import TorchSession
from tinylm_torch.weights import build_transformer, to_canonical

from tinylm.source import ModelFolder


@pytest.mark.parametrize("variant", ["llama", "gemma", "phi3", "gpt2"])
def test_forward_backward_and_round_trip(variant, model_folder):
    source = ModelFolder(model_folder(variant))
    weights = source.weights()
    model = build_transformer(source.spec, weights).train()
    ids = torch.from_numpy(np.random.default_rng(0).integers(3, source.spec.vocab_size, (2, 16)))
    logits = model(ids)  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    session = TorchSession(build_transformer(source.spec, weights, decode_layout=True).eval(), dtype=torch.float32)
    expected = session.forward(ids.numpy(), all_positions=True)
    np.testing.assert_allclose(logits.detach().numpy(), expected, atol=1e-5, rtol=0)

    back = to_canonical(model)
    assert back.keys() == weights.keys()
    for name, array in weights.items():
        np.testing.assert_allclose(back[name], array, atol=1e-6, rtol=0, err_msg=name)
