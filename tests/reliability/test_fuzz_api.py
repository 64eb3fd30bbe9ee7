"""Property-based fuzz of `generate`/`stream`/`chat`/`embed` arguments (issue 22): any value of any type gives a
result or a `TinyLMError` (never another exception), and the arguments a result was given for are exactly the
valid ones (nothing coerced): an invalid one is an `InvalidArgument` naming it.

The default suite runs a few dozen examples per call (seconds); `-m slow` runs thousands (minutes).
The expected validity below is written from the documented contract, independently of tinylm's checks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylm
from tinylm.errors import InvalidArgument, TinyLMError

from ..fuzzing import fuzz

pytest.importorskip("tinylm_torch", reason="the models run on the torch backend (pip install -e backends/torch)")
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")

FEW, MANY = 30, 1500


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("fuzzapi")
    decoder = tinylm.load(build_model("smollm", root / "dec"), backend="torch")
    encoder = tinylm.load(build_model("bert", root / "enc"), backend="torch")
    yield decoder, encoder
    decoder.close()
    encoder.close()


# values of every kind ----------------------------------------------------------------------------------------


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs", "L", "Zs", "Cc"]), max_size=8),  # lone surrogates included
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**1100) | st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.binary(max_size=4),
    st.lists(st.integers(min_value=-3, max_value=300) | st.booleans() | TEXT, max_size=3),
    st.tuples(TEXT),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.frozensets(st.integers(), max_size=2),
)


def plausible(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values near the valid range (so generation runs), often anything at all."""
    return st.one_of(strategy, JUNK)


#: unset, max_new_tokens would mean up to 256 tokens per example: it is always given, valid ones small
LENGTHS = st.one_of(st.integers(min_value=-2, max_value=6), JUNK.filter(lambda v: v is not None and not is_int(v)))
OPTION_VALUES = {
    "temperature": plausible(st.floats(min_value=-0.5, max_value=3)),
    "top_k": plausible(st.integers(min_value=-2, max_value=600)),
    "top_p": plausible(st.floats(min_value=-0.2, max_value=1.2)),
    "min_p": plausible(st.floats(min_value=-0.2, max_value=1.2)),
    "repetition_penalty": plausible(st.floats(min_value=-0.5, max_value=3)),
    "seed": plausible(st.integers(min_value=-3, max_value=2**64 + 3)),
    "stop": plausible(st.lists(TEXT, max_size=3)),
    "ignore_eos": plausible(st.booleans()),
}
OPTIONS = st.fixed_dictionaries({"max_new_tokens": LENGTHS}, optional=OPTION_VALUES)


# the contract, written out -----------------------------------------------------------------------------------


def is_real(v: Any) -> bool:
    return (isinstance(v, float) or is_int(v)) and -(2**1000) < v < 2**1000 and math.isfinite(v)


def is_text(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


VALID = {
    "max_new_tokens": lambda v: is_int(v) and v >= 1,
    "temperature": lambda v: is_real(v) and v >= 0,
    "top_k": lambda v: is_int(v) and v >= 0,
    "top_p": lambda v: is_real(v) and 0 < v <= 1,
    "min_p": lambda v: is_real(v) and 0 <= v <= 1,
    "repetition_penalty": lambda v: is_real(v) and v >= 0.01,
    "seed": lambda v: is_int(v) and 0 <= v < 2**64,
    "stop": lambda v: (
        (is_text(v) and v != "") or (isinstance(v, list | tuple) and all(is_text(s) and s != "" for s in v))
    ),
    "ignore_eos": lambda v: isinstance(v, bool),
}


def invalid_options(options: dict[str, Any]) -> set[str]:
    return {k for k, v in options.items() if v is not None and not VALID[k](v)}


def valid_prompt(prompt: Any, vocab: int) -> bool:
    if isinstance(prompt, str):
        return is_text(prompt)
    if isinstance(prompt, np.ndarray):
        return prompt.ndim == 1 and prompt.dtype.kind in "iu" and all(0 <= t < vocab for t in prompt.tolist())
    return isinstance(prompt, list | tuple) and all(is_int(t) and 0 <= t < vocab for t in prompt)


def expect(call, invalid: set[str]) -> Any:
    """The call's result when nothing is invalid; else the InvalidArgument naming one of `invalid`."""
    try:
        result = call()
    except InvalidArgument as e:
        assert invalid, f"a valid call was refused: {e}"
        assert e.argument in invalid, (e.argument, invalid, str(e))
        assert "Fix: " in str(e)
        return None
    except TinyLMError as e:  # a valid call may still fail as documented (empty prompt, too long, template)
        assert not invalid, f"{invalid} accepted, then failed later with {type(e).__name__}: {e}"
        return None
    assert not invalid, f"invalid {invalid} accepted (coerced or ignored)"
    return result


# the properties ----------------------------------------------------------------------------------------------

PROMPTS = st.one_of(
    TEXT,
    st.lists(st.integers(min_value=-2, max_value=520), max_size=6),
    st.lists(st.integers(min_value=0, max_value=300) | st.booleans() | st.floats(0, 3), max_size=3),
    st.builds(np.array, st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=4)),
    st.builds(np.array, st.lists(st.floats(0, 3), min_size=1, max_size=3)),
    JUNK,
)


def check_generate(model, prompt, options) -> None:
    invalid = invalid_options(options) | (set() if valid_prompt(prompt, model.spec.vocab_size) else {"prompt"})
    done = expect(lambda: model.generate(prompt, **options), invalid)
    if done is not None:
        assert done.finish_reason in ("stop", "length")
        assert done.usage.completion_tokens <= (options.get("max_new_tokens") or 256)
    chunks = expect(lambda: model.stream(prompt, **options), invalid)  # refused at the call, not at next()
    if chunks is not None:
        try:
            last = list(chunks)[-1]
        except TinyLMError as e:  # only what a valid prompt can meet: empty after tokenization, too long
            assert not isinstance(e, InvalidArgument), e
        else:
            assert last.finish_reason in ("stop", "length")


PARTS = st.lists(st.fixed_dictionaries({"type": plausible(st.just("text")), "text": plausible(TEXT)}), max_size=2)
MESSAGE = st.fixed_dictionaries(
    {"role": plausible(st.sampled_from(["user", "assistant", "system"])), "content": plausible(TEXT | PARTS)}
)
MESSAGES = plausible(st.lists(plausible(MESSAGE), max_size=3))


def valid_content(content: Any) -> bool:
    if isinstance(content, list):  # OpenAI's text parts
        return all(isinstance(p, dict) and p.get("type") == "text" and is_text(p.get("text")) for p in content)
    return is_text(content)


def valid_messages(messages: Any) -> bool:
    return isinstance(messages, list | tuple) and all(
        isinstance(m, dict) and is_text(m.get("role")) and valid_content(m.get("content")) for m in messages
    )


def check_chat(model, messages, options) -> None:
    invalid = invalid_options(options) | (set() if valid_messages(messages) else {"messages"})
    done = expect(lambda: model.chat(messages, **options), invalid)
    if done is not None:
        assert done.usage.completion_tokens <= (options.get("max_new_tokens") or 256)


TEXTS = plausible(st.lists(plausible(TEXT), max_size=4))
BATCH = plausible(st.integers(min_value=-2, max_value=5))
NORMALIZE = plausible(st.booleans())


def valid_texts(texts: Any) -> bool:
    return is_text(texts) or (isinstance(texts, list | tuple) and all(is_text(t) for t in texts))


def check_embed(model, texts, batch_size, normalize) -> None:
    invalid = set()
    if not valid_texts(texts):
        invalid.add("texts")
    if not (is_int(batch_size) and batch_size >= 1):
        invalid.add("batch_size")
    if not isinstance(normalize, bool):
        invalid.add("normalize")
    vectors = expect(lambda: model.embed(texts, batch_size=batch_size, normalize=normalize), invalid)
    if vectors is not None:
        expected = (model.spec.hidden_size,) if isinstance(texts, str) else (len(texts), model.spec.hidden_size)
        assert vectors.shape == expected and np.isfinite(vectors).all()


@fuzz(FEW)
@given(prompt=PROMPTS, options=OPTIONS)
def test_generate_arguments(models, prompt, options):
    check_generate(models[0], prompt, options)


@fuzz(FEW)
@given(messages=MESSAGES, options=OPTIONS)
def test_chat_arguments(models, messages, options):
    check_chat(models[0], messages, options)


@fuzz(FEW)
@given(texts=TEXTS, batch_size=BATCH, normalize=NORMALIZE)
def test_embed_arguments(models, texts, batch_size, normalize):
    check_embed(models[1], texts, batch_size, normalize)


@pytest.mark.slow
@fuzz(MANY)
@given(prompt=PROMPTS, options=OPTIONS)
def test_generate_arguments_at_length(models, prompt, options):
    check_generate(models[0], prompt, options)


@pytest.mark.slow
@fuzz(MANY)
@given(messages=MESSAGES, options=OPTIONS)
def test_chat_arguments_at_length(models, messages, options):
    check_chat(models[0], messages, options)


@pytest.mark.slow
@fuzz(MANY)
@given(texts=TEXTS, batch_size=BATCH, normalize=NORMALIZE)
def test_embed_arguments_at_length(models, texts, batch_size, normalize):
    check_embed(models[1], texts, batch_size, normalize)
