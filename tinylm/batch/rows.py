"""A `tinylm batch` input file: one JSON object a line -> `Row`s (an id and the task's input)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import BatchError

__all__ = ["Task", "TASKS", "INPUT_FIELD", "Row", "id_key", "read_rows", "check_value"]

Task = Literal["generate", "chat", "embed"]
TASKS: tuple[Task, ...] = ("generate", "chat", "embed")
#: the field of an input line each task reads
INPUT_FIELD: dict[str, str] = {"generate": "prompt", "chat": "messages", "embed": "text"}


@dataclass(frozen=True, slots=True)
class Row:
    """One input row. `id` is the line's `id` (a string or an integer), else its 1-based line number;
    `value` is the prompt (generate), the messages (chat) or the text (embed)."""

    id: str | int
    value: Any


def id_key(row_id: Any) -> str:
    """The canonical form of an id, so that 7 and "7" stay different ids and a resumed job recognises both."""
    return json.dumps(row_id, ensure_ascii=False)


def check_value(task: str, value: Any) -> str | None:
    """Why `value` cannot be the input of `task` (None when it can)."""
    if task == "chat":
        ok = isinstance(value, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
        return None if ok and value else "must be a non-empty list of {'role': ..., 'content': ...} objects"
    return None if isinstance(value, str) else "must be a string"


def _parse(path: os.PathLike[str], lineno: int, line: str, task: str) -> Row:
    where = f"{os.fspath(path)}:{lineno}"
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise BatchError(f"{where} is not JSON ({e}). Fix: write one JSON object per line.") from None
    field = INPUT_FIELD[task]
    if not isinstance(obj, dict) or field not in obj:
        raise BatchError(f"{where} has no {field!r} field, which --task {task} reads. Fix: add it to every line.")
    problem = check_value(task, obj[field])
    if problem:
        raise BatchError(f"{where}: {field!r} {problem}. Fix: correct that line.")
    row_id = obj.get("id", lineno)
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        raise BatchError(f"{where}: 'id' must be a string or an integer. Fix: correct that line, or drop its id.")
    return Row(id=row_id, value=obj[field])


def iter_rows(path: os.PathLike[str], *, task: str) -> Iterator[Row]:
    """The rows of a JSON Lines file in order (blank lines skipped, still counted as line numbers)."""
    if task not in INPUT_FIELD:
        raise BatchError(f"unknown task {task!r}. Fix: use one of {', '.join(TASKS)}.")
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise BatchError(
            f"cannot read the input {os.fspath(path)}: {e.strerror}. Fix: pass a JSON Lines file."
        ) from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield _parse(path, lineno, line, task)


def read_rows(path: os.PathLike[str], *, task: str) -> list[Row]:
    """All rows of the input, checked: every line parses and no id repeats (raises `BatchError`)."""
    rows, seen = [], set()
    for row in iter_rows(path, task=task):
        key = id_key(row.id)
        if key in seen:
            raise BatchError(
                f"{os.fspath(path)}: the id {row.id!r} appears twice. Fix: give every line its own id "
                "(or none: the line number is used)."
            )
        seen.add(key)
        rows.append(row)
    return rows
