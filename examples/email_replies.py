"""Draft a reply for every email in a folder, one draft file per email.

    python examples/email_replies.py examples/data/inbox drafts/ [--model support-assistant]

Reads INBOX/*.txt (the customer's message; a first line "Subject: ..." is used as context), writes
OUT/<name>.reply.txt, shows a progress bar on stderr, and skips drafts that already exist unless --overwrite.
The assistant's `{{Placeholder}}`s are filled from the company profile (`--company`, default
examples/data/company.toml; see examples/placeholders.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from placeholders import fill, load_profile, with_customer_details

import tinylm

PROFILE = Path(__file__).resolve().parent / "data" / "company.toml"


def progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = width * done // max(total, 1)
    rate = done / max(time.perf_counter() - started, 1e-9)
    bar = "#" * filled + "." * (width - filled)
    print(f"\r[{bar}] {done}/{total} emails ({rate:.2f}/s)", end="" if done < total else "\n", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inbox", type=Path, help="a folder of .txt emails")
    parser.add_argument("out", type=Path, help="where the drafts go")
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--overwrite", action="store_true", help="replace drafts that already exist")
    parser.add_argument("--company", type=Path, default=PROFILE, help="TOML profile that fills the placeholders")
    args = parser.parse_args()
    profile = load_profile(args.company)

    emails = sorted(args.inbox.glob("*.txt"))
    if not emails:
        print(f"error: no .txt emails in {args.inbox}. Fix: pass a folder holding one email per .txt file.")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    model = tinylm.load(args.model)
    started = time.perf_counter()
    progress(0, len(emails), started)
    for done, email in enumerate(emails, 1):
        target = args.out / f"{email.stem}.reply.txt"
        if args.overwrite or not target.exists():
            message = email.read_text(encoding="utf-8").strip()
            reply = model.chat([{"role": "user", "content": message}], max_new_tokens=args.max_new_tokens)
            details = with_customer_details(profile, [message])  # the customer's order number fills its placeholder
            target.write_text(fill(reply.text, details).strip() + "\n", encoding="utf-8")
        progress(done, len(emails), started)
    print(f"{len(emails)} drafts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
