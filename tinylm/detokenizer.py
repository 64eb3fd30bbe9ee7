"""Streaming detokenization: text deltas as tokens arrive, never a split UTF-8 character, never a
lost space.

Decoding one token alone loses context: SentencePiece drops a word's leading space, byte-level
BPE may hold half a character. So each step decodes a short window of recent tokens twice — with
and without the new ones — and emits the difference, holding text back while it ends in an
incomplete character (U+FFFD). Concatenating the deltas gives the full decode.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["StreamingDetokenizer", "FinalText"]


class _Decoder(Protocol):
    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str: ...


class StreamingDetokenizer:
    """Feed token ids with `add`; each call returns the text that is now final."""

    def __init__(self, tokenizer: _Decoder, *, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self._prefix = 0  # window start: context for the decoder
        self._read = 0  # tokens whose text has been emitted

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)

    def add(self, token_id: int) -> str:
        """Append one token; return the new final text (may be "")."""
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    def finish(self) -> str:
        """The text still held back (e.g. an incomplete character at the very end)."""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :]


class FinalText:
    """`StreamingDetokenizer`'s interface for a caller that wants the text only at the end (`generate()`):
    `add` keeps the id and returns "", `finish` decodes them all at once."""

    def __init__(self, tokenizer: _Decoder, *, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        return ""

    def finish(self) -> str:
        """All the text (once; the ids are kept)."""
        return self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
