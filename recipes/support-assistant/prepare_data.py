"""Turn the two support corpora into chat-format JSONL for `tinylm train` (run on the build machine).

    python recipes/support-assistant/prepare_data.py --data ../shared/data --out /work/artifacts/support-data

Reads bitext-customer-support (instruction/response pairs) and sgd-dialogues (user/system turns),
both train and validation splits, and writes train.jsonl / validation.jsonl (both corpora, for
pretraining), bitext-train.jsonl / bitext-validation.jsonl (bitext only) and triage-train.jsonl /
triage-validation.jsonl (the bitext questions with the triage JSON as the reply: intent, category and
order number, from the dataset's labels), all of {"messages": [{"role": "system"|"user"|"assistant",
"content": ...}]}; and sft-train.jsonl / sft-validation.jsonl, the second fine-tuning stage's mixture:
the bitext chats and triage records plus natural messages composed from the same split's records and the
hand-written phrasings (`augment.py`: emails with context and order numbers in many formats, second
turns, polite declines, triage records, plain-text replies). The output is derived data: it stays
outside the repository (the corpora's licenses and attribution are in the model card).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))  # routing.py, shared with the examples

# TRIAGE_SYSTEM asks for a triage record instead of a reply (examples/triage_email.py sends it)
from augment import SYSTEM, TRIAGE_SYSTEM, Composer, mixture, order_number

#: records of each kind composed for the second fine-tuning stage, per split
MIXTURE = {
    "train": {"chat": 8000, "second_turn": 1800, "decline": 1400, "triage": 3000, "text": 2000},
    "validation": {"chat": 200, "second_turn": 60, "decline": 60, "triage": 100, "text": 60},
}
#: the third fine-tuning stage: chats routed by intent (examples/routing.py), with enough of the second stage's
#: kinds that an unrouted chat, triage and plain text keep working; replies keep the `{{Order Number}}` placeholder
#: (the application fills it with the number it extracted: the model never writes one it could get wrong)
ROUTED = {
    "train": {
        "routed_chat": 5000,
        "routed_second_turn": 1200,
        "routed_decline": 700,
        "chat": 1500,
        "second_turn": 400,
        "decline": 300,
        "triage": 800,
        "text": 500,
    },
    "validation": {"routed_chat": 150, "routed_second_turn": 40, "routed_decline": 30, "chat": 40, "triage": 20},
}


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
        source = args.data / "bitext-customer-support" / f"{split}.jsonl"
        support, triaged = bitext(source), triage(source)
        write(args.out / f"bitext-{split}.jsonl", support)
        write(args.out / f"triage-{split}.jsonl", triaged)
        write(args.out / f"{split}.jsonl", support + sgd(args.data / "sgd-dialogues" / f"{split}.jsonl"))
        records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
        composed = list(mixture(Composer(records, random.Random(f"{split}-0")), MIXTURE[split]))
        write(args.out / f"sft-{split}.jsonl", support + triaged + composed)
        composer = Composer(records, random.Random(f"{split}-routed-0"), grounded=False)
        routed = list(mixture(composer, ROUTED[split]))
        write(args.out / f"routed-{split}.jsonl", routed)


if __name__ == "__main__":
    main()
