"""Turn the two support corpora into chat-format JSONL for `tinylm train` (run on the build machine).

    python recipes/support-assistant/prepare_data.py --data ../shared/data --out /work/artifacts/support-data

Reads bitext-customer-support (instruction/response pairs) and sgd-dialogues (user/system turns),
both train and validation splits, and writes train.jsonl / validation.jsonl of
{"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}. The output is derived data:
it stays outside the repository (the corpora's licenses and attribution are in the model card).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SYSTEM = "You are a helpful customer-support assistant."


def bitext(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": r["instruction"].strip()},
                    {"role": "assistant", "content": r["response"].strip()},
                ]
            }
        )
    return out


def sgd(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        messages = [{"role": "system", "content": SYSTEM}]
        for turn in d["turns"]:
            role = "user" if turn["speaker"] == "USER" else "assistant"
            if messages[-1]["role"] == role:  # merge consecutive turns of one speaker
                messages[-1]["content"] += " " + turn["utterance"].strip()
            else:
                messages.append({"role": role, "content": turn["utterance"].strip()})
        if len(messages) > 2:
            out.append({"messages": messages})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared/data folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        records = bitext(args.data / "bitext-customer-support" / f"{split}.jsonl")
        records += sgd(args.data / "sgd-dialogues" / f"{split}.jsonl")
        random.Random(0).shuffle(records)
        with (args.out / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{split}: {len(records)} conversations -> {args.out / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
