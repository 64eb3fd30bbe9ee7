"""Natural customer messages composed from the bitext records and hand-written phrasings, for fine-tuning.

The bitext questions are short and templated ("i need help to cancel order 00004587345"); real customers
write emails: a greeting, some context, the request in their own words, an order number in whatever
format their shop uses, a sign-off, typos. `Composer` builds such messages for every intent and pairs
each with a reply grounded in it (the order number the customer gave, never another), plus:

- triage records under the triage system message only (the order number exactly as written, a leading
  '#' dropped), so a normal reply is never JSON;
- second turns (a new request, or thanks) so follow-ups get replies;
- polite declines for requests a shop's assistant cannot help with;
- plain-text records (a message, a blank line, the reply; "Draft a reply to a customer who ...") so
  `generate()` on a support sentence continues with a useful reply.

Everything is drawn from one `random.Random`, so a seed gives the same data.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import phrasings as P
from routing import SYSTEM, routed  # examples/routing.py: the note a routed message ends with

TRIAGE_SYSTEM = "Triage the customer's message. Reply with JSON: intent, category, order_number."
ORDER_PLACEHOLDERS = re.compile(
    r"\{\{(Order Number|Order ID|Purchase ID|Order|Purchase Number)( Anonymized)?\}\}", re.IGNORECASE
)
#: a number in a reply (an invoice, reference or amount), as recipes/support-assistant/natural.py counts them
NUMBER_LIKE = re.compile(r"(?<![{\w])(\$?)#?([A-Za-z]{0,4}-?\d[\dA-Za-z/-]{3,}|\d{4,})(?![\w}])")
ORDER_INTENTS = {
    "cancel_order",
    "change_order",
    "change_shipping_address",
    "complaint",
    "delivery_period",
    "get_invoice",
    "check_invoice",
    "get_refund",
    "payment_issue",
    "track_order",
    "track_refund",
    "check_cancellation_fee",
}


@dataclass(frozen=True)
class Example:
    intent: str
    message: str
    reply: str
    order: str | None  # the order number as the label gives it (no leading '#')


def order_number(record: dict) -> str | None:
    """A bitext record's order number as written in its question (the label can drop leading zeros), else None."""
    if record.get("entity_type") != "order_id" or not record.get("entity_value"):
        return None
    for match in re.finditer(r"[0-9A-Za-z][0-9A-Za-z-]*", record["instruction"]):
        if record["entity_value"] in match.group(0) and any(c.isdigit() for c in match.group(0)):
            return match.group(0)
    return record["entity_value"]


def new_order_number(rng: random.Random) -> tuple[str, str]:
    """(as written in the message, as labelled): a number in one of the hand-written formats."""
    fmt = rng.choice(P.ORDER_FORMATS)
    written = "".join(
        rng.choice("0123456789") if c == "9" else rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") if c == "A" else c for c in fmt
    )
    return written, written.lstrip("#")


def typos(text: str, rng: random.Random) -> str:
    """A few slips of the keyboard: swapped, dropped or doubled letters, sometimes all lower case."""
    chars = list(text)
    for _ in range(rng.randint(1, max(1, len(chars) // 60))):
        i = rng.randrange(len(chars) - 1) if len(chars) > 2 else 0
        if not chars[i].isalpha():
            continue
        kind = rng.random()
        if kind < 0.4 and chars[i + 1].isalpha():
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind < 0.7:
            del chars[i]
        else:
            chars.insert(i, chars[i])
    out = "".join(chars)
    return out.lower() if rng.random() < 0.3 else out


class Composer:
    """Builds natural messages and grounded replies from bitext records of one split."""

    def __init__(self, records: list[dict], rng: random.Random, *, grounded: bool = True) -> None:
        """`grounded`: replies write the order number the message gives; else they keep the `{{Order Number}}`
        placeholder, which the application fills with the number it extracted (examples/placeholders.py)."""
        self.rng = rng
        self.grounded = grounded
        self.by_intent: dict[str, list[dict]] = defaultdict(list)
        self.category: dict[str, str] = {}
        for r in records:
            self.by_intent[r["intent"]].append(r)
            self.category[r["intent"]] = r["category"]
        self.intents = sorted(self.by_intent)

    def _mention(self, written: str) -> str:
        mention = self.rng.choice(P.ORDER_MENTIONS)
        if "#{order}" in mention:
            written = written.lstrip("#")
        sentence = mention.format(order=written)
        return sentence[0].upper() + sentence[1:] + ("" if sentence.endswith((".", "?", "!", ")")) else ".")

    def _reply(self, intent: str, *, with_order: bool) -> tuple[dict, str]:
        """A bitext record of `intent` and its reply (records naming an order first when one is given)."""
        pool = self.by_intent[intent]
        if with_order:
            named = [r for r in pool if r.get("entity_type") == "order_id" and r.get("entity_value")]
            pool = named or pool
        record = self.rng.choice(pool)
        return record, record["response"].strip()

    def example(self, intent: str | None = None, *, bare: bool = False) -> Example:
        """One natural message of `intent` (random when None) and its grounded reply; order intents give an
        order number in 55% of messages."""
        rng = self.rng
        intent = intent or rng.choice(self.intents)
        give_order = intent in ORDER_INTENTS and rng.random() < 0.55
        written, label = new_order_number(rng) if give_order else ("", "")
        record, reply = self._reply(intent, with_order=give_order)
        if rng.random() < 0.45:  # the customer's own words
            core = rng.choice(P.INTENT_PHRASES[intent])
            if "{order}" in core:
                if not give_order:
                    core = core.replace(" {order}", "").replace("{order}", "")
                else:
                    core = core.replace("{order}", written)
        else:  # the bitext question, its number replaced by ours
            core = record["instruction"].strip()
            value = order_number(record)
            if value and value in core:
                core = core.replace(value, written) if give_order else core.replace(value, "").replace("  ", " ")
            if rng.random() < 0.6:
                core = core[0].upper() + core[1:]
        if give_order and written not in core:
            mention = self._mention(written)
            core = f"{core} {mention}" if rng.random() < 0.7 else f"{mention} {core}"
        value = order_number(record)
        number = label if give_order and self.grounded else "{{Order Number}}"
        if value:
            for shown in (value, record["entity_value"]):  # as written, then the label (leading zeros dropped)
                reply = reply.replace(shown, number)
        reply = ORDER_PLACEHOLDERS.sub(number.replace("\\", r"\\"), reply)
        if bare:
            return Example(intent, core, unground(reply, core), label or None)
        parts = []
        if rng.random() < 0.6:
            parts.append(rng.choice(P.GREETINGS))
        if rng.random() < 0.5:
            parts.append(rng.choice(P.CONTEXTS))
        parts.append(core)
        if rng.random() < 0.25:
            parts.append(rng.choice(P.CONTEXTS))
        if rng.random() < 0.5:
            parts.append(rng.choice(P.SIGNOFFS))
        sep = "\n\n" if rng.random() < 0.3 else " "
        message = sep.join(p for p in parts if p.strip())
        if rng.random() < 0.25:
            message = typos(message, rng)
            if give_order and written not in message:  # the slip hit the number: keep it as written
                message = f"{message} {self._mention(written)}"
        return Example(intent, message, unground(reply, message), label or None)

    # -- records in the chat format of `tinylm finetune` ---------------------------------------------------

    def chat(self) -> dict:
        ex = self.example()
        return _chat(SYSTEM, [(ex.message, ex.reply)], intent=ex.intent)

    def second_turn(self) -> dict:
        first = self.example()
        if self.rng.random() < 0.3:
            return _chat(
                SYSTEM,
                [(first.message, first.reply), (self.rng.choice(P.FOLLOW_UPS), self.rng.choice(P.THANKS_REPLIES))],
                intent=first.intent,
            )
        second = self.example(bare=self.rng.random() < 0.5)
        return _chat(SYSTEM, [(first.message, first.reply), (second.message, second.reply)], intent=second.intent)

    def decline(self) -> dict:
        return _chat(SYSTEM, [(self.out_of_domain_request(), self.rng.choice(P.DECLINES))], intent="out_of_domain")

    def out_of_domain_request(self) -> str:
        """A request a shop's assistant should decline (greeting and typos sometimes), for declines and the router."""
        request = self.rng.choice(P.OUT_OF_DOMAIN)
        if self.rng.random() < 0.3:
            request = f"{self.rng.choice(P.GREETINGS)} {request}".strip()
        if self.rng.random() < 0.15:
            request = typos(request, self.rng)
        return request

    # -- routed chats: the last message ends with a note of what it is about (examples/routing.py) ----------

    def routed_chat(self) -> dict:
        ex = self.example()
        return _chat(SYSTEM, [(routed(ex.message, ex.intent), ex.reply)], intent=ex.intent)

    def routed_second_turn(self) -> dict:
        first, second = self.example(), self.example(bare=self.rng.random() < 0.5)
        turns = [(first.message, first.reply), (routed(second.message, second.intent), second.reply)]
        return _chat(SYSTEM, turns, intent=second.intent)

    def routed_decline(self) -> dict:
        turns = [(routed(self.out_of_domain_request(), "out_of_domain"), self.rng.choice(P.DECLINES))]
        return _chat(SYSTEM, turns, intent="out_of_domain")

    def triage(self) -> dict:
        ex = self.example(bare=self.rng.random() < 0.3)
        label = {"intent": ex.intent, "category": self.category[ex.intent], "order_number": ex.order}
        return _chat(TRIAGE_SYSTEM, [(ex.message, json.dumps(label))], intent=ex.intent)

    def text(self) -> dict:
        """A plain-text record: a message and its reply, or a drafting instruction and the draft."""
        if self.rng.random() < 0.4:
            intent = self.rng.choice(self.intents)
            situation = self.rng.choice(P.DRAFT_SITUATIONS[intent])
            _, reply = self._reply(intent, with_order=False)
            reply = unground(ORDER_PLACEHOLDERS.sub(r"{{Order Number}}", reply), situation)
            return {"text": f"Draft a reply to a customer who {situation}.\n\n{reply}", "intent": intent}
        ex = self.example()
        return {"text": f"{ex.message}\n\n{ex.reply}", "intent": ex.intent}


def unground(reply: str, message: str) -> str:
    """`reply` with every number the customer's `message` does not give replaced by a placeholder.

    The bitext replies copy their question's invoice numbers and amounts (`#85632`, `$1200`); once the
    question is rephrased without them, a reply that keeps them teaches the model to invent numbers."""

    def placeholder(match: re.Match) -> str:
        token = match.group(2).rstrip("-/")
        dated = re.fullmatch(r"\d{1,2}[/-]\d{1,2}([/-]\d{2,4})?", token)
        if token in message or dated or sum(c.isdigit() for c in token) < 4:
            return match.group(0)
        if match.group(1):
            return "{{Amount}}"
        before = reply[max(0, match.start() - 40) : match.start()].lower()
        return "{{Invoice Number}}" if "invoice" in before or "bill" in before else "{{Reference Number}}"

    return NUMBER_LIKE.sub(placeholder, reply)


def _chat(system: str, turns: list[tuple[str, str]], *, intent: str) -> dict:
    messages = [{"role": "system", "content": system}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages, "intent": intent}


def mixture(composer: Composer, counts: dict[str, int]) -> Iterator[dict]:
    """`counts[kind]` records of each kind: chat, second_turn, decline, triage, text."""
    for kind, n in counts.items():
        make = getattr(composer, kind)
        for _ in range(n):
            yield make()
