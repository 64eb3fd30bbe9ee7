"""Chat templates: the model's own jinja2 template, rendered as `transformers`' `apply_chat_template`.

Same environment (sandboxed, `trim_blocks`, `lstrip_blocks`, loop controls), same helpers
(`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII), same variables (`messages`,
`add_generation_prompt`, `tools`, `documents`, and the special tokens such as `bos_token`).
Templates are untrusted input: they run in jinja2's immutable sandbox.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from .errors import ChatTemplateError
from .sandbox import Limits as TemplateLimits

__all__ = ["render_chat", "Message", "TemplateLimits", "mark_special_text"]

Message = Mapping[str, Any]

_FIX_TEMPLATE = "correct chat_template in tokenizer_config.json (or chat_template.jinja)."


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    import jinja2
    from jinja2.ext import Extension

    from .sandbox import BoundedEnvironment

    class GenerationBlock(Extension):
        """`{% generation %}...{% endgeneration %}` marks assistant text; rendered as its body."""

        tags = {"generation"}  # noqa: RUF012 - jinja2 reads this class attribute

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = BoundedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.compile_template(template)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(
            f"the model's chat template does not parse (line {e.lineno}: {e.message}). Fix: {_FIX_TEMPLATE}"
        ) from None
    except Exception as e:  # e.g. RecursionError on absurdly nested expressions: the template is the problem
        raise ChatTemplateError(
            f"the model's chat template cannot be compiled ({type(e).__name__}: {e}). Fix: {_FIX_TEMPLATE}"
        ) from None


def render_chat(
    template: str,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    limits: TemplateLimits | None = None,
    **kwargs: Any,
) -> str:
    """Render `messages` (dicts with `role` and `content`) with the model's chat template.

    Rendering is bounded (`limits`, default `TemplateLimits()`: 2 s, 4,000,000 characters); a template that
    goes over, recurses without end or fails in any other way raises `ChatTemplateError`.
    """
    import jinja2

    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ChatTemplateError(
                f"message {i} is {m!r}; each message must be a dict with 'role' and 'content'. "
                "Fix: pass e.g. [{'role': 'user', 'content': 'Hello'}]."
            )
    context = {**(special_tokens or {}), **kwargs}
    compiled = _compile(template)
    from .sandbox import LimitExceeded, bounded

    try:
        with bounded(limits or TemplateLimits()):
            return compiled.render(
                messages=[dict(m) for m in messages],
                tools=list(tools) if tools is not None else None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **context,
            )
    except LimitExceeded as e:
        raise ChatTemplateError(
            f"the model's chat template was stopped: {e}. Fix: shorten the messages if they are that long; "
            f"otherwise the template itself loops or grows without bound: {_FIX_TEMPLATE}"
        ) from None
    except jinja2.TemplateError as e:
        raise ChatTemplateError(
            f"the model's chat template refused these messages: {e}. "
            "Fix: follow the roles and order the template expects (many require alternating user/assistant turns)."
        ) from None
    except RecursionError:
        raise ChatTemplateError(
            f"the model's chat template recursed without end (a macro or loop calling itself). Fix: {_FIX_TEMPLATE}"
        ) from None
    except MemoryError:
        raise ChatTemplateError(
            f"the model's chat template ran out of memory. Fix: shorten the messages, or {_FIX_TEMPLATE}"
        ) from None
    except Exception as e:  # the template is untrusted code: whatever it raises is its failure, typed
        raise ChatTemplateError(
            f"the model's chat template failed on these messages ({type(e).__name__}: {e}). "
            f"Fix: check the messages' fields (role, content as text), or {_FIX_TEMPLATE}"
        ) from None


def mark_special_text(value: Any, specials: Sequence[str]) -> tuple[Any, re.Pattern[str] | None]:
    """`value` (messages, tools: nested dicts, lists, strings) with every special token's text inside its
    strings replaced by a marker the template cannot forge, and the pattern of those markers.

    The marker is `\\ue000<nonce>.<index>\\ue001` (private-use characters and digits, which templates do not
    change); group 1 of the pattern is the index into `specials`. (value, None) when no string holds one.
    """
    if not specials:
        return value, None
    found = re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)))
    index = {t: i for i, t in enumerate(specials)}
    nonce = secrets.randbelow(10**12)
    hit = False

    def mark(m: re.Match[str]) -> str:
        nonlocal hit
        hit = True
        return f"\ue000{nonce}.{index[m.group(0)]}\ue001"

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return found.sub(mark, v)
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    marked = walk(value)
    return (marked, re.compile(f"\ue000{nonce}\\.(\\d+)\ue001")) if hit else (value, None)
