"""Fuzzed inputs on every available backend: a result or a typed error, never a crash or a hang."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinylm
from tinylm.errors import GenerationError, PromptTooLong, TinyLMError
from tinylm.plugins import get_manager


def available_decoder_backends() -> list[str]:
    return sorted(
        name
        for name, b in get_manager().backends().items()
        if b.availability().ok and "decoder" in b.capabilities.kinds
    )


@pytest.fixture(scope="module", params=available_decoder_backends())
def model(request, tmp_path_factory):
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    from tinylm.testing.models import build_model

    folder = build_model("smollm", tmp_path_factory.mktemp("fuzz") / "m")
    with tinylm.load(folder, backend=request.param) as m:
        yield m


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "max_new_tokens": st.integers(min_value=-2, max_value=6),
        "temperature": st.one_of(st.floats(min_value=-1, max_value=3), st.just(float("nan")), st.none()),
        "top_k": st.integers(min_value=-1, max_value=600),
        "top_p": st.floats(min_value=-0.5, max_value=1.5),
        "min_p": st.floats(min_value=-0.5, max_value=1.5),
        "repetition_penalty": st.floats(min_value=-1, max_value=3),
        "seed": st.integers(min_value=0, max_value=2**63 - 1),
        "stop": st.lists(st.text(max_size=4), max_size=3),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(max_size=80), options=OPTIONS)
def test_generate_gives_a_result_or_a_typed_error(model, prompt, options):
    try:
        chunks = list(model.stream(prompt, **options))
    except TinyLMError:
        return
    done = model.generate(prompt, **options)
    deterministic = "seed" in options or not options.get("temperature")
    if deterministic:  # without a seed, sampling draws differently on each call, by design
        assert "".join(c.text for c in chunks) == done.text
    assert done.finish_reason in ("stop", "length")
    limit = options.get("max_new_tokens") or 256
    assert done.usage.completion_tokens <= limit


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system"]), "content": st.text(max_size=40)}
        ),
        max_size=4,
    )
)
def test_chat_gives_a_result_or_a_typed_error(model, messages):
    try:
        done = model.chat(messages, max_new_tokens=3)
    except TinyLMError:
        return
    assert done.usage.completion_tokens <= 3


def test_whitespace_control_characters_and_long_prompts(model):
    for prompt in (" ", "\n\t\r", "\x00\x01\x1b[31m", "\ud7ff\ue000\U0010fffd"):
        assert model.generate(prompt, max_new_tokens=2).usage.completion_tokens <= 2
    with pytest.raises(PromptTooLong, match="Fix"):
        model.generate("word " * 5000, max_new_tokens=2)
    with pytest.raises(GenerationError):
        model.generate("", max_new_tokens=2) if not model.tokenizer.encode("") else model.generate(None)


def test_one_model_from_many_threads_never_mixes_caches(model):
    prompts = [f"thread {i} asks about parcel {i * 7}" for i in range(12)]
    alone = [model.generate(p, max_new_tokens=10, temperature=0.9, seed=i).text for i, p in enumerate(prompts)]
    with ThreadPoolExecutor(6) as pool:
        together = list(
            pool.map(lambda i: model.generate(prompts[i], max_new_tokens=10, temperature=0.9, seed=i).text, range(12))
        )
    assert together == alone
