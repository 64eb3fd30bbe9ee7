"""The one function a batch of rows goes through, in this process and in each Ray worker alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ChatTemplateError, GenerationError
from .rows import Row

__all__ = ["process_rows", "completion_record"]


def completion_record(row_id: Any, done: Any) -> dict[str, Any]:
    """The output row of one generation: the text, why it ended and the token counts (no timings, so that a
    rerun writes the same line)."""
    u = done.usage
    usage = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }
    return {"id": row_id, "text": done.text, "finish_reason": done.finish_reason, "usage": usage}


def process_rows(
    model: Any,
    rows: Sequence[Row],
    *,
    task: str,
    generation: Mapping[str, Any] | None = None,
    normalize: bool = True,
) -> list[dict[str, Any]]:
    """Output rows for `rows`, in their order.

    `generation` holds the keyword options of `Model.generate` (decoders); `normalize` is `Model.embed`'s. An input
    the model refuses (a prompt longer than its context, a chat its template rejects) gives a row with an `error`
    instead of stopping the job; any other failure raises, and a rerun resumes.
    """
    if task == "embed":
        vectors = model.embed([r.value for r in rows], normalize=normalize)
        return [{"id": r.id, "embedding": [float(x) for x in v]} for r, v in zip(rows, vectors)]
    options = dict(generation or {})
    out: list[dict[str, Any] | None] = [None] * len(rows)
    prompts: dict[int, Any] = {}  # row index -> its prompt (token ids for a chat: its template rendered once)
    for i, row in enumerate(rows):
        try:
            prompts[i] = model.chat_ids(row.value) if task == "chat" else row.value
        except (GenerationError, ChatTemplateError) as e:
            out[i] = _error(row.id, e)
    try:  # the rows decoded together (Model.generate_batch: each row the tokens generate gives it alone)
        done = model.generate_batch(list(prompts.values()), **options)
        for i, completion in zip(prompts, done, strict=True):
            out[i] = completion_record(rows[i].id, completion)
    except (GenerationError, ChatTemplateError):  # a row the model refuses (e.g. too long): find it, keep the rest
        for i, prompt in prompts.items():
            try:
                out[i] = completion_record(rows[i].id, model.generate(prompt, **options))
            except (GenerationError, ChatTemplateError) as e:
                out[i] = _error(rows[i].id, e)
    return [record for record in out if record is not None]


def _error(row_id: Any, error: Exception) -> dict[str, Any]:
    return {"id": row_id, "error": {"type": type(error).__name__, "message": str(error)}}
