"""Log-probabilities of generated tokens: what `logprobs=True` / `top_logprobs=k` report.

The sampler computes them from the logits it draws from after the logits processors, `logit_bias` and the
penalties (before temperature and top-k/top-p/min-p): `log_softmax` of those logits, in float64. Tokens a
constraint or a ban made impossible (-inf) are never listed among the alternatives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["TokenLogprob", "token_logprob", "token_bytes"]


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability.

    Attributes:
        token_id: the token generated.
        logprob: its log-probability (natural log, <= 0).
        top: up to `top_logprobs` (token id, log-probability) pairs, most likely first (ties by token id).
    """

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(logits: np.ndarray, token: int, *, top: int = 0) -> TokenLogprob:
    """`token`'s log-probability under `log_softmax(logits)` (V,), and the `top` most likely tokens."""
    z = logits.astype(np.float64)
    finite = np.isfinite(z)
    shift = z[finite].max()
    lse = shift + np.log(np.exp(z[finite] - shift).sum())
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        k = min(top, int(finite.sum()))
        candidates = np.argpartition(-np.where(finite, z, -np.inf), k - 1)[:k]
        order = np.lexsort((candidates, -z[candidates]))  # most likely first, then by token id
        best = tuple((int(t), float(z[t] - lse)) for t in candidates[order])
    return TokenLogprob(int(token), float(z[token] - lse), best)


@lru_cache(maxsize=1)
def _byte_level_table() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins (GPT-2's table: the printable bytes as themselves, the others shifted
    past 255) back to the bytes they stand for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1)]
    printable += range(ord("\u00ae"), ord("\u00ff") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The bytes token `token_id` stands for: its text, or for a token that holds part of a UTF-8 character
    (byte-level BPE, SentencePiece byte fallback) the raw bytes."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if "\ufffd" not in text:
        return text.encode("utf-8")
    piece = tokenizer.id_to_token(token_id) or ""
    table = _byte_level_table()
    if piece and all(c in table for c in piece):
        return bytes(table[c] for c in piece)
    if m := _BYTE_PIECE.fullmatch(piece):
        return bytes([int(m.group(1), 16)])
    return text.encode("utf-8")
