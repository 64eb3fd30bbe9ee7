"""Structured output: JSON-schema, regex and choice constraints as a logits mask in the one loop.

    model.generate(prompt, response_format={"type": "object", ...})      # a JSON schema (dict)
    model.generate(prompt, response_format=Ticket)                       # a pydantic model class
    model.generate(prompt, response_format=re.compile(r"ORD-\\d{6}"))    # a regular expression
    model.generate(prompt, response_format=["refund", "delivery", ...])  # one of N choices

Built on llguidance (extra `tinylm[structured]`): its matcher, fed the model's own tokenizer.json,
says which tokens may come next; tinylm sets the others to -inf before sampling, so the same
constraint works on every backend and with every sampler. When the output is complete only
end-of-sequence is allowed. `Completion.parsed` holds the parsed result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConstraintError, GenerationError

__all__ = ["Constraint", "Grammar", "compile_constraint", "constraint_tokenizer", "ResponseFormat"]

ResponseFormat = Any  # dict (JSON schema or OpenAI response_format), pydantic class, re.Pattern, list of str, Grammar


def _text(text: str) -> str:
    return text


@dataclass(frozen=True)
class Grammar:
    """A grammar in llguidance's Lark syntax (`%json {schema}` for a JSON part), e.g. a tool call: literal text
    around JSON that matches a schema. `parse` turns a complete output into `Completion.parsed`."""

    lark: str
    parse: Callable[[str], Any] = _text
    kind: str = "grammar"


# Compact JSON, written as json.dumps writes it: small models given free whitespace tend to spend
# their token budget on it. A schema's own "x-guidance" options override these defaults.
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class _Spec:
    kind: str  # "json" | "regex" | "choice"
    grammar: str
    parse: Any


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.numpy
    except ImportError:
        from .install import install_command

        raise ConstraintError(
            f"structured output needs the llguidance package. Fix: {install_command('structured')}"
        ) from None
    return llguidance


def _spec(fmt: ResponseFormat) -> _Spec:
    """Turn a user's response_format into an llguidance grammar and a parser for the result."""
    matcher = _llguidance().LLMatcher
    if isinstance(fmt, Grammar):
        return _Spec(fmt.kind, matcher.grammar_from_lark(fmt.lark), fmt.parse)
    if isinstance(fmt, re.Pattern):
        pattern = fmt.pattern

        def parse_regex(text: str) -> str:
            return text

        return _Spec("regex", matcher.grammar_from_regex(pattern), parse_regex)
    if isinstance(fmt, Sequence) and not isinstance(fmt, str | bytes) and fmt and all(isinstance(c, str) for c in fmt):
        choices = list(dict.fromkeys(fmt))
        if any(not c for c in choices):
            raise ConstraintError("a choice cannot be empty. Fix: give non-empty strings.")
        pattern = "|".join(re.escape(c) for c in choices)

        def parse_choice(text: str) -> str:
            return text

        return _Spec("choice", matcher.grammar_from_regex(f"({pattern})"), parse_choice)
    if isinstance(fmt, type) and hasattr(fmt, "model_json_schema"):  # a pydantic model class
        model_cls = fmt
        return _Spec(
            "json",
            matcher.grammar_from_json_schema(model_cls.model_json_schema(), defaults=_JSON_DEFAULTS),
            model_cls.model_validate_json,
        )
    if isinstance(fmt, dict):
        schema: Any = fmt
        if fmt.get("type") == "json_object":  # OpenAI's "any JSON object"
            schema = {"type": "object"}
        elif fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):  # OpenAI's wrapper
            schema = fmt["json_schema"].get("schema", {})
        return _Spec("json", matcher.grammar_from_json_schema(schema, defaults=_JSON_DEFAULTS), json.loads)
    raise ConstraintError(
        f"response_format of type {type(fmt).__name__} is not supported. Fix: pass a JSON schema (dict), a "
        "pydantic model class, a compiled regular expression (re.compile), or a list of choices."
    )


def constraint_tokenizer(tokenizer_json: str, *, vocab_size: int, eos_ids: Sequence[int]) -> Any:
    """llguidance's view of a model's tokenizer (build once per model: it takes tens of milliseconds)."""
    if not eos_ids:
        raise ConstraintError(
            "structured output needs an end-of-sequence token to finish on, and this model declares none. "
            "Fix: set eos_token_id in the model's generation_config.json."
        )
    return _llguidance().LLTokenizer(tokenizer_json, n_vocab=vocab_size, eos_token=list(eos_ids))


def compile_constraint(fmt: ResponseFormat, tokenizer: Any, *, vocab_size: int) -> Constraint:
    """Validate `fmt` for one model's tokenizer; raises `ConstraintError` before any generation."""
    spec = _spec(fmt)
    problem = _llguidance().LLMatcher.validate_grammar(spec.grammar)
    if problem:
        raise ConstraintError(f"the {spec.kind} constraint cannot be used: {problem}. Fix: simplify or correct it.")
    return Constraint(spec, tokenizer, vocab_size)


class Constraint:
    """A compiled constraint; `processor()` gives a fresh logits processor for one generation."""

    def __init__(self, spec: _Spec, tokenizer: Any, vocab_size: int) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    @property
    def kind(self) -> str:
        return self.spec.kind

    def processor(self) -> _Mask:
        return _Mask(self)

    def parse(self, text: str) -> Any:
        """The parsed result of a complete output (a dict/list for JSON, the model instance for pydantic)."""
        try:
            return self.spec.parse(text)
        except ValueError as e:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
            raise GenerationError(f"the constrained output does not parse ({e}). Fix: report this as a bug.") from e


class _Mask:
    """The logits processor: feeds each new token to the matcher and masks what may not come next."""

    def __init__(self, constraint: Constraint) -> None:
        llg = _llguidance()
        self._numpy = llg.numpy
        self.matcher = llg.LLMatcher(constraint.tokenizer, constraint.spec.grammar)
        self.bitmask = llg.numpy.allocate_token_bitmask(1, constraint.tokenizer.vocab_size)  # (1, ceil(V/32))
        self.vocab_size = constraint.vocab_size
        self.seen: int | None = None  # history length at the previous call

    def __call__(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        if self.seen is not None:
            for token in history[self.seen :]:  # the tokens sampled since the last call
                if not self.matcher.consume_token(int(token)):
                    raise GenerationError(
                        f"constraint violated: {self.matcher.get_error()}. Fix: this is a bug (the constraint "
                        "allowed a token it then refused): report it, and generate without response_format meanwhile."
                    )
        self.seen = len(history)
        self._numpy.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        allowed = np.unpackbits(self.bitmask[0].view(np.uint8), bitorder="little")[: logits.shape[-1]]  # (V,)
        return np.where(allowed.astype(bool), logits, np.float32(-np.inf))
