"""OpenAI's response shapes for what the library returns: logprobs, tool calls, the choices of a reply."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..generation import Chunk
from ..logprobs import TokenLogprob, token_bytes
from ..tools import ToolCall

__all__ = ["Choice", "chat_logprobs", "text_logprobs", "tool_call_deltas", "usage"]


class _Tokens:
    """Token id -> (text, bytes), decoded once per request."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.seen: dict[int, tuple[str, bytes]] = {}

    def __call__(self, token_id: int) -> tuple[str, bytes]:
        if token_id not in self.seen:
            raw = token_bytes(self.tokenizer, token_id)
            self.seen[token_id] = (raw.decode("utf-8", errors="replace"), raw)
        return self.seen[token_id]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -9999.0  # JSON has no -Infinity (OpenAI uses -9999.0 too)


def chat_logprobs(tokenizer: Any, logprobs: Sequence[TokenLogprob], *, cache: _Tokens | None = None) -> dict[str, Any]:
    """Chat completions' `logprobs`: {"content": [{"token", "logprob", "bytes", "top_logprobs"}], "refusal"}."""
    tokens = cache or _Tokens(tokenizer)

    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text, raw = tokens(token_id)
        return {"token": text, "logprob": _finite(logprob), "bytes": list(raw)}

    content = [{**entry(lp.token_id, lp.logprob), "top_logprobs": [entry(t, v) for t, v in lp.top]} for lp in logprobs]
    return {"content": content, "refusal": None}


def text_logprobs(
    tokenizer: Any, logprobs: Sequence[TokenLogprob], *, offset: int = 0, cache: _Tokens | None = None
) -> dict[str, Any]:
    """The legacy completions' `logprobs`: tokens, token_logprobs, top_logprobs (token -> logprob), text_offset."""
    tokens = cache or _Tokens(tokenizer)
    texts, offsets = [], []
    for lp in logprobs:
        offsets.append(offset)
        texts.append(tokens(lp.token_id)[0])
        offset += len(texts[-1])
    return {
        "tokens": texts,
        "token_logprobs": [_finite(lp.logprob) for lp in logprobs],
        "top_logprobs": [{tokens(t)[0]: _finite(v) for t, v in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }


def tool_call_deltas(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The streamed deltas of complete calls, as OpenAI sends them: the id and name with empty arguments,
    then the arguments."""
    deltas = []
    for k, call in enumerate(calls):
        head = {"index": k, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        deltas.append({"tool_calls": [head]})
        deltas.append({"tool_calls": [{"index": k, "function": {"arguments": call.arguments}}]})
    return deltas


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass
class Choice:
    """One choice of a reply, gathered from its chunks."""

    texts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, chunk: Chunk) -> None:
        self.texts.append(chunk.text)
        self.logprobs.extend(chunk.logprobs)
        self.tool_calls.extend(chunk.tool_calls)
        if chunk.finish_reason is not None:
            assert chunk.usage is not None
            self.finish_reason = chunk.finish_reason
            self.prompt_tokens, self.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens

    @property
    def text(self) -> str:
        return "".join(self.texts)
