"""A support agent that calls a tool: it looks the customer's order up on an order system, then answers.

    python examples/tools_agent.py "Where is my order 88213? It should have arrived by now." [--model ...]

One turn of the agent, through the OpenAI-style tool API of `Model.chat`:

1. The model is offered the tool `track_order(order_number)` and made to call it (`tool_choice` names it, so
   decoding is constrained to a call whose arguments match the tool's schema). The schema limits the order
   number to the message's own candidate tokens (`order_options`, from triage_email.py: a token named as an
   order first, never one named as a phone, ISBN, tracking number, ...), so the number is never made up: the
   model picks which. A message without a candidate gets a question back, no call.
2. The (fake) order system answers the call.
3. The call and its result go back through the chat template (an assistant message with `tool_calls`, then a
   `tool` message), and the model writes the reply (`tool_choice="none"`).

The bundled support assistant renders tools the generic way (its template does not take them; see
docs/server.md) and was not trained on tool results: its reply is its usual tracking answer, with the
`{{Order Number}}` placeholder filled from the call and the others from the company profile, and often about
something else. The facts come from the tool's result, which the agent prints as `summary`. A tool-trained
model (Qwen2.5, Llama 3.2, SmolLM3) renders the tools through its own template and can use the result in its
reply.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from placeholders import fill, load_profile
from triage_email import order_options

import tinylm

PROFILE = Path(__file__).resolve().parent / "data" / "company.toml"
SYSTEM = "You are a helpful customer-support assistant."

#: The fake order system.
ORDERS = {
    "88213": {"status": "in transit", "carrier": "DHL", "expected": "tomorrow"},
    "A-77812": {"status": "delivered", "carrier": "UPS", "delivered": "yesterday, to the front desk"},
    "55102": {"status": "waiting for stock", "expected": "in 5 days"},
}


def track_order(order_number: str) -> dict:
    """The order system's answer for `order_number`."""
    return {"order_number": order_number, **ORDERS.get(order_number, {"error": "no order with this number"})}


def track_order_tool(candidates: list[str]) -> dict:
    """The tool, in OpenAI's form, with the order number limited to `candidates`."""
    return {
        "type": "function",
        "function": {
            "name": "track_order",
            "description": "Look up where a customer's order is.",
            "parameters": {
                "type": "object",
                "properties": {"order_number": {"enum": candidates}},
                "required": ["order_number"],
                "additionalProperties": False,
            },
        },
    }


def summary(result: dict) -> str:
    """The order system's answer in a sentence (what the agent knows for sure)."""
    if "error" in result:
        return f"I could not find an order {result['order_number']}; could you check the number?"
    details = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("order_number", "status"))
    return f"Your order {result['order_number']} is {result['status']}" + (f" ({details})." if details else ".")


def answer(model: tinylm.Model, message: str, profile: dict[str, str]) -> dict:
    """One turn: the tool call (or None), its result, the order system's answer in a sentence, and the reply."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": message}]
    candidates, _ = order_options(message)  # named as an order first; phones, ISBNs, ... never
    if not candidates:
        ask = "Could you give me your order number so I can look it up?"
        return {"call": None, "result": None, "summary": ask, "reply": ask}
    tools = [track_order_tool(candidates)]
    called = model.chat(messages, tools=tools, tool_choice={"type": "function", "function": {"name": "track_order"}})
    call = called.tool_calls[0]
    result = track_order(**call.args)
    messages.append({"role": "assistant", "content": None, "tool_calls": [call.to_openai()]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    reply = model.chat(messages, tools=tools, tool_choice="none", max_new_tokens=96)
    filled = fill(reply.text, {**profile, "order number": call.args["order_number"]})
    call_record = {"name": call.name, "arguments": call.args}
    return {"call": call_record, "result": result, "summary": summary(result), "reply": filled.strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", nargs="+", help="customer messages, one turn each")
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--company", type=Path, default=PROFILE, help="TOML profile that fills the placeholders")
    args = parser.parse_args()
    model = tinylm.load(args.model)
    profile = load_profile(args.company)
    for message in args.messages:
        print(json.dumps({"message": message, **answer(model, message, profile)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
