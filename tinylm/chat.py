"""Chat templates: the model's own jinja2 template, rendered as `transformers`' `apply_chat_template`.

Same environment (sandboxed, `trim_blocks`, `lstrip_blocks`, loop controls), same helpers
(`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII), same variables (`messages`,
`add_generation_prompt`, `tools`, `documents`, and the special tokens such as `bos_token`).
Templates are untrusted input: they run in jinja2's immutable sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from .errors import ChatTemplateError

__all__ = ["render_chat", "Message"]

Message = Mapping[str, Any]


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    import jinja2
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

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

    def tojson(
        x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(
            f"the model's chat template does not parse (line {e.lineno}: {e.message}). "
            "Fix: correct chat_template in tokenizer_config.json (or chat_template.jinja)."
        ) from None


def render_chat(
    template: str,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> str:
    """Render `messages` (dicts with `role` and `content`) with the model's chat template."""
    import jinja2

    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ChatTemplateError(
                f"message {i} is {m!r}; each message must be a dict with 'role' and 'content'. "
                "Fix: pass e.g. [{'role': 'user', 'content': 'Hello'}]."
            )
    context = {**(special_tokens or {}), **kwargs}
    try:
        return _compile(template).render(
            messages=[dict(m) for m in messages],
            tools=list(tools) if tools is not None else None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            **context,
        )
    except jinja2.TemplateError as e:
        raise ChatTemplateError(
            f"the model's chat template refused these messages: {e}. "
            "Fix: follow the roles and order the template expects (many require alternating user/assistant turns)."
        ) from None
