"""Speculative decoding's pattern on one onnx session: verification passes (a few tokens, all positions) of varying
lengths, truncations back into them, one-token steps on the step's bound buffers, and the cache growing (every
buffer re-bound) in between; every pass gives the logits of the whole sequence run at once."""

from __future__ import annotations

import numpy as np
from tinylm_onnx import session as onnx_session

import tinylm


def test_verify_step_truncate_and_growth_match_the_whole_sequence(model_folder, monkeypatch):
    monkeypatch.setattr(onnx_session, "FIRST_ROOM", 64)  # the cache grows twice below (64 -> 128 -> 256)
    with tinylm.load(model_folder("llama"), backend="onnx") as model:
        session = model._live()
        vocab = model.spec.vocab_size
        rng = np.random.default_rng(0)
        fed = rng.integers(0, vocab, 40).tolist()
        session.reset()
        session.forward(np.asarray([fed], np.int64))
        passes = []  # (first position, logits (T, V)) of each verification, for the positions kept
        for i in range(30):  # grows past 64 and 128 cached tokens: every binding is made again
            t = (2, 5, 3, 16)[i % 4]
            ids = rng.integers(0, vocab, t)
            at = session.length
            logits = session.forward(ids[None], all_positions=True)[0]
            keep = 1 + i % t  # roll back part of the pass, as a rejected proposal does
            session.truncate(at + keep)
            fed += ids[:keep].tolist()
            passes.append((at, logits[:keep]))
            token = int(rng.integers(0, vocab))
            step = session.step(token).copy()  # the step's own binding, untouched by the verifications
            fed.append(token)
            passes.append((session.length - 1, step[None]))
        assert session.length == len(fed) > 128
        session.reset()
        whole = session.forward(np.asarray([fed], np.int64), all_positions=True)[0]  # (T, V)
        for at, logits in passes:
            np.testing.assert_allclose(logits, whole[at : at + logits.shape[0]], atol=1e-4, rtol=0)
