"""docs/server.md's OpenAI-compatibility table is a tested contract: each field's example value is accepted (200)
where the table says yes, refused with a 400 naming the field where it says refused or — (issue 28)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from .conftest import API_KEY

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BASE = {
    "chat": (
        "/v1/chat/completions",
        {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    ),
    "text": ("/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": 2}),
}
#: OpenAI's request fields (chat completions and completions), so that the table cannot leave one out
OPENAI_FIELDS = set(
    "model messages prompt max_tokens max_completion_tokens temperature top_p stop seed stream stream_options n user "
    "presence_penalty frequency_penalty logit_bias logprobs top_logprobs response_format tools tool_choice "
    "parallel_tool_calls echo best_of suffix functions function_call audio modalities prediction reasoning_effort "
    "verbosity service_tier store metadata prompt_cache_key safety_identifier web_search_options".split()
)


def table() -> list[dict[str, str]]:
    section = DOC.read_text(encoding="utf-8").split("## OpenAI compatibility", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows.append(dict(zip(["field", "chat", "text", "example", "notes"], cells)))
    return rows


ROWS = table()


def example(row: dict[str, str], route: str) -> object:
    values = re.findall(r"`([^`]*)`(?: \((chat|text)\))?", row["example"])
    for value, which in values:
        if not which or which == route:
            return json.loads(value)
    raise AssertionError(f"no example for {row['field']} on {route}")


def test_the_table_lists_every_openai_field():
    assert {r["field"].strip("`") for r in ROWS} == OPENAI_FIELDS


CASES = [(r["field"].strip("`"), route, r[route], r) for r in ROWS for route in ("chat", "text")]


@pytest.mark.parametrize("field,route,status,row", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_field_does_what_the_table_says(long_server, field, route, status, row):
    server = long_server
    path, base = BASE[route]
    value = example(row, route)
    body = {**base, field: value}
    if field == "stream_options":
        body["stream"] = True
    if field in ("tool_choice", "parallel_tool_calls"):
        body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    if field == "top_logprobs" and route == "chat":
        body["logprobs"] = True
    r = httpx.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=120)
    if status == "yes":
        assert r.status_code == 200, r.text
    else:
        assert status in ("refused", "—")
        assert r.status_code == 400, r.text
        assert field in r.json()["error"]["message"] or r.json()["error"]["param"] == field, r.text
