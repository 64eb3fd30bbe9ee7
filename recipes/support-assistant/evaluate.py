"""Is the support assistant on-intent? Its replies to held-out customer questions, scored by nearest intent centroid.

    python recipes/support-assistant/evaluate.py --data ../shared/data [--model support-assistant]
        [--embedder support-embedder] [--backend torch] [--max-new-tokens 96] [--samples 5]

For every question of the bitext VALIDATION split that does not near-copy a training question (196 of 453:
`tinylm_torch.toolchain.data.near_copies`, a training question holding >= 80% of its words; `--all` keeps
the 257 near-copies too) the assistant replies greedily
(its chat template adds the system prompt it was trained with). The embedder embeds the replies and the
TRAINING split's reference replies; each intent's centroid is the normalised mean of its reference replies.
A reply is on-intent when the nearest centroid is its question's intent. The same score for the validation
split's own reference replies is printed as the ceiling this measure allows.

Triage: the same questions sent with examples/triage_email.py's system message and JSON schema
(structured output); the share whose intent, category and order number equal the dataset's labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import tinylm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "examples"))
from prepare_data import order_number  # noqa: E402
from triage_email import triage  # noqa: E402


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def centroids(embedder: tinylm.Model, records: list[dict]) -> tuple[list[str], np.ndarray]:
    """Intents (sorted) and their unit-length centroids (K, D) from the records' reference responses."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_intent[r["intent"]].append(r["response"])
    intents = sorted(by_intent)
    means = np.stack([embedder.embed(by_intent[i]).mean(axis=0) for i in intents])  # (K, D)
    return intents, means / np.linalg.norm(means, axis=1, keepdims=True)


def on_intent(embedder: tinylm.Model, texts: list[str], labels: list[str], intents: list[str], cents: np.ndarray):
    """Fraction of `texts` whose nearest centroid is their label, and the per-text hits."""
    nearest = np.argmax(embedder.embed(texts) @ cents.T, axis=1)  # (N,)
    hits = [intents[int(k)] == label for k, label in zip(nearest, labels, strict=True)]
    return float(np.mean(hits)), hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared/data folder")
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--embedder", default="support-embedder")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--limit", type=int, default=None, help="only the first N validation questions")
    parser.add_argument("--all", action="store_true", help="keep validation questions that near-copy training ones")
    parser.add_argument("--samples", type=int, default=5, help="print this many question/reply pairs")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures and replies here")
    args = parser.parse_args()

    bitext = args.data / "bitext-customer-support"
    train, held_out = read(bitext / "train.jsonl"), read(bitext / "validation.jsonl")
    if not args.all:
        from tinylm_torch.toolchain.data import near_copies

        copied = near_copies([r["instruction"] for r in held_out], [r["instruction"] for r in train])
        held_out = [r for r, c in zip(held_out, copied, strict=True) if not c]
    held_out = held_out[: args.limit]
    model = tinylm.load(args.model, backend=args.backend)
    embedder = tinylm.load(args.embedder, backend=args.backend)
    intents, cents = centroids(embedder, train)

    replies, started, tokens = [], time.perf_counter(), 0
    for n, r in enumerate(held_out, 1):
        out = model.chat([{"role": "user", "content": r["instruction"]}], max_new_tokens=args.max_new_tokens)
        replies.append(out.text)
        tokens += out.usage.completion_tokens
        print(f"\r{n}/{len(held_out)} replies", end="", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(file=sys.stderr)

    right = {"intent": 0, "category": 0, "order_number": 0}
    for r in held_out:
        record = triage(model, r["instruction"])
        truth = {"intent": r["intent"], "category": r["category"], "order_number": order_number(r)}
        for key in right:
            right[key] += record[key] == truth[key]

    labels = [r["intent"] for r in held_out]
    score, hits = on_intent(embedder, replies, labels, intents, cents)
    ceiling, _ = on_intent(embedder, [r["response"] for r in held_out], labels, intents, cents)
    print(f"model {args.model} on {model.backend} ({model.precision}); embedder {args.embedder}")
    print(f"on-intent replies: {score:.1%} of {len(held_out)} held-out questions ({sum(hits)} hits)")
    print(f"reference replies under the same measure: {ceiling:.1%}")
    print(f"generated {tokens} tokens in {seconds:.0f} s ({tokens / seconds:.0f} tokens/s)")
    print(
        "triage (JSON-schema constrained) equal to the labels: "
        + ", ".join(f"{key} {n / len(held_out):.1%}" for key, n in right.items())
    )
    for r, reply in list(zip(held_out, replies, strict=True))[: args.samples]:
        print(f"\n[{r['intent']}] {r['instruction']}\n-> {reply}")
    if args.json is not None:
        report = {
            "model": args.model,
            "backend": model.backend,
            "on_intent": score,
            "reference_ceiling": ceiling,
            "triage": {key: n / len(held_out) for key, n in right.items()},
            "questions": len(held_out),
            "replies": [{"intent": lab, "reply": rep} for lab, rep in zip(labels, replies, strict=True)],
        }
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
