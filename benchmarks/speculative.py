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
"""

from __future__ import annotations

import argparse
import statistics
import sys

import tinylm

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--backends", nargs="+", default=["onnx", "openvino", "torch"])
    parser.add_argument("--precision", default=None, help="e.g. int8 (default: each backend's)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args(argv)
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
