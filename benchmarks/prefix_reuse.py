"""What held prompt keys save: a batch's admission (`RowSlots.shared_prefix`, onnx rows) and a chat's first
token on the model's own session (onnx: a new prompt runs only what the session's prefills do not already hold).

    python -m benchmarks.prefix_reuse [--model DIR] [--rows 16] [--rounds 6]

Each round admits --rows new chats (distinct customer messages through the model's chat template, so they share
the system prompt and the template's head, not their text) in one `add_rows` on a fresh rows session, with the
prefix copy on and with it off (the same session asked to prefill every prompt whole), in alternating order; the
slots' held prompts are forgotten between admissions. Then `Model.chat` answers the same customer messages after
a system prompt of about 200 tokens (a shop's policies), with the session's held keys used and ignored in
alternating rounds: the first token's milliseconds (`Usage.time_to_first_token`). Prints the medians. Default model:
the bundled support-assistant.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tinylm
from tinylm.row_slots import RowSlots

from .serve_load import MESSAGES

POLICY = (
    "You are the support assistant of a small online shop. Orders ship within two working days. Refunds are paid "
    "within five working days of the return arriving. Customers can cancel an order until it ships. Delivery "
    "addresses can be changed until the order ships. Invoices are sent by email. "
) * 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    model = tinylm.load(args.model)
    session = model._rows_session(args.rows)
    share = RowSlots.shared_prefix

    def whole(self: RowSlots, prompt: np.ndarray, slot: int, **options: int) -> tuple[int, int]:
        share(self, prompt, slot, **options)
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
        print(f"add_rows of {args.rows} chats, prompts {mode}: " + ", ".join(f"{t:.1f}" for t in ms) + f" ms; "
              f"median {statistics.median(ms):.1f}")  # fmt: skip

    system = {"role": "system", "content": POLICY}
    session = model._live()
    first: dict[str, list[float]] = {"held": [], "ignored": []}
    for r in range(args.rounds):
        for mode in ("held", "ignored") if r % 2 else ("ignored", "held"):
            session._reuses = mode == "held"
            for i in range(len(MESSAGES)):
                chat = [system, {"role": "user", "content": MESSAGES[i].format(n=80000 + i)}]
                first[mode].append(1e3 * model.chat(chat, max_new_tokens=2).usage.time_to_first_token)
    session._reuses = True
    tokens = len(model.chat_ids([system, {"role": "user", "content": MESSAGES[0].format(n=80000)}]))
    for mode, ms in first.items():
        print(f"chat after a shared system prompt ({tokens}-token prompts), keys {mode}: first token median "
              f"{statistics.median(ms):.1f} ms over {len(ms)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
