"""The core's re-run of the cached prefix when a sequence crosses longrope's switch length."""

from __future__ import annotations

import numpy as np
import pytest

from tinylm.arch.spec import ModelSpec, NormSpec, RopeSpec
from tinylm.errors import GenerationError, PromptTooLong
from tinylm.rope_switch import RopeSwitchSession, with_rope_switch

V = 50


def _spec(scaling: dict | None) -> ModelSpec:
    return ModelSpec(
        family="phi3",
        kind="decoder",
        vocab_size=V,
        hidden_size=8,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=4,
        intermediate_size=8,
        max_positions=64,
        norm=NormSpec(kind="rms", eps=1e-5),
        rope=RopeSpec(theta=10000.0, rotary_dim=4, max_positions=64, scaling=scaling),
    )


LONGROPE = {
    "rope_type": "longrope",
    "short_factor": [1.0, 2.0],
    "long_factor": [3.0, 5.0],
    "original_max_position_embeddings": 6,
}


class Recorder:
    """A session that records each call's ids and returns, as logits, the sequence's length one-hot
    (so a test sees which call produced what)."""

    capacity = 64

    def __init__(self) -> None:
        self.length = 0
        self.calls: list[list[int]] = []

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        b, t = token_ids.shape
        self.calls.append(token_ids[0].tolist())
        out = np.zeros((b, t, V), np.float32)
        for i in range(t):
            out[:, i, self.length + i] = 1.0
        self.length += t
        return out if all_positions else out[:, -1]

    def step(self, token_id: int) -> np.ndarray:
        return self.forward(np.array([[token_id]]))[0]

    def reset(self) -> None:
        self.length = 0

    def close(self) -> None:
        pass


def test_only_longrope_with_distinct_factors_is_wrapped():
    inner = Recorder()
    assert with_rope_switch(_spec(None), inner) is inner
    same = {**LONGROPE, "long_factor": LONGROPE["short_factor"]}
    assert with_rope_switch(_spec(same), inner) is inner
    assert isinstance(with_rope_switch(_spec(LONGROPE), inner), RopeSwitchSession)


def test_the_crossing_call_runs_the_whole_sequence_again():
    inner = Recorder()
    session = with_rope_switch(_spec(LONGROPE), inner)
    session.forward(np.array([[1, 2, 3, 4]]))
    session.forward(np.array([[5, 6]]))  # length 6 == the switch: still the short table, no re-run
    assert inner.calls == [[1, 2, 3, 4], [5, 6]]
    out = session.forward(np.array([[7, 8]]), all_positions=True)  # 8 > 6: crosses
    assert inner.calls[-1] == [1, 2, 3, 4, 5, 6, 7, 8] and session.length == 8
    assert out.shape == (1, 2, V) and np.argmax(out[0, -1]) == 7  # only this call's positions come back
    session.step(9)  # past the switch: plain appends
    assert inner.calls[-1] == [9] and session.length == 9


def test_step_that_crosses_reruns_and_a_refused_token_loses_nothing():
    inner = Recorder()
    session = with_rope_switch(_spec(LONGROPE), inner)
    session.forward(np.array([[1, 2, 3, 4, 5, 6]]))
    with pytest.raises(GenerationError, match="Fix"):
        session.step(V + 3)  # outside the vocabulary: refused before the cache is emptied
    with pytest.raises(PromptTooLong, match="Fix"):
        session.forward(np.ones((1, 64), np.int64))
    assert session.length == 6 and inner.calls == [[1, 2, 3, 4, 5, 6]]
    session.step(7)
    assert inner.calls[-1] == [1, 2, 3, 4, 5, 6, 7]
    session.reset()
    session.forward(np.array([[1, 2, 3, 4, 5, 6, 7, 8]]))  # a fresh sequence already past the switch
    assert inner.calls[-1] == [1, 2, 3, 4, 5, 6, 7, 8]


class Truncating(Recorder):
    """A Recorder that rolls back (`Session.truncate`)."""

    def truncate(self, length: int) -> None:
        self.length = length


def test_positions_before_the_switch_keep_the_short_table_in_an_all_positions_call():
    """Speculative decoding verifies tokens across the switch: the ones up to it come from a call that stays within
    it, as one token at a time gives them; the rest from the whole sequence run again."""
    inner = Recorder()
    session = with_rope_switch(_spec(LONGROPE), inner)
    session.forward(np.array([[1, 2, 3, 4]]))
    out = session.forward(np.array([[5, 6, 7, 8]]), all_positions=True)
    assert inner.calls == [[1, 2, 3, 4], [5, 6], [1, 2, 3, 4, 5, 6, 7, 8]]
    assert out.shape == (1, 4, V) and [int(np.argmax(x)) for x in out[0]] == [4, 5, 6, 7]


def test_truncating_back_below_the_switch_runs_the_kept_prefix_again():
    inner = Truncating()
    session = with_rope_switch(_spec(LONGROPE), inner)
    session.forward(np.array([[1, 2, 3, 4, 5]]))
    session.forward(np.array([[6, 7, 8, 9]]))  # crosses: every key now rotated by the long table
    session.truncate(7)  # still past the switch: the long-table keys stay right
    assert inner.calls[-1] == [1, 2, 3, 4, 5, 6, 7, 8, 9] and session.length == 7
    session.truncate(5)  # back within it: the 5 kept tokens run again with the short table
    assert inner.calls[-1] == [1, 2, 3, 4, 5] and session.length == 5
    session.step(10)
    assert inner.calls[-1] == [10]
    session.forward(np.array([[11, 12]]))  # crosses again, with the ids kept since
    assert inner.calls[-1] == [1, 2, 3, 4, 5, 10, 11, 12]
    with pytest.raises(GenerationError, match="Fix"):
        session.truncate(9)
    assert not hasattr(with_rope_switch(_spec(LONGROPE), Recorder()), "truncate")  # only where the backend has it
