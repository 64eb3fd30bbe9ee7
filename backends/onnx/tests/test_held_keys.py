"""A session keeps its keys across `reset()` and runs only what a new prompt does not share with the ids its
prefills computed them from (a conversation's next turn, a repeated system prompt), leaving at least MIN_RUN tokens
to run, so that the logits are the same bits as a whole prefill: a prompt's result never depends on what ran
before. Decoded tokens' keys are not held (a decode step's products may differ in the last bits at int8)."""

from __future__ import annotations

import numpy as np
import pytest
from tinylm_onnx.session import MIN_RUN

import tinylm
from tinylm.testing.rows_suite import prompt_ids


def _whole(session, prompt: np.ndarray) -> np.ndarray:
    """The prompt's last logits prefilled from nothing (the held keys ignored)."""
    session.reset()
    session._reuses, saved = False, session._reuses
    try:
        return session.forward(prompt[None])[0].copy()
    finally:
        session._reuses = saved


@pytest.mark.parametrize("variant", ["llama", "gpt2", "mistral-window5", "phi3-partial-rotary"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_next_turn_runs_only_what_is_new_with_the_same_bits(model_folder, variant, precision):
    model = tinylm.load(model_folder(variant), backend="onnx", precision=precision, parity=False)
    session, v = model._live(), model.spec.vocab_size
    first, fed = prompt_ids(v, 12, 1), [int(t) for t in prompt_ids(v, 5, 2)]
    turn = np.concatenate([first, fed, prompt_ids(v, 6, 3)])
    expected = _whole(session, turn)
    session.reset()
    session.forward(first[None])
    for t in fed:
        session.step(t)  # the reply, fed token by token
    before = session.prefilled
    session.reset()
    got = session.forward(turn[None])[0]
    assert session.prefilled - before == 5 + 6  # the first turn's prompt was held, not its decoded reply
    np.testing.assert_array_equal(got, expected)
    session.reset()
    again = session.forward(turn[None])[0]  # all held: its last MIN_RUN tokens run
    assert session.prefilled - before == 11 + MIN_RUN
    np.testing.assert_array_equal(again, expected)
    session.reset()
    other = np.concatenate([first[:4], prompt_ids(v, 9, 4)])  # shares a head only
    session.forward(other[None])
    assert session.prefilled - before == 11 + MIN_RUN + 9


def test_generate_twice_gives_the_same_tokens_without_running_the_prompt_again(model_folder):
    model = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    prompt = prompt_ids(model.spec.vocab_size, 20, 4).tolist()
    first = model.generate(prompt, max_new_tokens=8, ignore_eos=True)
    before = model._live().prefilled
    again = model.generate(prompt, max_new_tokens=8, ignore_eos=True)
    assert again.token_ids == first.token_ids
    assert model._live().prefilled - before < len(prompt)


@pytest.mark.parametrize("variant", ["phi3-longrope", "lfm2"])
def test_no_held_keys_across_longrope_or_with_conv_states(model_folder, variant):
    model = tinylm.load(model_folder(variant), backend="onnx", parity=False)
    session, prompt = model._live(), prompt_ids(model.spec.vocab_size, 10, 5)
    session.reset()
    session.forward(prompt[None])
    before = session.prefilled
    session.reset()
    session.forward(prompt[None])
    assert session.prefilled - before == len(prompt)


def test_keys_after_decoded_ones_are_not_held(model_folder):
    """A speculative verification pass runs several tokens after decoded ones: what it computes is not held,
    since the keys before it are not."""
    model = tinylm.load(model_folder("llama"), backend="onnx", parity=False)
    session, v = model._live(), model.spec.vocab_size
    prompt, fed, passed = prompt_ids(v, 8, 6), [int(t) for t in prompt_ids(v, 3, 7)], prompt_ids(v, 4, 8)
    session.reset()
    session.forward(np.concatenate([prompt, fed])[None])  # the ids of `fed` stay in the record past what is held
    session.reset()
    session.forward(prompt[None])
    for t in fed:
        session.step(t)  # decoded keys over the prefilled ones
    session.forward(passed[None], all_positions=True)
    before = session.prefilled
    session.reset()
    session.forward(np.concatenate([prompt, fed, passed, prompt_ids(v, 2, 9)])[None])
    assert session.prefilled - before == 3 + 4 + 2  # only the prompt was held
