"""The support-assistant recipe's data: composed replies never carry a number the customer did not give."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATHS = [str(ROOT / "recipes" / "support-assistant"), str(ROOT / "examples")]


@pytest.fixture(scope="module")
def recipe():
    sys.path[:0] = PATHS
    try:
        import augment
        import natural
    finally:
        del sys.path[: len(PATHS)]
    return augment, natural


def test_unground_replaces_only_the_numbers_the_message_does_not_give(recipe):
    augment, _ = recipe
    reply = "Invoice #85632 of $1200 for order 55120, sent 12/03/2024: call us within 30 days."
    out = augment.unground(reply, "Where is order 55120?")
    assert out == ("Invoice {{Invoice Number}} of {{Amount}} for order 55120, sent 12/03/2024: call us within 30 days.")
    assert augment.unground(reply, "invoice #85632, $1200, order 55120") == reply


def test_composed_replies_name_no_number_of_their_own(recipe):
    augment, natural = recipe
    records = [
        {"intent": "get_invoice", "category": "INVOICE", "instruction": "I need invoice #85632",
         "response": "Sure, here is invoice #85632 for $1499 (order {{Order Number}})."},
        {"intent": "check_invoice", "category": "INVOICE", "instruction": "show me the bill",
         "response": "Bill #37777 is in {{Invoice History}}."},
    ]  # fmt: skip
    composer = augment.Composer(records, random.Random(0), grounded=False)
    for _ in range(200):
        ex = composer.example()
        assert not [n for n in natural.invented(ex.reply, "") if n not in ex.message], (ex.message, ex.reply)
