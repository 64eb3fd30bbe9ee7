"""A second real client (issue 28): LangChain's `ChatOpenAI` pointed at `tinylm serve`, with `bind_tools`, a tool
round trip and `with_structured_output` (by a tool call and by a JSON schema)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Literal

import httpx
import pytest

from ..tool_templates import long_context
from .conftest import _free_port

pytest.importorskip("langchain_openai", reason="LangChain's ChatOpenAI is the second client (pip install tinylm[test])")
pytest.importorskip("llguidance", reason="constrained tool calls need llguidance (pip install tinylm[structured])")

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field


class TrackOrder(BaseModel):
    """Look up where a customer's order is."""

    order_number: str = Field(pattern="^[A-Z]{2}[0-9]{4}$")
    urgent: bool


@tool(args_schema=TrackOrder)
def track_order(order_number: str, urgent: bool) -> str:
    """Look up where a customer's order is."""
    return "shipped"


class Ticket(BaseModel):
    """A customer's request."""

    intent: Literal["refund", "delivery"]
    order: int = Field(ge=0, le=999)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """`tinylm serve` from the command line, on a tiny model with room for tool prompts."""
    from tinylm.testing.models import build_model

    folder = long_context(build_model("smollm", tmp_path_factory.mktemp("langchain") / "chat"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylm.cli", "serve", f"chat={folder}", "--port", str(port), "--backend", "torch"],
        env={**os.environ, "TINYLM_API_KEY": "k"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 600  # loading and starting, on a busy machine
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()  # then its output can be read to the end
                pytest.fail(f"tinylm serve did not start: {proc.communicate()[0].decode()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def llm(url):
    return ChatOpenAI(model="chat", base_url=url, api_key="k", max_retries=0, timeout=300, max_tokens=200, seed=1)


def test_bind_tools_and_a_round_trip(llm):
    question = HumanMessage("Where is my order AB1234?")
    called = llm.bind_tools([track_order], tool_choice="track_order").invoke([question])
    (call,) = called.tool_calls
    assert call["name"] == "track_order" and set(call["args"]) == {"order_number", "urgent"}
    assert isinstance(call["args"]["order_number"], str) and isinstance(call["args"]["urgent"], bool)
    required = llm.bind_tools([track_order], tool_choice="any").invoke([question])  # LangChain's "any" = required
    assert required.tool_calls[0]["name"] == "track_order"
    result = ToolMessage(content=track_order.invoke(call["args"]), tool_call_id=call["id"])
    final = llm.bind_tools([track_order]).invoke([question, called, result], max_tokens=12)
    assert isinstance(final.content, str) and final.response_metadata["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_with_structured_output(llm, method):
    ticket = llm.with_structured_output(Ticket, method=method).invoke("My parcel 17 never came.")
    assert isinstance(ticket, Ticket) and ticket.intent in ("refund", "delivery") and 0 <= ticket.order <= 999
