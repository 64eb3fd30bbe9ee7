"""The one generation loop (numpy), shared by every backend.

    prefill(prompt) -> logits -> sample -> [stop?] -> detokenize -> [stop string?] -> yield Chunk
                         ^                                                           |
                         +-------------------- step(token) <-------------------------+

A `RowState` holds one sequence's part of it (sampler, stop ids and strings, detokenizer, usage); `stream_tokens`
steps one, and the scheduler in `tinylm.batching` steps many rows of a `RowSession` with the same object.
Backends only run `Session.forward` (and `Session.step`, its optional one-token fast path); sampling, stop tokens,
stop strings, streaming text, usage and timing are decided here, so the same logits give the same tokens on every
backend. `generate()` is `stream()` joined (with the text decoded once at the end: `GenerationSettings.stream_text`).

With `GenerationSettings.speculative` (`tinylm.speculative`), a decode step may instead verify several proposed
tokens in one forward pass: `RowState.advance` still decides each position in turn, so the tokens, processors,
stops and usage are those of the loop above; the session drops the tokens past the first rejected one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .backend import Session
from .detokenizer import FinalText, StreamingDetokenizer
from .errors import GenerationError, PromptTooLong
from .logprobs import TokenLogprob
from .sampling import LogitsProcessor, Sampler, SamplingParams
from .speculative import Offer, Proposal, Speculator
from .tools import ToolCall

__all__ = ["GenerationSettings", "Usage", "Chunk", "Completion", "RowState", "stream_tokens", "verify", "join_chunks"]

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
    #: speculative decoding (None: off): made per generation, since its proposer keeps state (a draft model's cache)
    speculative: Callable[[], Speculator] | None = None

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
        speculative_proposed: tokens proposed for verification (speculative decoding; 0 without it).
        speculative_accepted: of those, tokens the model agreed with and kept (acceptance rate: accepted /
            proposed).
    """

    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    tokens_per_second: float
    total_time: float
    speculative_proposed: int = 0
    speculative_accepted: int = 0


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


class RowState:
    """One sequence's generation, stepped one token at a time: what `stream_tokens` runs for one sequence and the
    scheduler (`tinylm.batching`) for each of many rows, so every row is decided by the same code.

    It samples from the logits it is given, applies the stop ids, the stop strings and the length limits, streams
    the text and counts the usage; it never calls a session. `advance(logits, cached)` takes the next-token logits
    (V,) and the tokens the session now holds for this sequence, and returns the chunk to yield (None for a stop
    id); after it, `done` says whether the sequence ended, else `token` is the id to feed the session next.
    `finish()` gives the last chunk (held-back text, finish reason, usage).
    """

    def __init__(
        self,
        prompt_ids: Sequence[int] | np.ndarray,
        tokenizer: Any,
        settings: GenerationSettings,
        *,
        context_length: int,
        start: float | None = None,
    ) -> None:
        self.start = time.perf_counter() if start is None else start
        prompt = np.asarray(prompt_ids, dtype=np.int64)
        if prompt.size == 0:
            raise GenerationError("the prompt is empty after tokenization. Fix: pass some text.")
        if prompt.size >= context_length:
            raise PromptTooLong(
                f"the prompt has {prompt.size} tokens but the model's context is {context_length}, leaving no room "
                "to generate. Fix: shorten the prompt (or the chat history)."
            )
        self.prompt = prompt  # (T,)
        self.settings = settings
        self.context_length = context_length
        self.sampler = Sampler(settings.sampling, settings.processors)
        self.detok = StreamingDetokenizer(tokenizer) if settings.stream_text or settings.stop else FinalText(tokenizer)
        self.stops = _StopStrings(settings.stop)
        self.stop_ids = frozenset(settings.stop_token_ids)
        # the prompt, then each token as it comes (no copy per token); the context bounds the tokens generated
        self.history = np.empty(prompt.size + min(settings.max_new_tokens, context_length), np.int64)
        self.history[: prompt.size] = prompt
        self.seen = prompt.size
        self.first_token_at = 0.0
        self.finish_reason: FinishReason = "length"
        self.hit_stop_string = False
        self.done = False
        self.token = -1  # the last token sampled: the session's next input while not done
        self.speculator: Speculator | None = None if settings.speculative is None else settings.speculative()

    def advance(self, logits: np.ndarray, cached: int, proposal: Offer | None = None) -> Chunk | None:
        """Sample from `logits` (V,) (valid during the call only); `cached`: tokens the session holds for this
        sequence; `proposal`: the token speculative decoding proposed here (see `Sampler.draw`). Returns the chunk
        for the new token, or None when it was a stop id (then `done`)."""
        token, logprob = self.sampler.draw(logits, self.history[: self.seen], proposal)
        if not self.first_token_at:
            self.first_token_at = time.perf_counter()
        if token in self.stop_ids:
            self.finish_reason, self.done = "stop", True
            return None
        self.history[self.seen] = token
        self.seen += 1
        self.token = token
        text, hit = self.stops.feed(self.detok.add(token))
        if hit:
            self.finish_reason, self.hit_stop_string, self.done = "stop", True, True
        elif self.seen - self.prompt.size >= self.settings.max_new_tokens or cached >= self.context_length:
            self.done = True
        return Chunk(text=text, token_ids=(token,), logprobs=() if logprob is None else (logprob,))

    @property
    def generated(self) -> int:
        """Tokens generated so far (stop ids not counted)."""
        return self.seen - self.prompt.size

    def finish(self) -> Chunk:
        """The last chunk: text still held back, the finish reason and the usage."""
        tail = ""
        if not self.hit_stop_string:  # text held back for an incomplete character or a possible stop string
            tail, hit = self.stops.feed(self.detok.finish())
            if not hit:
                tail += self.stops.flush()
        end = time.perf_counter()
        n = self.generated
        if self.speculator is not None:
            self.speculator.finish(self.history[: self.seen], self.prompt.size)
        decode_time = end - self.first_token_at if n > 1 else 0.0
        usage = Usage(
            prompt_tokens=int(self.prompt.size),
            completion_tokens=n,
            time_to_first_token=(self.first_token_at or end) - self.start,
            tokens_per_second=(n - 1) / decode_time if decode_time > 0 else 0.0,
            total_time=end - self.start,
            speculative_proposed=self.speculator.proposed if self.speculator else 0,
            speculative_accepted=self.speculator.accepted if self.speculator else 0,
        )
        return Chunk(text=tail, finish_reason=self.finish_reason, usage=usage)

    def proposal(self, capacity: int) -> Proposal | None:
        """Tokens to verify after `token` (speculative decoding), or None: decode one. A verification feeds `token`
        and the proposal, so it must fit the session (`capacity`) and need not outrun max_new_tokens."""
        if self.speculator is None:
            return None
        cached = self.seen - 1  # the session holds every token but the last sampled
        limit = min(capacity - cached - 1, self.settings.max_new_tokens - self.generated - 1)
        return self.speculator.propose(self.history[: self.seen], limit)


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
    row = RowState(prompt_ids, tokenizer, settings, context_length=context_length)
    # one token on a batch-1 cache: the session's fast path when it has one (logits valid until its next call)
    step = session.step if fast_step else (lambda token: session.forward(np.array([[token]], dtype=np.int64))[0])  # type: ignore[attr-defined]
    session.reset()
    logits = session.forward(row.prompt[None, :])[0]  # (V,) prefill
    chunks: Iterator[Chunk | None] = iter((row.advance(logits, session.length),))
    while True:
        for chunk in chunks:
            if chunk is not None:
                yield chunk
        if row.done:
            break
        proposal = row.proposal(context_length)
        if proposal is None:  # decode one (timed by the speculator, for its pace)
            logits = step(row.token) if row.speculator is None else row.speculator.step(step, row.token)
            chunks = iter((row.advance(logits, session.length),))
        else:
            chunks = verify(session, row, proposal)  # decode several
    yield row.finish()


def verify(session: Session, row: RowState, proposal: Proposal) -> Iterator[Chunk | None]:
    """Feed the row's last token and the proposed ones (k,) in one forward pass, then decide each position in
    turn, yielding its chunk, up to the first proposed token not chosen (dropped from the session with every one
    after it) or the end of the row. The last position, after every proposed token, gives one more token."""
    drafted = proposal.tokens
    k = drafted.shape[0]
    base = session.length  # tokens held before this pass
    ids = np.concatenate([np.array([row.token], np.int64), drafted])[None]  # (1, k + 1)
    speculator = row.speculator
    assert speculator is not None
    clock = speculator.clock
    began = clock()
    logits = session.forward(ids, all_positions=True)[0]  # (k + 1, V)
    seconds = clock() - began
    for i in range(k + 1):
        chunk = row.advance(logits[i], base + i + 1, proposal.offer(i) if i < k else None)
        yield chunk
        agreed = i < k and chunk is not None and row.token == drafted[i]
        if i == k or row.done:
            speculator.record(k, i + agreed, seconds=seconds)
            return
        if not agreed:
            began = clock()
            session.truncate(base + i + 1)  # type: ignore[attr-defined]  # keeps the row's token and the i accepted
            speculator.record(k, i, seconds=seconds, cut=clock() - began)
            return


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
