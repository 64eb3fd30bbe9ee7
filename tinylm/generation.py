"""The one generation loop (numpy), shared by every backend.

    prefill(prompt) -> logits -> sample -> [stop?] -> detokenize -> [stop string?] -> yield Chunk
                         ^                                                           |
                         +-------------------- step(token) <-------------------------+

Backends only run `Session.forward` (and `Session.step`, its optional one-token fast path); sampling, stop tokens,
stop strings, streaming text, usage and timing are decided here, so the same logits give the same tokens on every
backend. `generate()` is `stream()` joined (with the text decoded once at the end: `GenerationSettings.stream_text`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .backend import Session
from .detokenizer import FinalText, StreamingDetokenizer
from .errors import GenerationError, PromptTooLong
from .logprobs import TokenLogprob
from .sampling import LogitsProcessor, Sampler, SamplingParams
from .tools import ToolCall

__all__ = ["GenerationSettings", "Usage", "Chunk", "Completion", "stream_tokens", "join_chunks"]

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, kw_only=True)
class GenerationSettings:
    """Everything that shapes one generation besides the prompt."""

    max_new_tokens: int = 256
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    processors: tuple[LogitsProcessor, ...] = ()
    #: False: chunks carry no text until the last, which carries all of it, decoded once (what `generate()`
    #: joins: the same text without detokenizing every token). Stop strings need the text as it comes, so with
    #: `stop` set the text always streams.
    stream_text: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise GenerationError(
                f"max_new_tokens={self.max_new_tokens!r} must be a positive integer. Fix: pass e.g. max_new_tokens=64."
            )
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise GenerationError("stop must be a list of non-empty strings. Fix: e.g. stop=['\\n\\n'].")


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token counts and timing of one generation.

    Attributes:
        prompt_tokens: tokens in the prompt.
        completion_tokens: tokens generated (stop tokens not counted).
        time_to_first_token: seconds from the call to the first generated token (prefill + first sample).
        tokens_per_second: decode speed: tokens after the first, per second after the first.
        total_time: seconds for the whole generation.
    """

    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    tokens_per_second: float
    total_time: float


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One step of a stream: new text (possibly ""), the tokens it came from (with their log-probabilities when
    asked for), the tool calls completed in it (chat with tools), and on the last chunk the finish reason and
    usage."""

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Completion:
    """The result of `generate()` / `chat()`: the streamed chunks joined.

    `logprobs`: one per generated token with `logprobs=True` (else empty). `tool_calls`: the functions the model
    called (`chat(..., tools=...)`; `finish_reason` is then "tool_calls" and `text` what it wrote besides)."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    usage: Usage
    parsed: Any = None
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


class _StopStrings:
    """Holds back text that might be the start of a stop string; cuts at the first full match."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buf = self.held + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[: min(hits)], True
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def stream_tokens(
    session: Session,
    prompt_ids: Sequence[int],
    tokenizer: Any,
    settings: GenerationSettings,
    *,
    context_length: int,
    fast_step: bool = False,
) -> Iterator[Chunk]:
    """Generate from `prompt_ids`, yielding a `Chunk` per token; the last one has `finish_reason`.

    `fast_step`: the session defines `step(token_id)` (its backend declares `Capabilities(step=True)`)."""
    start = time.perf_counter()
    prompt = np.asarray(prompt_ids, dtype=np.int64)
    if prompt.size == 0:
        raise GenerationError("the prompt is empty after tokenization. Fix: pass some text.")
    if prompt.size >= context_length:
        raise PromptTooLong(
            f"the prompt has {prompt.size} tokens but the model's context is {context_length}, leaving no room "
            "to generate. Fix: shorten the prompt (or the chat history)."
        )
    sampler = Sampler(settings.sampling, settings.processors)
    detok = StreamingDetokenizer(tokenizer) if settings.stream_text or settings.stop else FinalText(tokenizer)
    stops = _StopStrings(settings.stop)
    stop_ids = frozenset(settings.stop_token_ids)
    # the prompt, then each token as it comes (no copy per token); the context bounds the tokens generated
    history = np.empty(prompt.size + min(settings.max_new_tokens, context_length), np.int64)
    history[: prompt.size] = prompt
    seen = prompt.size
    first_token_at = 0.0
    finish: FinishReason = "length"
    hit_stop_string = False

    # one token on a batch-1 cache: the session's fast path when it has one (logits valid until its next call)
    step = session.step if fast_step else (lambda token: session.forward(np.array([[token]], dtype=np.int64))[0])  # type: ignore[attr-defined]
    session.reset()
    logits = session.forward(prompt[None, :])[0]  # (V,) prefill
    while True:
        token, logprob = sampler.draw(logits, history[:seen])
        logprobs = () if logprob is None else (logprob,)
        if not first_token_at:
            first_token_at = time.perf_counter()
        if token in stop_ids:
            finish = "stop"
            break
        history[seen] = token
        seen += 1
        text, hit = stops.feed(detok.add(token))
        if hit:
            yield Chunk(text=text, token_ids=(token,), logprobs=logprobs)
            finish, hit_stop_string = "stop", True
            break
        if seen - prompt.size >= settings.max_new_tokens or session.length >= context_length:
            yield Chunk(text=text, token_ids=(token,), logprobs=logprobs)
            break
        yield Chunk(text=text, token_ids=(token,), logprobs=logprobs)
        logits = step(token)  # (V,) decode one

    tail = ""
    if not hit_stop_string:  # text held back for an incomplete character or a possible stop string
        tail, hit = stops.feed(detok.finish())
        if not hit:
            tail += stops.flush()
    end = time.perf_counter()
    n = seen - prompt.size  # tokens generated
    decode_time = end - first_token_at if n > 1 else 0.0
    usage = Usage(
        prompt_tokens=int(prompt.size),
        completion_tokens=n,
        time_to_first_token=(first_token_at or end) - start,
        tokens_per_second=(n - 1) / decode_time if decode_time > 0 else 0.0,
        total_time=end - start,
    )
    yield Chunk(text=tail, finish_reason=finish, usage=usage)


def join_chunks(chunks: Iterator[Chunk]) -> Completion:
    """Join a stream into a `Completion` (what `generate()` returns)."""
    texts: list[str] = []
    ids: list[int] = []
    logprobs: list[TokenLogprob] = []
    calls: list[ToolCall] = []
    for chunk in chunks:
        texts.append(chunk.text)
        ids.extend(chunk.token_ids)
        logprobs.extend(chunk.logprobs)
        calls.extend(chunk.tool_calls)
        if chunk.finish_reason is not None:
            assert chunk.usage is not None
            return Completion(
                text="".join(texts),
                token_ids=tuple(ids),
                finish_reason=chunk.finish_reason,
                usage=chunk.usage,
                logprobs=tuple(logprobs),
                tool_calls=tuple(calls),
            )
    raise GenerationError(  # pragma: no cover - the loop always finishes
        "the stream ended without a finish reason. Fix: this is a bug in tinylm; please report it."
    )
