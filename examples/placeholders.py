"""Fill the support assistant's `{{Placeholder}}`s from a company profile, also while a reply streams.

The bundled support assistant learned its replies from text with placeholders for shop-specific facts:
`{{Website Name}}`, `{{Customer Support Phone Number}}`, `{{Order History}}`, ... An application fills
them from a small TOML profile (examples/data/company.toml):

    [placeholders]
    "Website Name" = "shop.example.com"
    "Customer Support Phone Number" = "+1 555 0100"

A placeholder the profile lacks is shown as its own words ("{{Order History}}" -> "Order History",
which is how most of them read: a page or button of the shop), so customers never see braces.

`{{Order Number}}` is the customer's own: `with_customer_details(profile, messages)` adds the order number the
customer gave (found as examples/triage_email.py finds it: named as an order, or the one code-like token), so
the reply quotes it exactly; the assistant writes the placeholder and never a number of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import tomllib
from triage_email import order_options

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
CUT = re.compile(r"\{\{\s*([^{}]*?)\s*\}?$")  # a placeholder the reply's length limit cut off: "{{Website Na"


def load_profile(path: Path) -> dict[str, str]:
    """The `[placeholders]` table of a TOML company profile; `ValueError` naming the file if malformed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(
            f"{path}: not a readable TOML company profile ({e}). Fix: see examples/data/company.toml."
        ) from None
    table = data.get("placeholders", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{path}: [placeholders] must map names to strings. Fix: see examples/data/company.toml.")
    return {_key(k): v for k, v in table.items()}


def with_customer_details(profile: Mapping[str, str], messages: Iterable[str]) -> dict[str, str]:
    """`profile` plus `{{Order Number}}` from the latest of the customer's `messages` that gives one
    unambiguously; without one, the placeholder reads "your order"."""
    found = "your order"
    for message in messages:
        candidates, nullable = order_options(message)
        if len(candidates) == 1 and not nullable:
            found = candidates[0]
    return {**profile, _key("Order Number"): found}


def _key(name: str) -> str:
    return " ".join(name.lower().split())


def fill(text: str, profile: Mapping[str, str]) -> str:
    """`text` with every complete `{{Name}}` replaced by the profile's value, else by its own words; a placeholder
    cut off at the end of the text (the reply's length limit) is treated the same way."""
    text = PLACEHOLDER.sub(lambda m: profile.get(_key(m.group(1)), m.group(1)), text)
    return CUT.sub(lambda m: profile.get(_key(m.group(1)), m.group(1)), text)


def fill_stream(chunks: Iterable[str], profile: Mapping[str, str]) -> Iterator[str]:
    """Fill placeholders in streamed text: an open `{{` is held back until it closes (or 80 characters pass)."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        cut = pending.rfind("{{")
        if cut != -1 and "}}" not in pending[cut:] and len(pending) - cut < 80:  # a name is short
            ready, pending = pending[:cut], pending[cut:]
        elif pending.endswith("{"):
            ready, pending = pending[:-1], "{"
        else:
            ready, pending = pending, ""
        if ready:
            yield fill(ready, profile)
    if pending:
        yield fill(pending, profile)
