"""The one generation loop, on a scripted fake session: sampling, stopping, streaming, usage."""

from __future__ import annotations

import numpy as np
import pytest

from tinylm.errors import GenerationError, PromptTooLong
from tinylm.generation import GenerationSettings, join_chunks, stream_tokens
from tinylm.sampling import SamplingParams

from .helpers import Decoding, ScriptedSession, byte_tokenizer, metaspace_tokenizer


def run(session, prompt, tok, *, fast_step=False, **kw):
    settings = GenerationSettings(**{"max_new_tokens": 64, **kw})
    return list(
        stream_tokens(session, prompt, tok, settings, context_length=kw.pop("context", 512), fast_step=fast_step)
    )


def ids_for(tok: Decoding, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def test_greedy_follows_the_argmax_and_stops_at_eos():
    tok = Decoding(byte_tokenizer())
    eos = tok.tok.token_to_id("<eos>")
    target = ids_for(tok, "Hello there")
    session = ScriptedSession.script(tok.tok.get_vocab_size(), [*target, eos])
    chunks = run(session, ids_for(tok, "Hi"), tok, stop_token_ids=(eos,))
    done = join_chunks(iter(chunks))
    assert done.text == "Hello there"
    assert list(done.token_ids) == target  # the stop token is not part of the completion
    assert done.finish_reason == "stop"
    assert done.usage.prompt_tokens == 2 and done.usage.completion_tokens == len(target)
    assert session.calls[0] == 2 and set(session.calls[1:]) == {1}  # one prefill, then one token per step


def test_processors_see_the_prompt_then_every_token_so_far():
    tok = Decoding(byte_tokenizer())
    target = ids_for(tok, "abcdef")
    session = ScriptedSession.script(tok.tok.get_vocab_size(), target)
    seen: list[list[int]] = []

    def record(logits, history):
        seen.append(history.tolist())
        return logits

    prompt = ids_for(tok, "xyz")
    done = join_chunks(iter(run(session, prompt, tok, max_new_tokens=len(target), processors=(record,))))
    assert list(done.token_ids) == target
    assert seen == [prompt + target[:i] for i in range(len(target))]


def test_max_new_tokens_ends_with_length():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, "abcdefghij"))
    done = join_chunks(iter(run(session, ids_for(tok, "x"), tok, max_new_tokens=4)))
    assert done.text == "abcd" and done.finish_reason == "length" and done.usage.completion_tokens == 4


def test_context_full_ends_with_length():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, "abcdefghij"))
    settings = GenerationSettings(max_new_tokens=100)
    done = join_chunks(stream_tokens(session, ids_for(tok, "xyz"), tok, settings, context_length=8))
    assert done.finish_reason == "length"
    assert done.usage.prompt_tokens + done.usage.completion_tokens == 8 + 1  # last token sampled, not fed


def test_prompt_longer_than_context_is_a_typed_error():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), [1])
    with pytest.raises(PromptTooLong, match="shorten"):
        list(stream_tokens(session, list(range(10)), tok, GenerationSettings(), context_length=10))


@pytest.mark.parametrize("stop", ["lo wo", "o w", "world", "d"])
def test_stop_strings_spanning_token_boundaries(stop):
    tok = Decoding(byte_tokenizer())
    text = "hello world and more"
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, text))
    chunks = run(session, ids_for(tok, "x"), tok, stop=(stop,))
    done = join_chunks(iter(chunks))
    assert done.finish_reason == "stop"
    assert done.text == text[: text.index(stop)]
    # nothing after the cut was ever streamed, not even a prefix of the stop string
    assert "".join(c.text for c in chunks) == done.text


def test_partial_stop_string_is_released_when_it_does_not_complete():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, "abcab"))
    done = join_chunks(iter(run(session, ids_for(tok, "x"), tok, stop=("abd",), max_new_tokens=5)))
    assert done.text == "abcab" and done.finish_reason == "length"


@pytest.mark.parametrize("text", ["naïve café", "😀 emoji 🚀", "世界 and 日本語", "mixed: é😀世"])
def test_multibyte_characters_stream_whole(text):
    tok = Decoding(byte_tokenizer())
    target = ids_for(tok, text)
    assert len(target) > len(text)  # the tokenizer really splits characters into bytes
    session = ScriptedSession.script(tok.tok.get_vocab_size(), target)
    chunks = run(session, ids_for(tok, "x"), tok, max_new_tokens=len(target))
    pieces = [c.text for c in chunks]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_spaces_survive_sentencepiece_style_streaming():
    words = ["Hello", "world", "again"]
    tok = Decoding(metaspace_tokenizer(words))
    target = ids_for(tok, "Hello world again")
    session = ScriptedSession.script(tok.tok.get_vocab_size(), target)
    chunks = run(session, ids_for(tok, "Hello"), tok, max_new_tokens=len(target))
    assert "".join(c.text for c in chunks) == "Hello world again"
    assert [c.text for c in chunks if c.text][1].startswith(" ")


def test_stream_equals_generate_when_sampling_with_a_seed():
    tok = Decoding(byte_tokenizer())
    vocab = tok.tok.get_vocab_size()
    rng = np.random.default_rng(0)
    table = rng.normal(size=(vocab, vocab)).astype(np.float32)  # logits depend on the last token

    def make():
        return ScriptedSession(vocab, lambda h: table[h[-1]] * 3)

    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, seed=1234)
    a = run(make(), ids_for(tok, "seed"), tok, sampling=params, max_new_tokens=30)
    b = join_chunks(iter(run(make(), ids_for(tok, "seed"), tok, sampling=params, max_new_tokens=30)))
    assert "".join(c.text for c in a) == b.text
    assert [t for c in a for t in c.token_ids] == list(b.token_ids)
    other = join_chunks(
        iter(
            run(make(), ids_for(tok, "seed"), tok, sampling=SamplingParams(temperature=0.8, seed=99), max_new_tokens=30)
        )
    )
    assert other.token_ids != b.token_ids  # a different seed draws differently


def test_usage_reports_timing():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, "abcdefgh"))
    done = join_chunks(iter(run(session, ids_for(tok, "x"), tok, max_new_tokens=8)))
    u = done.usage
    assert 0 < u.time_to_first_token <= u.total_time
    assert u.tokens_per_second > 0


def test_invalid_settings_are_typed_errors():
    with pytest.raises(GenerationError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(GenerationError, match="stop"):
        GenerationSettings(stop=("",))
    with pytest.raises(GenerationError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(GenerationError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(GenerationError, match="temperature"):
        SamplingParams(temperature=float("nan"))


@pytest.mark.parametrize("text", ["plain words here", "naïve café", "😀 emoji 🚀", "mixed: é😀世"])
def test_final_text_mode_gives_the_streamed_text_at_the_end(text):
    tok = Decoding(byte_tokenizer())
    target = ids_for(tok, text)

    def session():
        return ScriptedSession.script(tok.tok.get_vocab_size(), target)

    streamed = run(session(), ids_for(tok, "x"), tok, max_new_tokens=len(target))
    final = run(session(), ids_for(tok, "x"), tok, max_new_tokens=len(target), stream_text=False)
    assert [c.text for c in final[:-1]] == [""] * (len(final) - 1)  # nothing decoded per token
    assert final[-1].text == "".join(c.text for c in streamed) == text
    assert [c.token_ids for c in final] == [c.token_ids for c in streamed]


def test_final_text_mode_still_streams_for_stop_strings():
    tok = Decoding(byte_tokenizer())
    session = ScriptedSession.script(tok.tok.get_vocab_size(), ids_for(tok, "abcdef"))
    done = join_chunks(iter(run(session, ids_for(tok, "x"), tok, stop=("cd",), stream_text=False)))
    assert done.text == "ab" and done.finish_reason == "stop"


class SteppingSession(ScriptedSession):
    """A session with the optional `step`, returning a view of one buffer it rewrites on every call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = np.zeros(self.vocab, np.float32)
        self.steps = 0

    def step(self, token_id: int) -> np.ndarray:
        assert isinstance(token_id, int)
        self.steps += 1
        self.buffer[:] = self.forward(np.array([[token_id]], np.int64))[0]
        return self.buffer


def test_the_loop_decodes_through_step_when_the_backend_declares_it():
    tok = Decoding(byte_tokenizer())
    vocab = tok.tok.get_vocab_size()
    table = np.random.default_rng(3).normal(size=(vocab, vocab)).astype(np.float32)
    params = SamplingParams(temperature=0.7, top_k=20, seed=5, repetition_penalty=1.3)
    plain = run(ScriptedSession(vocab, lambda h: table[h[-1]] * 3), [7, 8], tok, sampling=params, max_new_tokens=20)
    stepping = SteppingSession(vocab, lambda h: table[h[-1]] * 3)
    stepped = run(stepping, [7, 8], tok, sampling=params, max_new_tokens=20, fast_step=True)
    assert [c.token_ids for c in stepped] == [c.token_ids for c in plain]
    assert stepping.steps == 19 and stepping.calls == [2] + [1] * 19  # the prefill, then every step through step()
    undeclared = SteppingSession(vocab, lambda h: table[h[-1]] * 3)  # Capabilities(step=False): never probed
    assert [c.token_ids for c in run(undeclared, [7, 8], tok, sampling=params, max_new_tokens=20)] == [
        c.token_ids for c in plain
    ]
    assert undeclared.steps == 0 and undeclared.calls == [2] + [1] * 19  # every step through forward()
