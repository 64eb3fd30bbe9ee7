"""Write the held-out retrieval sets used to evaluate distilled MiniLM students (`tinylm eval --retrieval`).

Source: the VALIDATION split of shared/data/bitext-customer-support (CDLA-Sharing-1.0, Bitext; never used
in training). Queries are the customer questions ("instruction"), documents the assistant answers
("response") of the same split. Two relevance definitions, one file each:

    bitext_retrieval_intent.jsonl   relevant = every answer of the same intent (27 intents): routing
    bitext_retrieval_record.jsonl   relevant = the answer written for that very question: harder

Queries that near-copy a training question (a training question holds >= 80% of their words,
`tinylm_torch.toolchain.data.near_copies`) are left out: 257 of the 453 validation questions do, and
figures on them measure memory. Every validation answer stays a document.

Format (see tinylm_torch.toolchain.evaluate): {"type": "document"|"query", "id", "text", "relevant": [...]}.
Derived data under CDLA-Sharing-1.0 s. 3.1(b): changed from the source by selecting and re-labelling
fields as described here.

    python recipes/toolchain/make_bitext_retrieval.py SOURCE_DIR OUT_DIR

The files hold the corpus's own text, so they are written to a work folder at run time and never
committed (the raw corpora stay in shared/data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(source: Path, out_dir: Path) -> None:
    from tinylm_torch.toolchain.data import near_copies

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (source / "validation.jsonl").read_text(encoding="utf-8").splitlines()]
    train = [
        json.loads(line)["instruction"] for line in (source / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    copied = near_copies([r["instruction"] for r in rows], train)
    docs = [{"type": "document", "id": f"d{i}", "text": r["response"]} for i, r in enumerate(rows)]
    by_intent: dict[str, list[str]] = {}
    for i, r in enumerate(rows):
        by_intent.setdefault(r["intent"], []).append(f"d{i}")
    for name, relevant in (
        ("intent", lambda i, r: by_intent[r["intent"]]),
        ("record", lambda i, r: [f"d{i}"]),
    ):
        queries = [
            {"type": "query", "id": f"q{i}", "text": r["instruction"], "relevant": relevant(i, r)}
            for i, r in enumerate(rows)
            if not copied[i]
        ]
        out = out_dir / f"bitext_retrieval_{name}.jsonl"
        out.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in docs + queries), encoding="utf-8")
        print(f"wrote {out}: {len(docs)} documents, {len(queries)} queries")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
