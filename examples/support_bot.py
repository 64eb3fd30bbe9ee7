"""An interactive support chat that streams its replies and remembers the conversation.

    python examples/support_bot.py [--model support-assistant] [--max-new-tokens 160] [--company PROFILE.toml]
        [--no-routing]

Type a message and press Enter; an empty line or Ctrl-D ends the chat. When the conversation no longer fits the
model's context, the oldest exchanges are dropped (the system message, if any, is kept). The assistant's
`{{Placeholder}}`s (website, phone number, opening hours, ...) are filled from the company profile
(default: examples/data/company.toml; see examples/placeholders.py), so customers never see braces.

Each message is first routed by intent (examples/routing.py: the bundled embedder reads the message and a linear
layer names what it is about, in a note at the end of the message the assistant reads), so the assistant answers
on the customer's intent more often than reading the message alone (the assistant's card has the figures).
`--no-routing` turns it off (e.g. for a model that was not trained with routed messages).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from placeholders import fill_stream, load_profile, with_customer_details
from routing import IntentRouter

import tinylm

PROFILE = Path(__file__).resolve().parent / "data" / "company.toml"


def fit(model: tinylm.Model, history: list[dict[str, str]], reserve: int) -> list[dict[str, str]]:
    """The most recent part of `history` whose prompt leaves `reserve` tokens of the context for the reply."""
    system = [m for m in history[:1] if m["role"] == "system"]
    turns = history[len(system) :]
    while len(turns) > 1:
        prompt = model.chat_prompt(system + turns)
        if len(model.tokenizer.encode(prompt, add_special_tokens=False)) + reserve <= model.context_length:
            break
        turns = turns[2:] if len(turns) > 2 else turns[1:]  # drop the oldest user + assistant pair
    return system + turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--company", type=Path, default=PROFILE, help="TOML profile that fills the placeholders")
    parser.add_argument("--no-routing", action="store_true", help="let the assistant read each message alone")
    args = parser.parse_args()

    profile = load_profile(args.company)
    model = tinylm.load(args.model)
    router = None if args.no_routing else IntentRouter.load()
    print(f"[{args.model} on {model.backend}/{model.device}; empty line to quit]", file=sys.stderr)
    history: list[dict[str, str]] = []
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        history = [*history, {"role": "user", "content": text}]
        messages = fit(model, router.messages(history) if router else history, args.max_new_tokens)
        history = history[len(history) - len(messages) :]  # the turns kept, as written (without the routing note)
        print("bot> ", end="", flush=True)
        reply = []
        chunks = (chunk.text for chunk in model.stream_chat(messages, max_new_tokens=args.max_new_tokens))
        details = with_customer_details(profile, [m["content"] for m in history if m["role"] == "user"])
        for text in fill_stream(chunks, details):
            print(text, end="", flush=True)
            reply.append(text)
        print()
        history.append({"role": "assistant", "content": "".join(reply)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
