"""Triage a customer email: its intent, category and order number, as JSON that always validates.

    python examples/triage_email.py examples/data/inbox/001-late-parcel.txt [--model support-assistant]

The bundled support assistant was fine-tuned to answer TRIAGE_SYSTEM with a triage record; the reply is
generated under a JSON-schema constraint (structured output), so it always parses and matches SCHEMA:
the intent and category come from the lists below, and the order number is one of the email's own
tokens that could be one (`order_candidates`: letters, digits, - and /, three digits or more, dates and
amounts left out) or null, so it is never made up. The words in front of a token decide first
(`order_options`): a token right after "order", "ref", "#", "order number:" ... is the order number the
customer named (when there are several such, the model picks one); a token after "phone", "call",
"ISBN", "tracking", "postcode", "VAT", "suite" ... is not one. The model picks among the tokens left, or null.
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


# what comes right before an order number the customer names: "order 55120", "order #88213", "ref A-77812",
# "Order number: 41872", "the order is KX40918", "my reference is ORD-77-3310", "#20045871"
_ORDER_CUE = re.compile(
    r"(?:\b(?:order|purchase|booking)(?:\s+(?:number|num|no|id|ref|reference|code))?|\bref(?:erence)?"
    r"(?:\s+(?:number|no))?|\bconfirmation(?:\s+number)?|\bord|,\s*number)(?:\s+(?:is|was))?\s*[.:#(-]?\s*#?$|#$",
    re.IGNORECASE,
)
# right before a number that is something else: a phone ("call me back on +44 20 7946 0958"), a book, a parcel's
# tracking number, an address, a tax id
_OTHER_CUE = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|isbn|tracking|postcode|post code|zip|vat|reg|"
    r"registration|suite|unit|apt|flat|iban|sku|serial|model|live in|based in)"
    r"(?:\s+(?:me|us|back|on|at|is|no|nr|number|num|code|id))*[\s:.#+()]*[\d\s+()-]*$",
    re.IGNORECASE,
)


def _code_like(token: str) -> bool:
    """Long enough to be an order code rather than a quantity or a size: five digits or more, or letters and
    at least four digits ("KX40918", "7712-PL"; not "140cm", "200")."""
    digits = sum(c.isdigit() for c in token)
    return digits >= 5 or (digits >= 4 and any(c.isalpha() for c in token))


def order_options(email: str) -> tuple[list[str], bool]:
    """The candidates the order number is chosen from, and whether null is still a choice.

    Tokens named as something else (a phone, an ISBN, a tracking number, an address) are dropped. Tokens named
    as an order ("order 55120", "ref A-77812") come first: when there are any, the choice is among them only
    (the customer gave one). Else a lone code-like token is the order number; else every token left remains,
    and null (the model may find none of them is an order number)."""
    named: list[str] = []
    others: list[str] = []
    for token in order_candidates(email):
        at = email.find(token)
        before = email[max(0, at - 40) : at]
        if _OTHER_CUE.search(before):
            continue
        (named if _ORDER_CUE.search(before) else others).append(token)
    if named:
        return named, False
    codes = [token for token in others if _code_like(token)]
    return (codes, False) if len(codes) == 1 else (others, True)


def schema_for(email: str) -> dict:
    """SCHEMA with the order number limited to the email's own candidate tokens (`order_options`): the model
    picks which one, and can never write a number the customer did not give."""
    candidates, nullable = order_options(email)
    if not candidates:
        order: dict = {"type": "null"}
    elif nullable:
        order = {"anyOf": [{"enum": candidates}, {"type": "null"}]}
    else:
        order = {"enum": candidates}
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
