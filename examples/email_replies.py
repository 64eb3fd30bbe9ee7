"""Draft a reply for every email in a folder, one draft file per email.

    python examples/email_replies.py examples/data/inbox drafts/ [--model support-assistant]

Reads INBOX/*.txt (the customer's message; a first line "Subject: ..." is used as context), writes
OUT/<name>.reply.txt as each draft is done, shows a progress bar on stderr, and skips drafts that already exist
unless --overwrite. The emails are drafted in batches (`Model.chat_batch`: --batch-size at once, each draft the
text `chat` gives that email alone).
Each email is routed by intent first (examples/routing.py, as the support bot does; `--no-routing` turns it off).
The assistant's `{{Placeholder}}`s are filled from the company profile (`--company`, default
examples/data/company.toml; see examples/placeholders.py), `{{Order Number}}` with the one the customer gave.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from placeholders import fill, load_profile, with_customer_details
from routing import IntentRouter

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
    parser.add_argument("--batch-size", type=int, default=8, help="emails drafted at once")
    parser.add_argument("--overwrite", action="store_true", help="replace drafts that already exist")
    parser.add_argument("--company", type=Path, default=PROFILE, help="TOML profile that fills the placeholders")
    parser.add_argument("--no-routing", action="store_true", help="let the assistant read each email alone")
    args = parser.parse_args()
    profile = load_profile(args.company)

    emails = sorted(args.inbox.glob("*.txt"))
    if not emails:
        print(f"error: no .txt emails in {args.inbox}. Fix: pass a folder holding one email per .txt file.")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    model = tinylm.load(args.model)
    router = None if args.no_routing else IntentRouter.load()
    todo = [e for e in emails if args.overwrite or not (args.out / f"{e.stem}.reply.txt").exists()]
    started = time.perf_counter()
    done = len(emails) - len(todo)
    progress(done, len(emails), started)

    def write_draft(index: int, reply: tinylm.Completion) -> None:  # called as each draft is finished
        nonlocal done
        target = args.out / f"{todo[index].stem}.reply.txt"
        details = with_customer_details(profile, [messages[index]])  # the customer's order number fills its placeholder
        target.write_text(fill(reply.text, details).strip() + "\n", encoding="utf-8")
        done += 1
        progress(done, len(emails), started)

    messages = [e.read_text(encoding="utf-8").strip() for e in todo]
    conversations = [[{"role": "user", "content": m}] for m in messages]
    if router is not None:
        conversations = [router.messages(c) for c in conversations]
    model.chat_batch(
        conversations, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, on_result=write_draft
    )
    print(f"{len(emails)} drafts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
