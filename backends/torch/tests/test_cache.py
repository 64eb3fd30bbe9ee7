"""The torch KV cache beyond the shared conformance suite: its batch size is fixed until reset."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm.errors import GenerationError


def test_changing_the_batch_size_needs_a_reset(model_folder):
    model = tinylm.load(model_folder("llama"), backend="torch")
    session = model._live()
    ids = np.random.default_rng(0).integers(3, model.spec.vocab_size, (1, 4)).astype(np.int64)
    session.reset()
    session.forward(ids)
    with pytest.raises(GenerationError, match="reset"):
        session.forward(np.concatenate([ids, ids])[:, :1])
    session.reset()
    assert session.forward(np.concatenate([ids, ids])).shape == (2, model.spec.vocab_size)
