"""Samplers: each one restricts the draw as documented; seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from tinylm.sampling import Sampler, SamplingParams, min_p, repetition_penalty, top_k, top_p

LOGITS = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05], dtype=np.float32))
NONE = np.array([], dtype=np.int64)


def draws(params: SamplingParams, n: int = 2000, logits=LOGITS, history=NONE) -> np.ndarray:
    s = Sampler(params)
    return np.array([s(logits, history) for _ in range(n)])


def test_greedy_is_argmax():
    assert set(draws(SamplingParams(temperature=0), n=10)) == {0}


def test_temperature_sampling_follows_the_distribution():
    got = np.bincount(draws(SamplingParams(temperature=1.0, seed=0), n=4000), minlength=5) / 4000
    assert np.allclose(got, np.exp(LOGITS), atol=0.03)


def test_top_k_keeps_k_tokens():
    assert set(draws(SamplingParams(temperature=1.0, top_k=2, seed=0))) == {0, 1}
    assert np.isinf(top_k(LOGITS, 3)[3:]).all() and np.isfinite(top_k(LOGITS, 3)[:3]).all()


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert set(draws(SamplingParams(temperature=1.0, top_p=0.6, seed=0))) == {0, 1}  # 0.5 < 0.6 <= 0.7
    kept = np.isfinite(top_p(LOGITS, 0.5))
    assert kept.tolist() == [True, False, False, False, False]


def test_min_p_drops_tokens_below_a_fraction_of_the_top():
    assert set(draws(SamplingParams(temperature=1.0, min_p=0.25, seed=0))) == {0, 1, 2}  # >= 0.125
    assert np.isfinite(min_p(LOGITS, 0.35)).tolist() == [True, True, False, False, False]


def test_repetition_penalty_lowers_seen_tokens():
    logits = np.array([2.0, -1.0, 1.5], dtype=np.float32)
    out = repetition_penalty(logits, np.array([0, 1]), 2.0)
    assert out.tolist() == [1.0, -2.0, 1.5]
    assert Sampler(SamplingParams(repetition_penalty=2.0))(logits, np.array([0])) == 2


def test_seed_reproduces_and_differs():
    a = draws(SamplingParams(temperature=1.0, seed=7), n=50)
    b = draws(SamplingParams(temperature=1.0, seed=7), n=50)
    c = draws(SamplingParams(temperature=1.0, seed=8), n=50)
    assert (a == b).all() and (a != c).any()


def test_processors_run_first():
    def only_last(logits, history):
        out = np.full_like(logits, -np.inf)
        out[-1] = 0.0
        return out

    assert Sampler(SamplingParams(), [only_last])(LOGITS, NONE) == 4


@pytest.mark.parametrize("bad", [np.full(5, -np.inf, dtype=np.float32), np.full(5, np.nan, dtype=np.float32)])
@pytest.mark.parametrize(
    "params", [SamplingParams(temperature=1.0, seed=0), SamplingParams()], ids=["sample", "greedy"]
)
def test_no_finite_logit_is_a_typed_error(bad, params):
    from tinylm.errors import GenerationError

    with pytest.raises(GenerationError):
        Sampler(params)(bad, NONE)


def test_greedy_takes_the_only_finite_logit():
    masked = np.full(5, -np.inf, dtype=np.float32)
    masked[3] = -1e30
    assert Sampler(SamplingParams())(masked, NONE) == 3
