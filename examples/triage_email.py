"""Triage a customer email: its intent, category and order number, as JSON that always validates.

    python examples/triage_email.py examples/data/inbox/001-late-parcel.txt [--model support-assistant]

The bundled support assistant was fine-tuned to answer TRIAGE_SYSTEM with a triage record; the reply is
generated under a JSON-schema constraint (structured output), so it always parses and matches SCHEMA:
the intent and category come from the lists below, the order number matches its pattern or is null.
"""

from __future__ import annotations

import argparse
import json
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
        "order_number": {"anyOf": [{"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z-]{2,24}$"}, {"type": "null"}]},
    },
    "required": ["intent", "category", "order_number"],
    "additionalProperties": False,
}


def triage(model: tinylm.Model, email: str) -> dict:
    """The email's triage record: a dict that matches SCHEMA (guaranteed by the constraint)."""
    messages = [{"role": "system", "content": TRIAGE_SYSTEM}, {"role": "user", "content": email}]
    return model.chat(messages, response_format=SCHEMA, max_new_tokens=64).parsed


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
