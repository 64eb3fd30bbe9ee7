"""Class 8 of issue 22: the Python API checks its arguments at the edge. A wrong type or value is an
`InvalidArgument` naming the argument, raised when the call is made (not at the first token), never coerced."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest

import tinylm
from tinylm import arguments
from tinylm.cli import main
from tinylm.errors import GenerationError, InvalidArgument, ModelFileError
from tinylm.options import OPTION_NAMES, GenerationOptions
from tinylm.sampling import SamplingParams

pytest.importorskip("tinylm_torch", reason="the models run on the torch backend (pip install -e backends/torch)")
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("edge")
    return {"decoder": build_model("smollm", root / "dec"), "encoder": build_model("bert", root / "enc")}


@pytest.fixture(scope="module")
def decoder(folders):
    with tinylm.load(folders["decoder"], backend="torch") as m:
        yield m


@pytest.fixture(scope="module")
def encoder(folders):
    with tinylm.load(folders["encoder"], backend="torch") as m:
        yield m


BAD_OPTIONS = [
    ("seed", -1),
    ("seed", 1.5),
    ("seed", 2**64),
    ("seed", True),
    ("top_k", 1.5),
    ("top_k", "3"),
    ("top_k", -1),
    ("top_p", float("nan")),
    ("top_p", 0),
    ("min_p", float("nan")),
    ("repetition_penalty", float("nan")),
    ("repetition_penalty", math.inf),
    ("temperature", "0.7"),
    ("temperature", -0.1),
    ("max_new_tokens", 0),
    ("max_new_tokens", 2.0),
    ("max_new_tokens", True),
    ("stop", b"\n"),
    ("stop", [""]),
    ("stop", {"a": 1}),
    ("stop", ["ok", 3]),
    ("stop", ["\ud800"]),
    ("ignore_eos", 1),
    ("ignore_eos", "yes"),
]


@pytest.mark.parametrize("name,value", BAD_OPTIONS, ids=[f"{n}={v!r}" for n, v in BAD_OPTIONS])
def test_a_bad_option_is_refused_naming_it(decoder, name, value):
    for call in (
        decoder.generate,
        decoder.stream,
        lambda p, **kw: decoder.chat([{"role": "user", "content": p}], **kw),
    ):
        with pytest.raises(InvalidArgument, match=f"^{name} .*Fix: ") as err:
            call("hello", **{name: value})  # stream() too: refused at the call, before any next()
        assert err.value.argument == name
    with pytest.raises(InvalidArgument, match=f"^{name} "):
        GenerationOptions(**{name: value})
    assert decoder.generate("hello", max_new_tokens=2).usage.completion_tokens <= 2  # the model still works


@pytest.mark.parametrize("name", ["top_p", "min_p", "repetition_penalty"])
def test_nan_is_reported_as_the_setting_that_is_nan(name):
    """Issue 26: a NaN top_p was reported as "temperature must be >= 0"."""
    with pytest.raises(GenerationError, match=f"{name} must be") as err:
        SamplingParams(**{name: float("nan")})
    others = {"top_p", "min_p", "repetition_penalty", "temperature"} - {name}
    assert not any(other in str(err.value) for other in others)


def test_valid_options_are_normalised_and_keywords_win():
    options = GenerationOptions(top_k=np.int64(5), stop=["a", "b"], temperature=1, seed=np.uint64(2**64 - 1))
    assert type(options.top_k) is int and options.stop == ("a", "b") and type(options.temperature) is float
    assert options.seed == 2**64 - 1
    merged = GenerationOptions.of(options, top_k=7, stop=None)
    assert merged.top_k == 7 and merged.stop == ("a", "b") and merged.temperature == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.top_k = 3  # type: ignore[misc]
    with pytest.raises(InvalidArgument, match="options must be a GenerationOptions"):
        GenerationOptions.of({"top_k": 3})  # type: ignore[arg-type]


def test_the_options_object_and_keywords_give_the_same_tokens(decoder):
    options = GenerationOptions(max_new_tokens=6, temperature=0.9, top_k=20, seed=3, ignore_eos=True)
    by_object = decoder.generate("Dear customer,", options=options)
    by_keywords = decoder.generate("Dear customer,", **dataclasses.asdict(options))
    assert by_object.token_ids == by_keywords.token_ids and len(by_object.token_ids) == 6
    assert decoder.generate("Dear customer,", options=options, max_new_tokens=2).usage.completion_tokens == 2


def test_model_keywords_are_the_options_fields():
    """One list of options: `Model.stream`'s keywords are GenerationOptions' fields (plus the non-settings)."""
    keywords = [p.name for p in inspect.signature(tinylm.Model.stream).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert keywords == [*OPTION_NAMES, "options", "logits_processors", "response_format"]


def test_generation_config_values_are_checked(tmp_path):
    good = GenerationOptions().resolve({"do_sample": True, "temperature": 0.6, "top_k": 20})
    assert good[1].temperature == 0.6 and good[1].top_k == 20 and good[0] == 256
    greedy = GenerationOptions(seed=4).resolve({"do_sample": False, "temperature": "hot", "max_new_tokens": 9})
    assert greedy[1].temperature == 0 and greedy[1].seed == 4 and greedy[0] == 9  # unused keys are not read
    with pytest.raises(ModelFileError, match=r"generation_config\.json sets top_k='40'.*Fix: "):
        GenerationOptions().resolve({"do_sample": True, "top_k": "40"})


def test_stream_refuses_an_empty_or_too_long_prompt_at_the_call(decoder):
    with pytest.raises(GenerationError, match="empty"):
        decoder.stream("", max_new_tokens=2)  # not at the first next()
    with pytest.raises(tinylm.PromptTooLong):
        decoder.stream([5] * decoder.context_length, max_new_tokens=2)


BAD_PROMPTS = [
    b"hello",
    bytearray(b"hi"),
    "a\ud800b",
    [True, 2],
    [1, 2.0],
    np.array([[1, 2]]),
    np.array([1.0]),
    None,
    5,
]


@pytest.mark.parametrize("prompt", BAD_PROMPTS, ids=[type(p).__name__ + str(i) for i, p in enumerate(BAD_PROMPTS)])
def test_a_bad_prompt_is_refused(decoder, prompt):
    with pytest.raises(InvalidArgument, match="Fix: ") as err:
        decoder.stream(prompt, max_new_tokens=2)
    assert err.value.argument == "prompt"


BAD_MESSAGES = [
    [{"role": "user", "content": None}],
    [{"role": "user", "content": 123}],
    [{"role": "user", "content": ["text"]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}],
    [{"role": "user", "content": [{"type": "text", "text": None}]}],
    [{"role": None, "content": "hi"}],
    [{"role": "user", "content": "x\udfff"}],
    [{"content": "hi"}],
    ["hello"],
    "hello",
    {"role": "user", "content": "hi"},
]


@pytest.mark.parametrize("messages", BAD_MESSAGES, ids=[str(i) for i in range(len(BAD_MESSAGES))])
def test_bad_chat_messages_are_refused(decoder, messages):
    for call in (decoder.chat, decoder.stream_chat, decoder.chat_prompt, decoder.chat_ids):
        with pytest.raises(InvalidArgument, match="Fix: ") as err:
            call(messages)
        assert err.value.argument == "messages"


def test_content_is_checked_as_text_and_text_parts_pass(decoder):
    with pytest.raises(InvalidArgument, match=r"messages\[1\]\['content'\] must be text, got None"):
        decoder.chat_ids([{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}])
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "Where is "}, {"type": "text", "text": "my parcel"}]}
    ]
    assert arguments.messages(parts) == parts  # OpenAI's text parts are text, for the templates that read them


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"texts": {"a": 1}}, "texts"),
        ({"texts": {"a", "b"}}, "texts"),
        ({"texts": b"bytes"}, "texts"),
        ({"texts": ["ok", 3]}, "texts"),
        ({"texts": None}, "texts"),
        ({"texts": "lone \ud800"}, "texts"),
        ({"texts": ["a"], "batch_size": 0}, "batch_size"),
        ({"texts": ["a"], "batch_size": -1}, "batch_size"),
        ({"texts": ["a"], "batch_size": 1.5}, "batch_size"),
        ({"texts": ["a"], "batch_size": True}, "batch_size"),
        ({"texts": ["a"], "normalize": "no"}, "normalize"),
    ],
)
def test_bad_embed_arguments_are_refused(encoder, kwargs, argument):
    with pytest.raises(InvalidArgument, match="Fix: ") as err:
        encoder.embed(**kwargs)
    assert err.value.argument == argument


def test_embed_batch_size_is_checked_and_batches_agree(encoder):
    texts = ["refund", "shipping times", "a much longer sentence about parcels", "x"]
    with pytest.raises(InvalidArgument, match="batch_size must be a positive integer, got -1"):
        encoder.embed(texts, batch_size=-1)  # it returned nothing at all
    whole = encoder.embed(texts)
    assert np.allclose(encoder.embed(texts, batch_size=3), whole, atol=1e-5)
    assert np.allclose(encoder.embed(t for t in texts), whole, atol=1e-5)  # any ordered iterable
    assert encoder.embed([]).shape == (0, whole.shape[1])


def test_embed_batches_texts_of_similar_lengths_and_keeps_their_order(encoder, monkeypatch):
    """Each batch is padded to its longest text, so texts are batched by length (as sentence-transformers does)."""
    texts = ["a much longer sentence about parcels and refunds", "x", "another long sentence about the parcel", "hi"]
    alone = np.stack([encoder.embed(t) for t in texts])
    session, widths = encoder._live(), []
    real = session.embed

    def spy(ids, mask, types):
        widths.append(ids.shape)
        return real(ids, mask, types)

    monkeypatch.setattr(session, "embed", spy)
    got = encoder.embed(texts, batch_size=2)
    assert [w[0] for w in widths] == [2, 2] and widths[0][1] < widths[1][1]  # the two short texts first
    np.testing.assert_allclose(got, alone, atol=1e-5)  # in the texts' order


@pytest.mark.parametrize(
    "flag,value,name", [("--top-p", "nan", "top_p"), ("--seed", "-1", "seed"), ("--top-k", "-2", "top_k")]
)
def test_the_cli_checks_options_before_loading(capsys, flag, value, name):
    # the model does not exist: the options are refused first, naming the flag's option
    assert main(["generate", "no-such-model-anywhere", "hi", flag, value]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name} must be") and "Fix: " in err


def test_a_call_from_inside_its_own_generation_is_refused_not_mixed_in(decoder):
    """The model's lock is re-entrant, so a call from the thread whose stream is still open (or from a logits
    processor) used to reset the session under it: the stream then went on from the other call's cache."""
    expected = decoder.generate("Hello", max_new_tokens=8, ignore_eos=True).token_ids
    stream = decoder.stream("Hello", max_new_tokens=8, ignore_eos=True)
    first = next(stream)
    with pytest.raises(GenerationError, match=r"still running in this thread.*Fix"):
        decoder.generate("Something else entirely", max_new_tokens=4)
    with pytest.raises(GenerationError, match=r"still running in this thread.*Fix"):
        decoder.logits([5, 6, 7])
    assert (*first.token_ids, *(t for c in stream for t in c.token_ids)) == expected  # the stream is untouched

    def calls_back(logits, history):
        decoder.logits([5, 6])
        return logits

    with pytest.raises(GenerationError, match="logits processor calling back"):
        decoder.generate("Hi", max_new_tokens=2, logits_processors=[calls_back])
    assert decoder.generate("Hello", max_new_tokens=8, ignore_eos=True).token_ids == expected  # and after it
