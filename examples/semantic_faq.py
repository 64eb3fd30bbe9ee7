"""Answer questions from an FAQ by meaning, not keywords: embed the FAQ once, return the closest entry.

    python examples/semantic_faq.py "my money has not come back yet" [--faq examples/data/faq.json]

Without questions on the command line it reads them from stdin, one per line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import tinylm

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*")
    parser.add_argument("--faq", type=Path, default=HERE / "data" / "faq.json", help="a JSON list of question/answer")
    parser.add_argument("--model", default="support-embedder")
    args = parser.parse_args()

    faq = json.loads(args.faq.read_text(encoding="utf-8"))
    embedder = tinylm.load(args.model)
    keys = embedder.embed([f"{e['question']} {e['answer']}" for e in faq])  # (N, D), unit length
    questions = args.questions or [line.strip() for line in sys.stdin if line.strip()]
    for question in questions:
        scores = keys @ embedder.embed([question])[0]  # cosine similarity with every entry, (N,)
        best = int(np.argmax(scores))
        print(f"Q: {question}\nA: {faq[best]['answer']}  (matched {faq[best]['question']!r}, {scores[best]:.2f})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
