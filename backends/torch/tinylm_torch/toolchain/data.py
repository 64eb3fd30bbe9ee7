"""Reading training and evaluation data: .txt and .jsonl files -> `Record`s (a text or a chat).

    .txt     one record per paragraph (blank-line separated)
    .jsonl   one record per line: {"text": ...}, or {"messages": [{"role", "content"}, ...]} (a chat,
             rendered with the model's chat template), or the fields named by `fields`

`fields` are paths into each JSON record: "instruction", "meta.title", "turns[].utterance" (`[]` walks a
list); each string found becomes its own text record (e.g. both sides of a Q/A pair).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import DataError

__all__ = ["Record", "read_records", "record_texts", "split_holdout", "training_records", "near_copies"]


@dataclass(frozen=True, kw_only=True)
class Record:
    """One training example: plain `text`, or a chat (`messages`)."""

    text: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None


def _walk(value: Any, parts: Sequence[str]) -> Iterator[str]:
    if not parts:
        if isinstance(value, str):
            yield value
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    key = head[:-2] if many else head
    if not isinstance(value, dict) or key not in value:
        return
    inner = value[key]
    for item in inner if many and isinstance(inner, list) else [inner]:
        yield from _walk(item, rest)


def _jsonl(path: Path, fields: Sequence[str]) -> Iterator[Record]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e}). Fix: write one JSON object per line.") from None
            if fields:
                for field in fields:
                    for text in _walk(obj, field.split(".")):
                        if text.strip():
                            yield Record(text=text)
            elif isinstance(obj, dict) and isinstance(obj.get("messages"), list):
                yield Record(messages=tuple(dict(m) for m in obj["messages"]))
            elif isinstance(obj, dict) and isinstance(obj.get("text"), str):
                if obj["text"].strip():
                    yield Record(text=obj["text"])
            else:
                keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
                raise DataError(
                    f"{path}:{n}: a record needs a 'text' or a 'messages' field (it has: {keys}). "
                    "Fix: name the fields to read with --field (e.g. --field instruction --field response)."
                )


def _txt(path: Path) -> Iterator[Record]:
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if block.strip():
            yield Record(text=block.strip("\n"))


def read_records(paths: Sequence[str | Path], *, fields: Sequence[str] = (), limit: int | None = None) -> list[Record]:
    """Every record of `paths` in order, at most `limit` from each file; `DataError` when a file is missing or empty."""
    records: list[Record] = []
    for p in map(Path, paths):
        taken = 0
        if not p.is_file():
            raise DataError(f"no data file at {p}. Fix: pass existing .txt or .jsonl files.")
        if p.suffix == ".jsonl":
            found = _jsonl(p, fields)
        elif p.suffix == ".txt":
            found = _txt(p)
        else:
            raise DataError(f"{p}: unknown data format {p.suffix!r}. Fix: use .txt (paragraphs) or .jsonl files.")
        for record in found:
            if limit is not None and taken >= limit:
                break
            records.append(record)
            taken += 1
    if not records:
        raise DataError(f"no records in {', '.join(map(str, paths))}. Fix: check the files and the --field names.")
    return records


class _DataConfig(Protocol):
    """The data fields train, finetune and distill configs share."""

    fields: tuple[str, ...]
    max_records: int | None
    val_data: tuple[Path, ...]
    val_fraction: float


def training_records(data: Sequence[Path], config: _DataConfig) -> tuple[list[Record], list[Record]]:
    """(train, validation) records of `data`: validation from `config.val_data`, else the held-out tail."""
    records = read_records(data, fields=config.fields, limit=config.max_records)
    if config.val_data:
        return records, read_records(config.val_data, fields=config.fields)
    return split_holdout(records, config.val_fraction)


def record_texts(records: Sequence[Record]) -> list[str]:
    """The plain texts of `records` (chats contribute their message contents)."""
    out: list[str] = []
    for r in records:
        if r.text is not None:
            out.append(r.text)
        else:
            out.extend(str(m.get("content") or "") for m in r.messages or ())
    return [t for t in out if t.strip()]


def split_holdout(records: list[Record], fraction: float) -> tuple[list[Record], list[Record]]:
    """(train, held-out): the last `fraction` of the records is held out (deterministic, at least one)."""
    if not 0 < fraction < 1 or len(records) < 2:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(records)} record(s). "
            "Fix: pass --val-data, or use more data and a --val-fraction between 0 and 1."
        )
    n = max(1, round(len(records) * fraction))
    return records[:-n], records[-n:]


def _words(text: str) -> set[str]:
    return set("".join(c if c.isalnum() else " " for c in text.lower()).split())


def near_copies(texts: Sequence[str], training: Sequence[str], *, overlap: float = 0.8) -> list[bool]:
    """For each text, whether a training text holds at least `overlap` of its words (verbatim copies included).

    A held-out split whose rows paraphrase the training rows measures memory, not generalisation:
    drop the rows this marks before reporting figures on it.
    """
    pool = [_words(t) for t in training]
    index: dict[str, list[int]] = {}
    for i, words in enumerate(pool):
        for w in words:
            index.setdefault(w, []).append(i)
    marks = []
    for text in texts:
        words = _words(text)
        if not words:
            marks.append(False)
            continue
        counts: dict[int, int] = {}
        for w in words:
            for i in index.get(w, ()):
                counts[i] = counts.get(i, 0) + 1
        marks.append(max(counts.values(), default=0) >= overlap * len(words))
    return marks
