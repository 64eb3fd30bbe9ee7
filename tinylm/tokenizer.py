"""The model's tokenizer (`tokenizer.json` through `tokenizers`) with its settings from the model files.

Special tokens and the chat template come from `tokenizer_config.json` (or `chat_template.jinja`);
the truncation length is what the model declares: sentence-transformers' `max_seq_length` wins over
`tokenizer_config.json`'s `model_max_length`, which wins over the config's context; tokenizer.json's
own truncation and padding are switched off so tinylm applies one rule.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .chat import Message, mark_special_text, render_chat
from .errors import ChatTemplateError, TokenizerError

__all__ = ["Tokenizer"]

_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{path}: not valid JSON ({e}). Fix: download or regenerate this file.") from None
    return data if isinstance(data, dict) else {}


class Tokenizer:
    """Text <-> token ids, special tokens, chat template and truncation for one model."""

    def __init__(self, folder: Path, *, max_length: int | None = None) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        path = folder / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(
                f"{folder}: no tokenizer.json. Fix: save the model's fast tokenizer into the folder "
                "(`AutoTokenizer.from_pretrained(...).save_pretrained(folder)`)."
            )
        try:
            self._tok = HFTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on bad files
            raise TokenizerError(f"{path}: does not parse ({e}). Fix: download or regenerate tokenizer.json.") from None
        self._tok.no_truncation()
        self._tok.no_padding()
        config = _read_json(folder / "tokenizer_config.json")
        self.special_tokens: dict[str, str] = {}
        for key in _SPECIAL_KEYS:
            text = _token_text(config.get(key))
            if text is not None:
                self.special_tokens[key] = text
        self.chat_template: str | None = self._chat_template(folder, config)
        declared = config.get("model_max_length")
        if isinstance(declared, int | float) and declared < 1e9:
            max_length = min(int(declared), max_length) if max_length else int(declared)
        self.max_length = max_length
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        #: the text of each special (control) token -> its id
        self.control_tokens: dict[str, int] = {
            t.content: i for i, t in self._tok.get_added_tokens_decoder().items() if t.special
        }
        self._plain: Any = None  # a copy that reads special tokens' text as text (see encode_chat)
        self._plain_lock = threading.Lock()

    @staticmethod
    def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
        jinja = folder / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
            template = named.get("default") or next(iter(named.values()), None)
        return template if isinstance(template, str) else None

    # ids <-> text ---------------------------------------------------------------------------

    def token_id(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id(self.special_tokens.get("eos_token"))

    @property
    def bos_token_id(self) -> int | None:
        return self.token_id(self.special_tokens.get("bos_token"))

    @property
    def pad_token_id(self) -> int | None:
        return self.token_id(self.special_tokens.get("pad_token"))

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(
        self, texts: Sequence[str], *, max_length: int | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and token-type ids of each text, truncated to `max_length` (special tokens kept)."""
        limit = max_length or self.max_length
        if limit:
            self._tok.enable_truncation(limit)
        try:
            encodings = self._tok.encode_batch(list(texts))
        finally:
            self._tok.no_truncation()
        return [e.ids for e in encodings], [e.type_ids for e in encodings]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of `text` read as text: the text of a special token becomes ordinary tokens, never
        the control token."""
        with self._plain_lock:
            if self._plain is None:
                from tokenizers import Tokenizer as HFTokenizer

                self._plain = HFTokenizer.from_str(self._tok.to_str())
                self._plain.encode_special_tokens = True
            plain = self._plain
        return plain.encode(text, add_special_tokens=False).ids

    # chat -----------------------------------------------------------------------------------

    def apply_chat_template(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """The prompt text for `messages`, as `transformers`' `apply_chat_template(tokenize=False)`."""
        if not self.chat_template:
            raise ChatTemplateError(
                "this model has no chat template. Fix: use `generate()` with a plain prompt, or add a "
                "chat_template to its tokenizer_config.json."
            )
        return render_chat(
            self.chat_template,
            messages,
            add_generation_prompt=add_generation_prompt,
            special_tokens=self.special_tokens,
            **kwargs,
        )

    def encode_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> list[int]:
        """Token ids of the chat prompt for `messages`, with message content read as text.

        The template's own markers (`<|im_start|>`, ...) are control tokens; the same text typed inside a
        message (or a tool description) is encoded as ordinary text, so no one can forge a turn. Apart from
        such text the ids equal `encode(apply_chat_template(messages), add_special_tokens=False)`.
        """
        marked, pattern = mark_special_text(
            {"messages": list(messages), "tools": kwargs.get("tools")}, list(self.control_tokens)
        )
        if pattern is None:
            prompt = self.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, **kwargs)
            return self.encode(prompt, add_special_tokens=False)
        kwargs["tools"] = marked["tools"]
        prompt = self.apply_chat_template(marked["messages"], add_generation_prompt=add_generation_prompt, **kwargs)
        # put the typed text back, remember where it is, and encode the whole prompt once (the template's
        # markers as control tokens); then re-encode as text each control token that lies in typed text
        specials = list(self.control_tokens)
        parts: list[str] = []
        typed: list[tuple[int, int]] = []
        cursor = length = 0
        for m in pattern.finditer(prompt):
            parts += [prompt[cursor : m.start()], specials[int(m.group(1))]]
            length += m.start() - cursor
            typed.append((length, length + len(parts[-1])))
            length += len(parts[-1])
            cursor = m.end()
        full = "".join([*parts, prompt[cursor:]])
        encoding = self._tok.encode(full, add_special_tokens=False)
        control = set(self.control_tokens.values())
        ids: list[int] = []
        for token, (a, b) in zip(encoding.ids, encoding.offsets):
            span = next(((s, e) for s, e in typed if a < e and s < b), None) if token in control else None
            ids.extend(self.encode_text(full[span[0] : span[1]]) if span else [token])
        return ids
