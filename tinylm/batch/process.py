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
    run = model.chat if task == "chat" else model.generate
    out = []
    # One row at a time until the core has batched generation (Model.generate_batch); this is the one
    # place that will call it, with the same rows in and the same records out.
    for row in rows:
        try:
            out.append(completion_record(row.id, run(row.value, **(generation or {}))))
        except (GenerationError, ChatTemplateError) as e:
            out.append({"id": row.id, "error": {"type": type(e).__name__, "message": str(e)}})
    return out
