"""Speculative decoding's pattern on one onnx session: verification passes (a few tokens, all positions) of varying
lengths, truncations back into them, one-token steps on the step's bound buffers, and the cache growing (every
buffer re-bound) in between; every pass gives the logits of the whole sequence run at once."""

from __future__ import annotations

import numpy as np
from tinylm_onnx import session as onnx_session

import tinylm
from tinylm.testing.conformance import replay_speculation


def test_verify_step_truncate_and_growth_match_the_whole_sequence(model_folder, monkeypatch):
    monkeypatch.setattr(onnx_session, "FIRST_ROOM", 64)  # the cache grows twice below (64 -> 128 -> 256)
    with tinylm.load(model_folder("llama"), backend="onnx") as model:
        length, calls = replay_speculation(
            model._live(),
            model.spec.vocab_size,
            rounds=30,  # grows past 64 and 128 cached tokens: every binding is made again
            sizes=(2, 5, 3, 16),
            keep=lambda i, size: 1 + i % size,  # part of each pass rolled back, as a rejected proposal is
        )
        assert length > 128
        for ours, whole in calls:
            np.testing.assert_allclose(ours, whole, atol=1e-4, rtol=0)
