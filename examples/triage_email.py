"""Triage a customer email: its intent, category and order number, as JSON that always validates.

    python examples/triage_email.py examples/data/inbox/001-late-parcel.txt [--model support-assistant]

The bundled support assistant was fine-tuned to answer TRIAGE_SYSTEM with a triage record; the reply is
generated under a JSON-schema constraint (structured output), so it always parses and matches SCHEMA:
the intent and category come from the lists below, and the order number is one of the email's own
tokens that could be one (`order_candidates`: letters, digits, - and /, three digits or more, dates and
amounts left out) or null, so it is never made up. The model picks which.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import tinylm

TRIAGE_SYSTEM = "Triage the customer's message. Reply with JSON: intent, category, order_number."
INTENTS = [
    "cancel_order", "change_order", "change_shipping_address", "check_cancellation_fee", "check_invoice",
    "check_payment_methods", "check_refund_policy", "complaint", "contact_customer_service",
    "contact_human_agent", "create_account", "delete_account", "delivery_options", "delivery_period",
    "edit_account", "get_invoice", "get_refund", "newsletter_subscription", "payment_issue", "place_order",
    "recover_password", "registration_problems", "review", "set_up_shipping_address", "switch_account",
    "track_order", "track_refund",
]  # fmt: skip
CATEGORIES = [
    "ACCOUNT", "CANCELLATION_FEE", "CONTACT", "DELIVERY", "FEEDBACK", "INVOICE", "NEWSLETTER", "ORDER",
    "PAYMENT", "REFUND", "SHIPPING_ADDRESS",
]  # fmt: skip
SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"enum": INTENTS},
        "category": {"enum": CATEGORIES},
        "order_number": {
            "anyOf": [{"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z/-]{2,24}$"}, {"type": "null"}]
        },
    },
    "required": ["intent", "category", "order_number"],
    "additionalProperties": False,
}


# a token of letters, digits and inner - or / holding at least three digits; a leading '#' is not part of it
_TOKEN = re.compile(r"(?<![\w.,$€£/-])#?([A-Za-z0-9](?:[A-Za-z0-9/-]*[A-Za-z0-9])?)(?![\w.,/-]*\d)")
_DATES = re.compile(r"\d{1,2}[/-]\d{1,2}([/-](\d{2}|\d{4}))?|\d{4}-\d{1,2}-\d{1,2}")  # 03/02, 3-2-2025, 2025-03-02


MAX_CANDIDATES = 16  # bounds the constraint an email full of numbers would compile


def order_candidates(email: str) -> list[str]:
    """The first MAX_CANDIDATES tokens of `email` that could be its order number (amounts, dates excluded)."""
    found: list[str] = []
    for match in _TOKEN.finditer(email):
        token = match.group(1)
        plausible = len(token) <= 25 and sum(c.isdigit() for c in token) >= 3 and not _DATES.fullmatch(token)
        if plausible and token not in found:
            found.append(token)
            if len(found) == MAX_CANDIDATES:
                break
    return found


def schema_for(email: str) -> dict:
    """SCHEMA with the order number limited to the email's own candidate tokens (or null): the model picks
    which one, and can never write a number the customer did not give."""
    candidates = order_candidates(email)
    order = {"anyOf": [{"enum": candidates}, {"type": "null"}]} if candidates else {"type": "null"}
    return {**SCHEMA, "properties": {**SCHEMA["properties"], "order_number": order}}


def triage(model: tinylm.Model, email: str) -> dict:
    """The email's triage record: a dict that matches SCHEMA (guaranteed by the constraint)."""
    messages = [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": email}]
    return model.chat(messages, response_format=schema_for(email), max_new_tokens=64).parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emails", type=Path, nargs="+", help="text files holding one email each")
    parser.add_argument("--model", default="support-assistant")
    args = parser.parse_args()
    model = tinylm.load(args.model)
    for path in args.emails:
        print(json.dumps({"email": path.name, **triage(model, path.read_text(encoding="utf-8").strip())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
