"""Checks of what a caller hands the Python API (prompts, messages, texts, sizes), at the edge, before any work.

A wrong type is never coerced (`b"hi"` is not a list of token ids, `{"a": 1}` is not a list of texts) and text
must be encodable as UTF-8 (a lone surrogate such as "\\ud800" is not). Each failure is `InvalidArgument` naming
the argument. The generation options are checked by `tinylm.options.GenerationOptions`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from .errors import InvalidArgument

__all__ = ["show", "text", "prompt", "messages", "tool_calls", "texts", "positive_int", "flag"]


def show(value: Any, limit: int = 40) -> str:
    """A short repr of a caller's value for an error message (a 1 MB string stays short)."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def text(value: Any, name: str, *, argument: str | None = None) -> str:
    """`value` if it is a str that UTF-8 can encode (no lone surrogates). `name` says where it is in the
    `argument` (default: `name`), e.g. name "messages[0]['content']" of argument "messages"."""
    if not isinstance(value, str):
        raise InvalidArgument(argument or name, f"{name} must be text, got {type(value).__name__}. Fix: pass a str.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(
            argument or name,
            f"{name} holds a lone surrogate {value[e.start]!r} at character {e.start}, which is not text "
            "(UTF-8 cannot encode it). Fix: decode the input with errors='replace', or drop the character.",
        ) from None
    return value


def prompt(value: Any, *, vocab_size: int, name: str = "prompt") -> str | list[int]:
    """A prompt: text, or a flat list (or 1-D integer array) of token ids inside the vocabulary."""
    if isinstance(value, str):
        return text(value, name)
    if isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgument(
            name, f"{name} is bytes, not text or token ids. Fix: decode it first, e.g. text.decode('utf-8')."
        )
    ids: list[int] | None = None
    if hasattr(value, "dtype") and hasattr(value, "ndim"):  # a numpy array
        if value.ndim == 1 and value.dtype.kind in "iu":
            ids = [int(t) for t in value]
    elif isinstance(value, Sequence) and all(
        isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in value
    ):
        ids = [int(t) for t in value]
    if ids is None:
        raise InvalidArgument(
            name,
            f"{name} must be text or a flat list of integer token ids, got {show(value)}. "
            "Fix: pass a str, or model.tokenizer.encode(text).",
        )
    if any(not 0 <= t < vocab_size for t in ids):
        raise InvalidArgument(name, f"token ids must be in [0, {vocab_size}). Fix: encode text with model.tokenizer.")
    return ids


_IMAGE_PARTS = ("image", "image_url", "input_image")  # the chat-content types that carry an image


def messages(value: Any) -> list[dict[str, Any]]:
    """Chat messages: a list of dicts, each with a text `role` and a `content` that is text or a list of
    text parts (`[{"type": "text", "text": "..."}]`, as OpenAI's API and some chat templates take it). An
    assistant message that calls tools has `tool_calls` (OpenAI's shape) and may have no content."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise InvalidArgument(
            "messages",
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {show(value)}. "
            "Fix: pass e.g. [{'role': 'user', 'content': 'Hello'}].",
        )
    checked = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise InvalidArgument(
                "messages",
                f"{where} must be a dict with 'role' and 'content', got {show(message)}. "
                "Fix: pass e.g. {'role': 'user', 'content': 'Hello'}.",
            )
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            raise InvalidArgument(
                "messages", f"{where}['role'] must be text, got {show(role)}. Fix: give every message a str 'role'."
            )
        text(role, f"{where}['role']", argument="messages")
        if "tool_calls" in message:
            tool_calls(message["tool_calls"], f"{where}['tool_calls']")
        if content is None and message.get("tool_calls"):
            pass  # a reply that only calls tools
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") in _IMAGE_PARTS:
                    raise InvalidArgument(
                        "messages",
                        f"{where}['content'][{j}] is an image part ({part.get('type')!r}): tinylm runs text models, "
                        "and of a multimodal checkpoint (Gemma 3 4B-27B) only its text model; its vision tower is not "
                        "loaded, so images cannot be read. Fix: pass text only, or use a vision-language runtime.",
                    )
                if not (isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                    raise InvalidArgument(
                        "messages",
                        f"{where}['content'][{j}] must be a text part {{'type': 'text', 'text': ...}}, got "
                        f"{show(part)} (tinylm's models take text). Fix: pass the content as a str.",
                    )
                text(part["text"], f"{where}['content'][{j}]['text']", argument="messages")
        elif isinstance(content, str):
            text(content, f"{where}['content']", argument="messages")
        else:
            raise InvalidArgument(
                "messages",
                f"{where}['content'] must be text, got {show(content)}. Fix: give every message a str 'content'.",
            )
        checked.append(dict(message))
    return checked


def tool_calls(value: Any, where: str) -> None:
    """The `tool_calls` of an assistant message: [{"id": ..., "type": "function", "function": {"name": ...,
    "arguments": JSON text or a dict}}, ...]."""
    example = "{'id': 'call_1', 'type': 'function', 'function': {'name': 'f', 'arguments': '{}'}}"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise InvalidArgument("messages", f"{where} must be a list of calls, got {show(value)}. Fix: pass [{example}].")
    for j, call in enumerate(value):
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        typed = isinstance(call, Mapping) and call.get("type", "function") == "function"
        if not (typed and isinstance(name, str) and isinstance(arguments, str | Mapping)):
            raise InvalidArgument(
                "messages", f"{where}[{j}] must be a function call, got {show(call)}. Fix: pass {example}."
            )
        text(name, f"{where}[{j}]['function']['name']", argument="messages")
        if isinstance(arguments, str):
            text(arguments, f"{where}[{j}]['function']['arguments']", argument="messages")


def texts(value: Any) -> tuple[list[str], bool]:
    """Texts to embed: one str, or a list (any ordered iterable) of str. Returns (texts, whether one str)."""
    if isinstance(value, str):
        return [text(value, "texts")], True
    if isinstance(value, bytes | bytearray | Mapping | Set) or not isinstance(value, Iterable):
        raise InvalidArgument(
            "texts",
            f"texts must be a str or a list of str, got {type(value).__name__}. Fix: pass e.g. ['first', 'second'].",
        )
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidArgument(
                "texts", f"texts[{i}] must be a str, got {show(item)}. Fix: convert the inputs to text."
            )
        text(item, f"texts[{i}]", argument="texts")
    return items, False


def positive_int(value: Any, name: str, *, example: str) -> int:
    """A positive integer (not a bool, not a float)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise InvalidArgument(name, f"{name} must be a positive integer, got {show(value)}. Fix: pass e.g. {example}.")
    return int(value)


def flag(value: Any, name: str) -> bool:
    """True or False (not 0, "yes" or None)."""
    if not isinstance(value, bool):
        raise InvalidArgument(name, f"{name} must be True or False, got {show(value)}. Fix: pass {name}=True.")
    return value
