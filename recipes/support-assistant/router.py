"""Train the intent router of examples/routing.py: a linear layer over the support embedder's sentence embeddings.

    python recipes/support-assistant/router.py --data ../shared/data [--out examples/data/intent_router.safetensors]

Training text: the bitext TRAINING split's questions (4,061) and natural messages composed from the same split
(`augment.Composer`: greetings, context, order numbers, typos; 6,000) with their intents, plus out-of-domain
requests (the "out_of_domain" class, 800). Softmax regression (full batch, Adam, weight decay) on the embeddings
of the bundled embedder (all-MiniLM-L6-v2, int8) — seconds on a CPU. Prints the accuracy on the hand-written
evaluation sets (recipes/eval: customer messages, the new intent of second turns, out-of-domain requests), which
the router never sees.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

import tinylm

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(EXAMPLES))
from augment import Composer  # noqa: E402
from evaluate import read  # noqa: E402
from routing import ROUTER, TOPICS  # noqa: E402


def training_text(records: list[dict], seed: str, *, composed: int, declines: int) -> tuple[list[str], list[str]]:
    composer = Composer(records, random.Random(seed))
    texts = [r["instruction"] for r in records]
    labels = [r["intent"] for r in records]
    for _ in range(composed):
        ex = composer.example(bare=composer.rng.random() < 0.2)
        texts.append(ex.message)
        labels.append(ex.intent)
    for _ in range(declines):
        texts.append(composer.out_of_domain_request())
        labels.append("out_of_domain")
    return texts, labels


def fit(x: np.ndarray, y: np.ndarray, classes: int, *, steps: int, weight_decay: float) -> tuple[np.ndarray, ...]:
    """Softmax regression: (weight (K, D), bias (K,)) for embeddings x (N, D) and labels y (N,)."""
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=weight_decay)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(xs), ys)
        loss.backward()
        opt.step()
    return layer.weight.detach().numpy(), layer.bias.detach().numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared/data folder")
    parser.add_argument("--embedder", default="support-embedder")
    parser.add_argument("--out", type=Path, default=ROUTER)
    parser.add_argument("--composed", type=int, default=6000)
    parser.add_argument("--declines", type=int, default=800)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    args = parser.parse_args()

    embedder = tinylm.load(args.embedder)
    train = read(args.data / "bitext-customer-support" / "train.jsonl")
    texts, labels = training_text(train, "router-0", composed=args.composed, declines=args.declines)
    intents = sorted(TOPICS)
    unknown = sorted(set(labels) - set(intents))
    if unknown:
        raise SystemExit(f"intents without a topic in examples/routing.py: {unknown}. Fix: add them to TOPICS.")
    # the embeddings are unit length: a scale lets the softmax get sharp without large weights
    scale = 10.0
    x = embedder.embed(texts) * scale  # (N, D)
    y = np.array([intents.index(label) for label in labels])
    weight, bias = fit(x.astype(np.float32), y, len(intents), steps=args.steps, weight_decay=args.weight_decay)
    weight = (weight * scale).astype(np.float32)  # folded in: the router takes the plain embeddings

    from safetensors.numpy import save_file

    meta = {"intents": json.dumps(intents), "embedder": args.embedder, "recipe": "recipes/support-assistant/router.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight, "bias": bias.astype(np.float32)}, str(args.out), metadata=meta)
    print(f"wrote {args.out} ({len(intents)} intents, {len(texts)} training texts)")

    from routing import IntentRouter

    router = IntentRouter.load(args.out, embedder=embedder)
    eval_dir = HERE.parent / "eval"
    sets = {
        "customer_messages": [(m["text"], m["intent"]) for m in read(eval_dir / "customer_messages.jsonl")],
        "second_turns": [(t["messages"][-1]["content"], t["intent"]) for t in read(eval_dir / "second_turns.jsonl")],
        "out_of_domain": [(o["text"], "out_of_domain") for o in read(eval_dir / "out_of_domain.jsonl")],
    }
    for name, pairs in sets.items():
        p = router.probabilities([text for text, _ in pairs])
        chosen = [intents[k] for k in p.argmax(axis=1)]
        accuracy = np.mean([c == label for c, (_, label) in zip(chosen, pairs, strict=True)])
        print(f"{name}: {accuracy:.1%} of {len(pairs)} routed to their intent")
        for c, (text, label), q in zip(chosen, pairs, p.max(axis=1), strict=True):
            if c != label:
                print(f"  {label} -> {c} ({q:.2f}): {text[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
