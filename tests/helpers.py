"""Small builders shared by the core tests: in-memory tokenizers and a scripted session."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE with no merges: every UTF-8 byte is its own token (multi-byte chars split)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<eos>"])
    return tok


def metaspace_tokenizer(words: Sequence[str]) -> Tokenizer:
    """SentencePiece-style word-level tokenizer ("▁word" pieces): decoding one piece alone drops its space."""
    vocab = {"<unk>": 0, "<eos>": 1}
    for w in words:
        vocab.setdefault("▁" + w, len(vocab))
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return tok


class Decoding:
    """Adapter: the core's tokenizer interface over a `tokenizers.Tokenizer`."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids


class ScriptedSession:
    """A fake backend session: the logits for each step come from `next_logits(history)`."""

    def __init__(self, vocab: int, next_logits: Callable[[list[int]], np.ndarray]) -> None:
        self.vocab = vocab
        self.next_logits = next_logits
        self.history: list[int] = []
        self.calls: list[int] = []  # tokens per forward call

    @classmethod
    def script(cls, vocab: int, tokens: Sequence[int], *, after: int | None = None) -> ScriptedSession:
        """Greedy decoding yields `tokens` in order (then `after`, or the last token, forever)."""
        prompt_len: list[int] = []

        def next_logits(history: list[int]) -> np.ndarray:
            if not prompt_len:
                prompt_len.append(len(history))
            step = len(history) - prompt_len[0]
            token = tokens[step] if step < len(tokens) else (after if after is not None else tokens[-1])
            logits = np.zeros(vocab, dtype=np.float32)
            logits[token] = 10.0
            return logits

        session = cls(vocab, next_logits)
        session._prompt_len = prompt_len  # reset clears it
        return session

    @property
    def length(self) -> int:
        return len(self.history)

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        assert token_ids.ndim == 2 and token_ids.dtype == np.int64
        self.calls.append(token_ids.shape[1])
        self.history.extend(int(t) for t in token_ids[0])
        return self.next_logits(list(self.history))[None, :]

    def reset(self) -> None:
        self.history = []
        if hasattr(self, "_prompt_len"):
            self._prompt_len.clear()

    def embed(self, token_ids, attention_mask, token_type_ids):  # pragma: no cover - decoder fake
        raise NotImplementedError

    def close(self) -> None:
        pass
