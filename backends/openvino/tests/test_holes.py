"""Speculative decoding's pattern on one openvino session (`replay_speculation`): truncations leave the dropped keys
in the state as holes that later masks skip, one-token steps run over a state with holes, and the state is
compacted once holes are half of it; every call gives the logits of the whole sequence run at once. A model with a
sliding window (whose step mask moves) takes the general path."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm.testing.conformance import replay_speculation


@pytest.mark.parametrize("variant", ["llama", "mistral-window5"])
def test_truncated_keys_are_skipped_by_every_later_call(model_folder, variant):
    with tinylm.load(model_folder(variant), backend="openvino") as model:
        session = model._live()
        seen = {"holes": 0, "compacted": False}

        def after_truncate(dropped: int) -> None:  # holes grow by the dropped tokens, or go to 0 when compacted
            seen["compacted"] |= session._holes < seen["holes"] + dropped
            seen["holes"] = session._holes

        _, calls = replay_speculation(
            session,
            model.spec.vocab_size,
            rounds=30,
            sizes=(3, 6, 4, 7),
            keep=lambda i, size: 1 + (i % 7 == 0),  # most of each pass rolled back: holes pile up
            steps=lambda i: 1 + (i % 4 == 0),
            after_truncate=after_truncate,
        )
        assert seen["compacted"]
        if variant == "llama":
            assert seen["holes"] > 0  # the last steps ran over a state with holes
        for ours, whole in calls:
            np.testing.assert_allclose(ours, whole, atol=1e-4, rtol=0)
