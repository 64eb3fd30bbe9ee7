"""What copying a held prompt prefix saves a batch's admission (`RowSlots.shared_prefix`, onnx rows).

    python -m benchmarks.prefix_reuse [--model DIR] [--rows 16] [--rounds 6]

Each round admits --rows new chats (distinct customer messages through the model's chat template, so they share
the system prompt and the template's head, not their text) in one `add_rows` on a fresh rows session, with the
prefix copy on and with it off (the same session asked to prefill every prompt whole), in alternating order; the
slots' held prompts are forgotten between admissions. Prints each admission's milliseconds and the medians.
Default model: the bundled support-assistant.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tinylm
from tinylm.row_slots import RowSlots

from .serve_load import MESSAGES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    model = tinylm.load(args.model)
    session = model._rows_session(args.rows)
    share = RowSlots.shared_prefix

    def whole(self: RowSlots, prompt: np.ndarray, slot: int) -> tuple[int, int]:
        share(self, prompt, slot)
        return slot, 0

    times: dict[str, list[float]] = {"copied": [], "whole": []}
    asked = 0
    for r in range(args.rounds):
        for mode in ("copied", "whole") if r % 2 else ("whole", "copied"):
            RowSlots.shared_prefix = share if mode == "copied" else whole  # type: ignore[method-assign]
            chats = [[{"role": "user", "content": MESSAGES[i % len(MESSAGES)].format(n=70000 + asked + i)}]
                     for i in range(args.rows)]  # fmt: skip
            asked += args.rows
            prompts = [np.asarray(model.chat_ids(c), np.int64) for c in chats]
            start = time.perf_counter()
            rows, _ = session.add_rows(prompts)
            times[mode].append(1e3 * (time.perf_counter() - start))
            for row in reversed(rows):
                session.drop_row(row)
            session._rows.held_length[:] = 0
    RowSlots.shared_prefix = share  # type: ignore[method-assign]
    for mode, ms in times.items():
        print(f"{mode}: " + ", ".join(f"{t:.1f}" for t in ms) + f" ms; median {statistics.median(ms):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
