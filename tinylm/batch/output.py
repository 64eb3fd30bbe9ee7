"""The output file of a batch job: whole JSON lines appended and fsynced, each id at most once.

A job killed at any moment leaves complete lines plus at most one torn last line. Opening the file again cuts
the torn line off and returns the ids already written, so a rerun writes exactly the missing rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import BatchError
from .rows import id_key

__all__ = ["OutputFile"]


def _written_ids(path: Path) -> tuple[set[str], int]:
    """(ids of the complete lines, the byte length of those lines) of an existing output file."""
    done: set[str] = set()
    good = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                break  # torn by a kill mid-write: never a row
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or "id" not in obj:
                raise BatchError(
                    f"{path}:{lineno} is not a row that tinylm batch wrote. Fix: pass a new output file, "
                    "or remove that line."
                )
            done.add(id_key(obj["id"]))
            good += len(line)
    return done, good


class OutputFile:
    """Append-only JSON Lines keyed by `id`. Use `OutputFile.open(path)`; `done` holds the ids written."""

    def __init__(self, path: Path, fd: int, done: set[str]) -> None:
        self.path = path
        self._fd = fd
        self.done = done

    @classmethod
    def open(cls, path: os.PathLike[str]) -> OutputFile:
        """Open (or create) the output, cutting off a torn last line left by a killed job."""
        path = Path(path)
        done: set[str] = set()
        try:
            if path.exists():
                done, good = _written_ids(path)
                if good < path.stat().st_size:
                    os.truncate(path, good)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise BatchError(f"cannot write the output {path}: {e.strerror}. Fix: pass a writable path.") from None
        return cls(path, fd, done)

    def write(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append the records whose id is not written yet, as whole lines, then fsync; returns how many."""
        lines, keys = [], []
        for record in records:
            key = id_key(record["id"])
            if key in self.done or key in keys:
                continue
            keys.append(key)
            lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        data = memoryview("".join(lines).encode("utf-8"))
        while data:
            data = data[os.write(self._fd, data) :]
        os.fsync(self._fd)
        self.done.update(keys)
        return len(keys)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
