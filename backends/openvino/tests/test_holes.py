"""Speculative decoding's pattern on one openvino session: verification passes (a few tokens, all positions), then
truncations back into them, which leave the dropped keys in the state as holes that later masks skip, one-token
steps over a state with holes, and the compaction once holes are half the state; every pass gives the logits of
the whole sequence run at once. A model with a sliding window (whose step mask moves) takes the general path."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm


@pytest.mark.parametrize("variant", ["llama", "mistral-window5"])
def test_truncated_keys_are_skipped_by_every_later_call(model_folder, variant):
    with tinylm.load(model_folder(variant), backend="openvino") as model:
        session = model._live()
        vocab = model.spec.vocab_size
        rng = np.random.default_rng(0)
        fed = rng.integers(0, vocab, 12).tolist()
        session.reset()
        session.forward(np.asarray([fed], np.int64))
        passes = []  # (first position, logits (T, V)) of each call, for the positions kept
        holes, compacted = 0, False
        for i in range(30):
            t = (3, 6, 4, 7)[i % 4]
            ids = rng.integers(0, vocab, t)
            at = session.length
            logits = session.forward(ids[None], all_positions=True)[0]
            keep = 1 + (i % 7 == 0)  # most of each pass rolled back: holes pile up until the state is compacted
            session.truncate(at + keep)
            compacted |= session._holes < holes + t - keep
            holes = session._holes
            fed += ids[:keep].tolist()
            passes.append((at, logits[:keep]))
            for _ in range(1 + (i % 4 == 0)):
                token = int(rng.integers(0, vocab))
                passes.append((session.length, session.step(token).copy()[None]))
                fed.append(token)
        assert compacted and session.length == len(fed)
        if variant == "llama":
            assert session._holes > 0  # the last steps ran over a state with holes
        session.reset()
        whole = session.forward(np.asarray([fed], np.int64), all_positions=True)[0]  # (T, V)
        for at, logits in passes:
            np.testing.assert_allclose(logits, whole[at : at + logits.shape[0]], atol=1e-4, rtol=0)
