"""A progress bar on stderr: rows done of the total, rows/s and the time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """`update(n)` after each batch. On a terminal the bar redraws in place; elsewhere (a log file) one line is
    written at most every `every` seconds and at the end. The speed counts only the rows of this run, not the
    rows a resumed job found already written."""

    def __init__(
        self, *, total: int, done: int = 0, stream: TextIO | None = None, enabled: bool = True, every: float = 10.0
    ) -> None:
        self.total, self.done, self._start_done = total, done, done
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every = every
        self._start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "--:--"
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        return f"[{bar:<24}] {self.done}/{self.total} rows  {rate:.2f} rows/s  ETA {eta}  elapsed {_duration(elapsed)}"

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (not self._tty and now - self._last < self.every and self.done < self.total):
            return
        self._last = now
        self.stream.write(("\r" + self.line()) if self._tty else self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write(("\r" + self.line() + "\n") if self._tty else "")
            self.stream.flush()
