"""Speculative decoding on the bundled assistant: decode tokens/s with and without it, and the acceptance rate.

    python -m benchmarks.speculative [--backends onnx openvino torch] [--rounds 3] [--max-new-tokens 128]

Workloads (greedy, so both runs give the same tokens; `ignore_eos` so both decode the same count):
    triage   the triage JSON of a customer email under the triage system message (examples/triage_email.py)
    reply    an email reply that restates the customer's details (order number, item, address)
    summary  a one-line summary of the customer's message
    story    a free story (nothing to copy: where prompt lookup cannot help and must not slow decoding)

For each backend, workload and mode (off, lookup) the rounds alternate A B / B A; the table gives the median
decode tokens/s (`Usage.tokens_per_second`), the ratio to plain decoding and the acceptance rate
(`Usage.speculative_accepted / speculative_proposed`). Public API only: `tinylm.load`, `Model.chat`.

`--tune` instead replays prompt lookup's choices (n-gram sizes, most tokens k) over each workload's greedy output,
without timing anything: tokens decoded per forward pass and tokens proposed per pass, the figures the defaults
(`tinylm.speculative.PromptLookup`, `DEFAULT_TOKENS`) were chosen from.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys

import numpy as np

import tinylm
from tinylm.speculative import PromptLookup, Speculator

TRIAGE_SYSTEM = "Triage the customer's message. Reply with JSON: intent, category, order_number."
EMAILS = [
    "Hello, I ordered a lamp two weeks ago (order 4412-889) and it still has not arrived. Can you tell me where it "
    "is? My address is 14 Harbour Road, Leith, EH6 6LB.",
    "Hi, I was charged twice for order KX40918 (a blue wool jumper, size M). Please refund the second payment of "
    "39.90 to my Visa card ending 4417.",
    "Please change the delivery address of order ORD-77-3310 to Flat 2, 8 Mill Lane, Bristol BS1 4QT before it "
    "ships. The parcel is a pair of running shoes.",
]
WORKLOADS = {
    "triage": lambda email: [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": email}],
    "reply": lambda email: [
        {
            "role": "user",
            "content": f"{email}\n\nWrite a reply that restates my order number, the item and my address.",
        }
    ],
    "summary": lambda email: [{"role": "user", "content": f"Summarise this message in one sentence:\n{email}"}],
    "story": lambda email: [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and a fox."}],
}
MODES = {"off": None, "lookup": "lookup"}


def run(model: tinylm.Model, messages: list[dict[str, str]], mode: str, max_new_tokens: int) -> tinylm.Completion:
    return model.chat(messages, max_new_tokens=max_new_tokens, ignore_eos=True, speculative=MODES[mode])


def measure(model: tinylm.Model, workload: str, rounds: int, max_new_tokens: int) -> dict[str, dict[str, float]]:
    speeds: dict[str, list[float]] = {mode: [] for mode in MODES}
    proposed = accepted = 0
    for r in range(rounds):
        for email in EMAILS:
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))  # A B / B A
            outputs = {}
            for mode in order:
                done = run(model, WORKLOADS[workload](email), mode, max_new_tokens)
                speeds[mode].append(done.usage.tokens_per_second)
                outputs[mode] = done.token_ids
                if mode == "lookup":
                    proposed += done.usage.speculative_proposed
                    accepted += done.usage.speculative_accepted
            if outputs["off"] != outputs["lookup"]:
                print(f"  note: {workload}: tokens differ (a near-tie in the verifying pass)", file=sys.stderr)
            if workload == "story":
                break  # one prompt
    off = statistics.median(speeds["off"])
    on = statistics.median(speeds["lookup"])
    return {"off": off, "lookup": on, "ratio": on / off if off else 0.0, "accepted": accepted / max(proposed, 1)}


def replay(history: np.ndarray, start: int, lookup: PromptLookup, most: int) -> tuple[int, int]:
    """(forward passes, tokens proposed) to decode history[start:] greedily with prompt lookup (the first token comes
    from the prefill), proposing as `Speculator` does (k adapts within [1, most])."""
    speculator = Speculator(lookup, tokens=most)
    produced, passes = start + 1, 0
    while produced < history.shape[0]:
        proposal = speculator.propose(history[:produced], history.shape[0] - produced - 1)
        passes += 1
        if proposal is None:
            produced += 1
            continue
        k = proposal.tokens.shape[0]
        right = history[produced : produced + k] == proposal.tokens
        kept = int(np.argmin(right)) if not right.all() else k
        speculator.record(k, kept)
        produced += kept + 1
    return passes, speculator.proposed


def tune(model: tinylm.Model, workloads: list[str], max_new_tokens: int) -> None:
    runs = []
    for workload in workloads:
        for email in EMAILS[: 1 if workload == "story" else None]:
            ids = model.chat_ids(WORKLOADS[workload](email))
            done = model.generate(ids, max_new_tokens=max_new_tokens)
            runs.append((workload, np.asarray(ids + list(done.token_ids), np.int64), len(ids)))
    print("| workload | n (max..min) | k | tokens per pass | proposed per pass |")
    print("|---|---|---|---|---|")
    for workload in workloads:
        for (high, low), most in itertools.product([(3, 1), (3, 2), (4, 2), (2, 2)], [4, 6, 8]):
            passes = proposed = tokens = 0
            for name, history, start in runs:
                if name == workload:
                    p, q = replay(history, start, PromptLookup(max_ngram=high, min_ngram=low), most)
                    passes, proposed, tokens = passes + p, proposed + q, tokens + history.shape[0] - start - 1
            print(f"| {workload} | {high}..{low} | {most} | {tokens / passes:.2f} | {proposed / passes:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--backends", nargs="+", default=["onnx", "openvino", "torch"])
    parser.add_argument("--precision", default=None, help="e.g. int8 (default: each backend's)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--tune", action="store_true", help="replay lookup settings on greedy outputs (no timing)")
    args = parser.parse_args(argv)
    if args.tune:
        with tinylm.load(args.model, backend=args.backends[0], precision=args.precision) as model:
            tune(model, args.workloads, args.max_new_tokens)
        return 0
    print("| backend | workload | plain tok/s | lookup tok/s | ratio | accepted |")
    print("|---|---|---|---|---|---|")
    for backend in args.backends:
        with tinylm.load(args.model, backend=backend, precision=args.precision) as model:
            run(model, WORKLOADS["triage"](EMAILS[0]), "off", 8)  # warm up
            for workload in args.workloads:
                m = measure(model, workload, args.rounds, args.max_new_tokens)
                print(
                    f"| {backend} {model.precision} | {workload} | {m['off']:.1f} | {m['lookup']:.1f} | "
                    f"{m['ratio']:.2f}x | {m['accepted']:.0%} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
