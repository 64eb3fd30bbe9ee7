"""Records -> token ids with a per-token loss weight (`Example`), and packing into fixed blocks.

Chats are rendered with the model's chat template; with `assistant_only`, only the tokens of the
assistant turns (their content and the end-of-turn token after it) carry loss. The spans are found
by rendering prefixes of the conversation: the template's text for messages[:i] plus the generation
prompt ends where assistant message i begins. That works with any template that renders a
conversation as the concatenation of its turns, with or without `{% generation %}` blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinylm.errors import ChatTemplateError
from tinylm.tokenizer import Tokenizer

from .data import Record
from .errors import DataError

__all__ = ["Example", "Codec", "assistant_spans", "pack"]


@dataclass(frozen=True)
class Example:
    """Token ids (T,) int64 and weights (T,) float32: weight[t] = 1 when token t is a training target."""

    ids: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def assistant_spans(tokenizer: Tokenizer, messages: Sequence[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans [start, end) of each assistant turn
    (its content, plus the end-of-turn token when the template writes it right after)."""
    full = tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    eos = tokenizer.special_tokens.get("eos_token") or ""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        content = str(message.get("content") or "")
        try:
            before = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True)
        except ChatTemplateError:
            before = ""
        start = len(before) if before and full.startswith(before) and len(before) >= cursor else cursor
        found = full.find(content, start) if content else start
        if found < 0:
            raise DataError(
                f"assistant message {i} does not appear verbatim in the rendered conversation "
                "(the chat template rewrites it). Fix: finetune on plain text, or pass --all-tokens."
            )
        end = found + len(content)
        if eos and full.startswith(eos, end):
            end += len(eos)
        spans.append((start if not content else found, end))
        cursor = end
    return full, spans


class Codec:
    """A model folder's tokenizer, for training: ids with offsets, chat rendering, the end token."""

    def __init__(self, folder: Path, *, max_length: int | None = None) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self.folder = folder
        self.tokenizer = Tokenizer(folder, max_length=max_length)
        self.hf = HFTokenizer.from_file(str(folder / "tokenizer.json"))
        self.hf.no_truncation()
        self.hf.no_padding()
        self.max_length = max_length
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_id if self.eos_id is not None else 0

    def text(self, text: str, *, add_eos: bool = True) -> Example:
        """All tokens of `text` are targets; the end token is appended (the model learns to stop)."""
        ids = self.hf.encode(text, add_special_tokens=True).ids
        if add_eos and self.eos_id is not None:
            ids = [*ids, self.eos_id]
        return self._example(ids, [1.0] * len(ids))

    def chat(self, messages: Sequence[dict[str, Any]], *, assistant_only: bool = True) -> Example:
        """The conversation rendered by the chat template; with `assistant_only`, the loss mask
        covers the assistant turns only."""
        full, spans = assistant_spans(self.tokenizer, messages)
        enc = self.hf.encode(full, add_special_tokens=False)  # the template writes the special tokens
        if not assistant_only:
            return self._example(enc.ids, [1.0] * len(enc.ids))
        weights = [float(any(s < e_span and e > s_span for s_span, e_span in spans)) for s, e in enc.offsets]
        return self._example(enc.ids, weights)

    def record(self, record: Record, *, assistant_only: bool = True) -> Example:
        if record.messages is not None:
            return self.chat(record.messages, assistant_only=assistant_only)
        return self.text(record.text or "")

    def _example(self, ids: list[int], weights: list[float]) -> Example:
        if self.max_length:
            ids, weights = ids[: self.max_length], weights[: self.max_length]
        return Example(np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float32))


def pack(examples: Sequence[Example], block: int) -> list[Example]:
    """Concatenate the examples and cut blocks of `block + 1` tokens, each token predicted once
    (block k covers tokens [k * block, k * block + block + 1))."""
    ids = np.concatenate([e.ids for e in examples])
    weights = np.concatenate([e.weights for e in examples])
    n = (len(ids) - 1) // block
    if n < 1:
        raise DataError(
            f"the data holds {len(ids)} tokens, fewer than one block of {block + 1}. "
            "Fix: use more data or a smaller --context."
        )
    return [
        Example(ids[k * block : k * block + block + 1], weights[k * block : k * block + block + 1]) for k in range(n)
    ]
