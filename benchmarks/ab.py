"""The interleaved A/B loop that `onnx_ab.py` and `openvino_ab.py` share: every variant runs once per round, in a new
shuffled order each round (the same orders on every run), so a shared machine's drift hits all alike."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable


def interleave(runs: dict[str, Callable[[], tuple[float, float]]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """`rounds` measured rounds after a warm-up one of each `run() -> (first token ms, decode tokens/s)`."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds + 1):
        random.Random(r).shuffle(order)
        for name in order:
            measured = runs[name]()
            if r:  # round 0 warms up
                results[name].append(measured)
    return results


def table(results: dict[str, list[tuple[float, float]]], *, label: str = "artifact") -> str:
    """Medians per variant, and each one's decode speed over the first variant's, paired round by round."""
    base = next(iter(results.values()))
    lines = [f"| {label} | first token (ms) | decode tok/s | decode vs the first, paired |", "|---|---:|---:|---:|"]
    for name, runs in results.items():
        first = statistics.median(a for a, _ in runs)
        decode = statistics.median(b for _, b in runs)
        ratio = statistics.median(b / a for (_, a), (_, b) in zip(base, runs))
        lines.append(f"| {name} | {first:.1f} | {decode:.1f} | {ratio:.3f} |")
    return "\n".join(lines)
