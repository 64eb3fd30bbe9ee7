"""Tool calling in the Python API (issue 28): rendering through the model's own template (transformers is the
oracle), the generic rendering, parsing Hermes and Llama 3.x calls, streaming, and constrained calls."""

from __future__ import annotations

import json

import pytest

import tinylm
from tinylm.errors import ConstraintError, InvalidArgument
from tinylm.generation import Chunk, Usage
from tinylm.tools import GENERIC_TOOLS_PROMPT, ToolFormat, ToolPlan, check_tools, detect_format

from .tool_templates import HERMES_TEMPLATE, LLAMA3_TEMPLATE, long_context

pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")
pytest.importorskip("llguidance", reason="constrained tool calls need llguidance (pip install tinylm[structured])")
jsonschema = pytest.importorskip("jsonschema", reason="arguments are validated with jsonschema")

TRACK = {
    "type": "function",
    "function": {
        "name": "track_order",
        "description": "Where an order is.",
        "parameters": {
            "type": "object",
            "properties": {"order_number": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["order_number"],
            "additionalProperties": False,
        },
    },
}
REFUND = {
    "type": "function",
    "function": {
        "name": "refund",
        "parameters": {
            "type": "object",
            "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": 500}, "reason": {"enum": ["late"]}},
            "required": ["amount", "reason"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [TRACK, REFUND]
ASK = [{"role": "user", "content": "Where is order 88213?"}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "track_order", "arguments": '{"order_number": "88213"}'},
}
ROUND_TRIP = [
    {"role": "system", "content": "You help customers."},
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
]


def _with_template(folder, template):
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("tools")
    return {
        "generic": long_context(build_model("qwen2", root / "generic")),
        "hermes": long_context(_with_template(build_model("qwen2", root / "hermes"), HERMES_TEMPLATE)),
        "llama3": long_context(_with_template(build_model("llama", root / "llama3"), LLAMA3_TEMPLATE)),
    }


@pytest.fixture(scope="module")
def models(folders):
    loaded = {name: tinylm.load(folder, backend="torch") for name, folder in folders.items()}
    yield loaded
    for m in loaded.values():
        m.close()


def test_the_format_is_read_from_the_template():
    assert detect_format(HERMES_TEMPLATE) == ToolFormat("hermes", True)
    assert detect_format(LLAMA3_TEMPLATE) == ToolFormat("llama3", True)
    assert detect_format("{% for m in messages %}{{ m.content }}{% endfor %}") == ToolFormat("hermes", False)
    assert detect_format(None) == ToolFormat("hermes", False)


@pytest.mark.parametrize("name", ["hermes", "llama3"])
def test_tools_render_through_the_models_own_template_as_transformers_does(folders, models, name):
    """OpenAI's messages (arguments as JSON text) give the prompt transformers gives for its convention
    (arguments as a dict)."""
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(folders[name])
    as_transformers = [dict(m) for m in ROUND_TRIP]
    as_transformers[2] = {**CALL, "function": {**CALL["function"], "arguments": {"order_number": "88213"}}}
    as_transformers[2] = {"role": "assistant", "content": None, "tool_calls": [as_transformers[2]]}
    want = reference.apply_chat_template(as_transformers, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert models[name].chat_prompt(ROUND_TRIP, tools=TOOLS) == want
    assert '"order_number": "88213"' in want  # the call as a dict, not a quoted string
    first = reference.apply_chat_template(ASK, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert models[name].chat_prompt(ASK, tools=TOOLS) == first
    ids = models[name].chat_ids(ASK, tools=TOOLS)
    assert ids == models[name].tokenizer.encode(first, add_special_tokens=False)


def test_the_generic_rendering_for_templates_without_tools(models):
    prompt = models["generic"].chat_prompt(ROUND_TRIP, tools=TOOLS)
    listing = "\n".join(json.dumps(t) for t in check_tools(TOOLS))
    system = "You help customers.\n\n" + GENERIC_TOOLS_PROMPT.format(tools=listing)
    assert prompt == (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhere is order 88213?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "track_order", "arguments": {"order_number": "88213"}}\n'
        "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n"
        '{"status": "shipped"}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'
    )
    assert "# Tools" not in models["generic"].chat_prompt(ROUND_TRIP, tools=TOOLS, tool_choice="none")
    assert "<tool_response>" in models["generic"].chat_prompt(ROUND_TRIP)  # results render without tools too


def _plan(fmt, choice="auto", parallel=True):
    return ToolPlan(check_tools(TOOLS), choice, ToolFormat(fmt, True), parallel=parallel)


def test_hermes_calls_are_parsed_and_anything_else_stays_text():
    plan = _plan("hermes")
    text, calls = plan.parse(
        'Let me look.\n<tool_call>\n{"name": "track_order", "arguments": {"order_number": "88213"}}\n</tool_call>'
        '\n<tool_call>{"name": "refund", "arguments": "{\\"amount\\": 5, \\"reason\\": \\"late\\"}"}</tool_call>'
    )
    assert text == "Let me look."
    assert [(c.name, c.args) for c in calls] == [
        ("track_order", {"order_number": "88213"}),
        ("refund", {"amount": 5, "reason": "late"}),
    ]
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id
    assert len(_plan("hermes", parallel=False).parse("<tool_call>" + calls[0].arguments + "</tool_call>")[1]) == 0
    for not_a_call in ['<tool_call>{"name": "unknown", "arguments": {}}</tool_call>', "<tool_call>{oops</tool_call>"]:
        assert plan.parse(not_a_call) == (not_a_call, ())
    assert _plan("hermes", "none").parse('<tool_call>{"name": "refund", "arguments": {}}</tool_call>') == (
        '<tool_call>{"name": "refund", "arguments": {}}</tool_call>',
        (),
    )


def test_llama3_json_calls_are_parsed():
    plan = _plan("llama3")
    text, calls = plan.parse(' {"name": "track_order", "parameters": {"order_number": "12345"}}')
    assert text == "" and calls[0].name == "track_order" and calls[0].args == {"order_number": "12345"}
    two = '{"name": "track_order", "parameters": {"order_number": "1"}}; {"name": "refund", "parameters": {}}'
    assert [c.name for c in plan.parse(two)[1]] == ["track_order", "refund"]
    assert plan.parse('I think {"name": "refund"} is it') == ('I think {"name": "refund"} is it', ())


def _chunks(texts):
    usage = Usage(
        prompt_tokens=1, completion_tokens=len(texts), time_to_first_token=0, tokens_per_second=0, total_time=0
    )
    for i, t in enumerate(texts):
        yield Chunk(text=t, token_ids=(i,), finish_reason="stop" if i == len(texts) - 1 else None, usage=usage)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_a_stream_holds_back_what_may_be_a_call_and_ends_with_the_calls(size):
    call = '{"name": "track_order", "arguments": {"order_number": "1"}}'
    reply = f"Sure <tool_ca! Checking.\n<tool_call>\n{call}\n</tool_call>"
    pieces = [reply[i : i + size] for i in range(0, len(reply), size)] + [""]
    out = list(_plan("hermes").stream(_chunks(pieces)))
    assert len(out) == len(pieces)  # one chunk out per chunk in: tokens and logprobs keep their chunks
    streamed = "".join(c.text for c in out[:-1])
    assert streamed == "Sure <tool_ca! Checking.\n"  # text streams up to where the call begins
    assert out[-1].finish_reason == "tool_calls" and out[-1].tool_calls[0].args == {"order_number": "1"}
    assert all(not c.tool_calls for c in out[:-1])
    plain = list(_plan("hermes").stream(_chunks(["No ", "call <", "tool", " here", ""])))
    assert "".join(c.text for c in plain) == "No call <tool here" and plain[-1].finish_reason == "stop"


def test_a_llama3_stream_holds_a_reply_that_opens_with_json():
    call = '{"name": "track_order", "parameters": {"order_number": "7"}}'
    out = list(_plan("llama3").stream(_chunks([" ", call[:10], call[10:], ""])))
    assert [c.text for c in out[:-1]] == ["", "", ""] and out[-1].tool_calls[0].args == {"order_number": "7"}
    text = list(_plan("llama3").stream(_chunks(["Hello", " {x}", ""])))
    assert "".join(c.text for c in text) == "Hello {x}"


@pytest.mark.parametrize("name", ["generic", "hermes", "llama3"])
def test_required_and_named_calls_always_validate(models, name):
    model = models[name]
    for seed in range(4):
        reply = model.chat(ASK, tools=TOOLS, tool_choice="required", temperature=1.0, seed=seed, max_new_tokens=80)
        assert reply.finish_reason == "tool_calls" and len(reply.tool_calls) == 1, reply
        call = reply.tool_calls[0]
        schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.name)
        jsonschema.validate(call.args, schema)
    named = {"type": "function", "function": {"name": "refund"}}
    reply = model.chat(ASK, tools=TOOLS, tool_choice=named, temperature=1.0, seed=9, max_new_tokens=80)
    assert reply.tool_calls[0].name == "refund"
    jsonschema.validate(reply.tool_calls[0].args, REFUND["function"]["parameters"])
    streamed = list(model.stream_chat(ASK, tools=TOOLS, tool_choice=named, temperature=1.0, seed=9, max_new_tokens=80))
    assert streamed[-1].tool_calls[0].arguments == reply.tool_calls[0].arguments
    assert "".join(c.text for c in streamed) == reply.text


def test_a_round_trip_in_the_python_api(models):
    model = models["hermes"]
    called = model.chat(ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "track_order"}})
    call = called.tool_calls[0]
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call.to_openai()]}]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'})
    assert f'"arguments": {call.arguments}' in model.chat_prompt(messages, tools=TOOLS)
    final = model.chat(messages, tools=TOOLS, tool_choice="none", max_new_tokens=8)
    assert final.tool_calls == () and final.finish_reason in ("stop", "length")


def test_bad_tools_are_refused_naming_the_argument(models):
    model = models["generic"]
    bad = [
        ({"tools": "track_order"}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools"),
        ({"tools": [TRACK, TRACK]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}, "tools"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
    ]
    for kwargs, argument in bad:
        with pytest.raises(InvalidArgument) as err:
            model.chat(ASK, **kwargs)
        assert err.value.argument == argument and "Fix:" in str(err.value)
    with pytest.raises(InvalidArgument, match="tool_calls"):
        model.chat([{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": 3}}]}])
    with pytest.raises(ConstraintError, match="response_format"):
        model.chat(ASK, tools=TOOLS, tool_choice="required", response_format={"type": "object"})
