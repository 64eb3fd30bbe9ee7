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


# OpenAI's penalties, logit_bias and logprobs (issue 28) ------------------------------------------------------


def test_presence_and_frequency_penalties_follow_openais_formula():
    """logits[j] - count[j] * frequency - (count[j] > 0) * presence, counting generated tokens only."""
    logits = np.array([3.0, 2.9, 2.8, 0.0, 0.0], dtype=np.float32)
    prompt = np.array([2, 2, 2])  # the prompt's tokens are not penalised
    s = Sampler(SamplingParams(presence_penalty=0.5, frequency_penalty=0.25))
    assert s(logits, prompt) == 0  # nothing generated yet: argmax
    history = np.concatenate([prompt, [0, 0, 1]])  # generated: 0 twice, 1 once
    got = s.process(logits, history)
    np.testing.assert_allclose(got, [3.0 - 0.5 - 0.5, 2.9 - 0.5 - 0.25, 2.8, 0.0, 0.0], rtol=1e-6)
    assert s(logits, history) == 2  # the penalties moved the argmax
    negative = Sampler(SamplingParams(presence_penalty=-2.0))  # a negative penalty favours repetition
    negative(logits, prompt)
    assert negative(logits, np.concatenate([prompt, [1]])) == 1


def test_logit_bias_adds_and_minus_100_bans():
    s = Sampler(SamplingParams(logit_bias=((1, 5.0), (0, -100.0))))
    got = s.process(LOGITS, NONE)
    assert got[0] == -np.inf and got[1] == pytest.approx(LOGITS[1] + 5.0)
    banned = draws(SamplingParams(temperature=1.0, seed=0, logit_bias=((0, -100.0),)), n=500)
    assert 0 not in set(banned) and {1, 2} <= set(banned)
    assert Sampler(SamplingParams(logit_bias=((4, 100.0),)))(LOGITS, NONE) == 4


def test_the_logprobs_are_the_log_softmax_of_the_processed_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=50).astype(np.float32)
    history = np.array([3, 7, 7])

    def mask(x, h):
        out = x.copy()
        out[:10] = -np.inf
        return out

    params = SamplingParams(
        temperature=0.7, top_k=5, seed=1, repetition_penalty=1.3, logit_bias=((20, 2.0),), logprobs=4
    )
    s = Sampler(params, [mask])
    token, lp = s.draw(logits, history)
    processed = Sampler(params, [mask]).process(logits, history).astype(np.float64)
    finite = processed[np.isfinite(processed)]
    want = processed - (finite.max() + np.log(np.exp(finite - finite.max()).sum()))
    assert lp.token_id == token and lp.logprob == pytest.approx(want[token], abs=1e-9)
    top_ids = [t for t, _ in lp.top]
    assert top_ids == list(np.argsort(-want, kind="stable")[:4])
    assert [v for _, v in lp.top] == sorted((v for _, v in lp.top), reverse=True)
    assert all(t >= 10 for t in top_ids)  # masked tokens are never alternatives
    assert Sampler(SamplingParams(logprobs=None)).draw(logits, history).logprob is None


def test_greedy_logprobs_with_zero_alternatives():
    token, lp = Sampler(SamplingParams(logprobs=0)).draw(LOGITS, NONE)
    assert token == 0 and lp.top == () and lp.logprob == pytest.approx(np.log(0.5), abs=1e-6)
