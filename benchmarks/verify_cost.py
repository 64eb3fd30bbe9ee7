"""What a verifying pass costs, in plain decode steps: the price speculative decoding pays per proposal.

    python -m benchmarks.verify_cost [MODEL] [--backend onnx] [--precision int8] [--tokens 3 5] [--rounds 6]

MODEL: a model folder or a bundled name (default: the bundled support-assistant). After a 40-token prompt, each
round times --steps plain `step` calls (one token each, then truncated back) and, for every count k in --tokens,
--steps passes of k tokens through `forward(..., all_positions=True)` (the logits of every position, as a
verification needs them) each followed by `truncate` back to the prompt (a rejected proposal's rollback). The
table gives the median step and each pass's median cost divided by the step's, over the rounds.

Speculative decoding gains where a pass of k tokens costs much less than k steps: with a share a of proposals kept,
a pass yields 1 + a + ... + a^(k-1) tokens on average (k - 1 proposed), so at a = 0.45 and k = 5 (four proposed)
it needs to cost under about 1.2 steps for 1.5x. Uses the model's own session (`Model._live()`, internal), as the
speculative loop does; a backend without `step` or `truncate` is refused with its reason.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="support-assistant")
    parser.add_argument("--backend")
    parser.add_argument("--precision")
    parser.add_argument("--tokens", type=int, nargs="+", default=[3, 5], help="tokens per verifying pass")
    parser.add_argument("--steps", type=int, default=20, help="timed calls of each kind per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)

    import tinylm

    model = tinylm.load(args.model, backend=args.backend, precision=args.precision)
    session = model._live()
    for needed in ("step", "truncate"):
        if not hasattr(session, needed):
            print(f"{model.backend} sessions have no {needed}(): nothing to measure", file=sys.stderr)
            return 2
    vocab = model.spec.vocab_size
    prompt = np.array([[3 + (j * 104729) % (min(vocab, 1000) - 3) for j in range(40)]], np.int64)  # (1, 40)
    session.reset()
    session.forward(prompt)
    held = session.length

    def steps() -> float:
        times = []
        for i in range(args.steps):
            start = time.perf_counter()
            session.step(5 + i)
            times.append(time.perf_counter() - start)
        session.truncate(held)
        return statistics.median(times)

    def passes(k: int) -> float:
        ids = np.arange(5, 5 + k, dtype=np.int64)[None, :]  # (1, k)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            session.forward(ids, all_positions=True)
            session.truncate(held)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    steps(), [passes(k) for k in args.tokens]  # warm-up
    step_times: list[float] = []
    ratios: dict[int, list[float]] = {k: [] for k in args.tokens}
    for _ in range(args.rounds):
        step = steps()
        step_times.append(step)
        for k in args.tokens:
            ratios[k].append(passes(k) / step)
    cells = " | ".join(f"{statistics.median(ratios[k]):.2f}" for k in args.tokens)
    print(f"| model | backend | precision | step (ms) | {' | '.join(f'pass of {k} (steps)' for k in args.tokens)} |")
    print("|---|---|---|---:|" + "---:|" * len(args.tokens))
    step_ms = 1e3 * statistics.median(step_times)
    print(f"| {args.model} | {model.backend} | {model.precision} | {step_ms:.2f} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
