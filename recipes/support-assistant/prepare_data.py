"""Turn the two support corpora into chat-format JSONL for `tinylm train` (run on the build machine).

    python recipes/support-assistant/prepare_data.py --data ../shared/data --out /work/artifacts/support-data

Reads bitext-customer-support (instruction/response pairs) and sgd-dialogues (user/system turns),
both train and validation splits, and writes train.jsonl / validation.jsonl (both corpora, for
pretraining), bitext-train.jsonl / bitext-validation.jsonl (bitext only) and triage-train.jsonl /
triage-validation.jsonl (the bitext questions with the triage JSON as the reply: intent, category and
order number, from the dataset's labels) for the fine-tuning stage, all of
{"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}. The output is derived data:
it stays outside the repository (the corpora's licenses and attribution are in the model card).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SYSTEM = "You are a helpful customer-support assistant."
# the system message that asks for a triage record instead of a reply (examples/triage_email.py sends it)
TRIAGE_SYSTEM = "Triage the customer's message. Reply with JSON: intent, category, order_number."


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


def order_number(record: dict) -> str | None:
    """The order number as written in the question (the label can drop leading zeros), else None."""
    if record.get("entity_type") != "order_id" or not record.get("entity_value"):
        return None
    for match in re.finditer(r"[0-9A-Za-z][0-9A-Za-z-]*", record["instruction"]):
        if record["entity_value"] in match.group(0) and any(c.isdigit() for c in match.group(0)):
            return match.group(0)
    return record["entity_value"]


def triage(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        label = {"intent": r["intent"], "category": r["category"], "order_number": order_number(r)}
        messages = [
            {"role": "system", "content": TRIAGE_SYSTEM},
            {"role": "user", "content": r["instruction"].strip()},
            {"role": "assistant", "content": json.dumps(label)},  # the separators structured output writes
        ]
        out.append({"messages": messages})
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


def write(path: Path, records: list[dict]) -> None:
    records = list(records)
    random.Random(0).shuffle(records)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(records)} conversations -> {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared/data folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        support = bitext(args.data / "bitext-customer-support" / f"{split}.jsonl")
        write(args.out / f"bitext-{split}.jsonl", support)
        write(args.out / f"triage-{split}.jsonl", triage(args.data / "bitext-customer-support" / f"{split}.jsonl"))
        write(args.out / f"{split}.jsonl", support + sgd(args.data / "sgd-dialogues" / f"{split}.jsonl"))


if __name__ == "__main__":
    main()
