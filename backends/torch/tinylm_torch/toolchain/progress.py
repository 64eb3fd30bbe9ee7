"""A small progress line on stderr: step, loss, validation loss, tokens/s and ETA.

On a terminal it redraws one line; otherwise (logs, CI) it prints a line every `every` steps.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    def __init__(self, total: int, *, initial: int = 0, label: str = "", every: int = 10, stream: TextIO | None = None):
        self.total, self.initial, self.label, self.every = total, initial, label, max(1, every)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.tokens = 0

    def update(self, step: int, *, loss: float, tokens: int, val_loss: float | None = None) -> None:
        """Report that `step` (1-based, out of `total`) finished with `loss` after `tokens` more tokens."""
        self.tokens += tokens
        elapsed = time.perf_counter() - self.start
        done = step - self.initial
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - step) if done > 0 else 0.0
        val = f" val {val_loss:.4f}" if val_loss is not None else ""
        bar_width = 20
        filled = int(bar_width * step / max(1, self.total))
        line = (
            f"{self.label} [{'#' * filled}{'.' * (bar_width - filled)}] {step}/{self.total} "
            f"loss {loss:.4f}{val} | {rate:,.0f} tok/s | {format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}"
        )
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            if step >= self.total:
                self.stream.write("\n")
        elif step % self.every == 0 or step >= self.total or val_loss is not None:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.stream.write(("\n" if self.tty else "") + f"{self.label} {text}\n")
        self.stream.flush()
