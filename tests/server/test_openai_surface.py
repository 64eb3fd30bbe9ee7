"""The OpenAI surface real clients use (issue 28), driven by the official `openai` client: tool calls (constrained,
streamed, round trip), logprobs, logit_bias, presence/frequency penalties and n > 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinylm
from tinylm.logprobs import token_bytes
from tinylm.plugins import get_manager
from tinylm.server import ServerConfig

from .conftest import API_KEY, RunningServer

jsonschema = pytest.importorskip("jsonschema", reason="arguments are validated with jsonschema")
pytest.importorskip("llguidance", reason="constrained tool calls need llguidance (pip install tinylm[structured])")

TRACK = {
    "type": "function",
    "function": {
        "name": "track_order",
        "description": "Where an order is.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_number": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{4}$"},
                "urgent": {"type": "boolean"},
            },
            "required": ["order_number", "urgent"],
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
            "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": 500}},
            "required": ["amount"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [TRACK, REFUND]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "Where is my order AB1234?"}]


@pytest.fixture(scope="module")
def chat_model(long_chat):
    return long_chat


@pytest.fixture(scope="module")
def client(long_server):
    return _client(long_server)


def _client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def _streamed_calls(events):
    """Tool calls rebuilt from streamed deltas as a client does: by index, the name once, arguments appended."""
    calls: dict[int, dict] = {}
    finish = None
    for event in events:
        for choice in event.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function.name:
                    call["name"] += delta.function.name
                call["arguments"] += delta.function.arguments or ""
    return [calls[i] for i in sorted(calls)], finish


BACKENDS = ["torch", "onnx", "openvino", "coreml"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_required_tool_call_validates_on_every_backend(backend, chat_model):
    available = get_manager().backends().get(backend)
    if available is None:
        pytest.skip(f"the {backend} backend is not installed")
    if not available.availability().ok:
        pytest.skip(available.availability().reason)  # Core ML: "Core ML runs only on macOS (this is Linux) ..."
    model = chat_model if backend == "torch" else tinylm.load(chat_model.path, backend=backend)
    with RunningServer({"chat": model}, ServerConfig(api_key=API_KEY)) as server:
        client = _client(server)
        for seed in range(2):
            kw = dict(model="chat", messages=ASK, tools=TOOLS, tool_choice="required", temperature=1.0, seed=seed)
            reply = client.chat.completions.create(**kw, max_tokens=200)
            choice = reply.choices[0]
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            (call,) = choice.message.tool_calls
            assert call.type == "function" and call.id.startswith("call_")
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
            if seed == 0:  # streamed: the same call, in OpenAI's deltas
                calls, finish = _streamed_calls(client.chat.completions.create(**kw, max_tokens=200, stream=True))
                assert finish == "tool_calls" and len(calls) == 1
                assert (calls[0]["name"], calls[0]["arguments"]) == (call.function.name, call.function.arguments)
        named = {"type": "function", "function": {"name": "refund"}}
        reply = client.chat.completions.create(model="chat", messages=ASK, tools=TOOLS, tool_choice=named, seed=5)
        (call,) = reply.choices[0].message.tool_calls
        assert call.function.name == "refund"
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS["refund"])


def test_a_full_round_trip(client):
    called = client.chat.completions.create(model="chat", messages=ASK, tools=TOOLS, tool_choice="required", seed=1)
    message = called.choices[0].message
    call = message.tool_calls[0]
    result = {"status": "shipped", "eta": "tomorrow"}
    messages = [
        *ASK,
        message.model_dump(exclude_none=True),  # the assistant's call, sent back as the client got it
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
    ]
    final = client.chat.completions.create(model="chat", messages=messages, tools=TOOLS, max_tokens=12)
    assert final.choices[0].finish_reason in ("stop", "length")
    assert isinstance(final.choices[0].message.content, str) and not final.choices[0].message.tool_calls
    refused = client.chat.completions.with_raw_response.create  # a tool message must answer a call id
    import openai

    with pytest.raises(openai.BadRequestError):
        refused(model="chat", messages=[*ASK, {"role": "tool", "content": "x"}])


def _log_softmax(x):
    x = x.astype(np.float64)
    return x - (x.max() + np.log(np.exp(x - x.max()).sum()))


def test_logprobs_are_the_log_softmax_of_the_processed_logits(client, chat_model):
    model = chat_model
    bias = {7: 3.0, 11: -2.0}
    kw = dict(model="chat", messages=ASK, max_tokens=6, temperature=0, logprobs=True, top_logprobs=5)
    reply = client.chat.completions.create(**kw, logit_bias={str(k): v for k, v in bias.items()})
    content = reply.choices[0].logprobs.content
    ids = list(model.chat(ASK, max_new_tokens=6, logit_bias=bias).token_ids)
    assert len(content) == len(ids) > 0
    prompt = model.chat_ids(ASK)
    logits = model.logits(prompt + ids)[len(prompt) - 1 :]  # (len(ids) + 1, V): the logits before each token
    for step, (entry, token) in enumerate(zip(content, ids)):
        processed = logits[step].copy()
        for t, b in bias.items():
            processed[t] += b
        want = _log_softmax(processed)
        assert entry.logprob == pytest.approx(want[token], abs=2e-4)
        assert bytes(entry.bytes) == model.tokenizer.decode([token]).encode() or "\ufffd" in entry.token
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 5 and tops == sorted(tops, reverse=True)
        assert tops == pytest.approx(sorted(want, reverse=True)[:5], abs=2e-4)
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)  # greedy: the chosen is the top
    streamed = []
    for event in client.chat.completions.create(**kw, stream=True):
        for c in event.choices:
            streamed += c.logprobs.content if c.logprobs else []
    plain = client.chat.completions.create(**kw).choices[0].logprobs.content
    assert [(e.token, round(e.logprob, 5)) for e in streamed] == [(e.token, round(e.logprob, 5)) for e in plain]
    text = client.completions.create(model="chat", prompt="Dear customer,", max_tokens=4, temperature=0, logprobs=3)
    legacy = text.choices[0].logprobs
    assert len(legacy.tokens) == len(legacy.token_logprobs) == len(legacy.top_logprobs) == len(legacy.text_offset)
    assert "".join(legacy.tokens) == text.choices[0].text and all(len(t) <= 3 for t in legacy.top_logprobs)
    assert client.chat.completions.create(model="chat", messages=ASK, max_tokens=2).choices[0].logprobs is None


def test_logit_bias_of_minus_100_bans_a_token(client, chat_model):
    model = chat_model
    first = model.chat(ASK, max_new_tokens=8).token_ids
    banned = first[0]
    kw = dict(model="chat", messages=ASK, max_tokens=8, logprobs=True, top_logprobs=20)
    for temperature in (0, 1.5):
        reply = client.chat.completions.create(**kw, temperature=temperature, seed=3, logit_bias={str(banned): -100})
        ids = model.chat(ASK, max_new_tokens=8, temperature=temperature, seed=3, logit_bias={banned: -100}).token_ids
        assert banned not in ids and len(reply.choices[0].logprobs.content) == len(ids)
        banned_bytes = list(token_bytes(model.tokenizer, banned))
        for entry in reply.choices[0].logprobs.content:  # never even an alternative
            assert entry.bytes != banned_bytes and all(t.bytes != banned_bytes for t in entry.top_logprobs)
    import openai

    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**kw, logit_bias={str(banned): -101})
    assert err.value.body["param"] == "logit_bias"


def _repeats(client, model, **penalties):
    """Tokens that repeat an earlier one, in 48 greedy tokens (end-of-sequence banned so all 48 come)."""
    eos = model.tokenizer.eos_token_id
    reply = client.completions.create(
        model="chat", prompt="the the the", max_tokens=48, temperature=0, logprobs=0,
        logit_bias={str(eos): -100}, **penalties,
    )  # fmt: skip
    tokens = reply.choices[0].logprobs.tokens
    assert len(tokens) == 48
    return len(tokens) - len(set(tokens))


def test_presence_and_frequency_penalties_change_repetition(client, chat_model):
    model = chat_model
    plain = _repeats(client, model)
    assert plain > 10  # a tiny random model loops when decoded greedily
    less = {name: _repeats(client, model, **{name: 2.0}) for name in ("frequency_penalty", "presence_penalty")}
    assert all(n <= plain - 5 for n in less.values()), (plain, less)  # at least 5 fewer repeats of 48 tokens
    assert _repeats(client, model, presence_penalty=-2.0, frequency_penalty=-1.0) >= plain
    import openai

    for bad in ({"presence_penalty": 2.5}, {"frequency_penalty": -3}):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="chat", messages=ASK, **bad)
        assert err.value.body["param"] == next(iter(bad))


def test_n_choices(client):
    kw = dict(model="chat", messages=ASK, max_tokens=10, n=3)
    greedy = client.chat.completions.create(**kw, temperature=0)
    assert [c.index for c in greedy.choices] == [0, 1, 2]
    assert len({c.message.content for c in greedy.choices}) == 1
    sampled = client.chat.completions.create(**kw, temperature=1.5, seed=11)
    texts = [c.message.content for c in sampled.choices]
    assert len(set(texts)) > 1
    assert [c.message.content for c in client.chat.completions.create(**kw, temperature=1.5, seed=11).choices] == texts
    one = client.chat.completions.create(**{**kw, "n": 1}, temperature=1.5, seed=11)
    assert one.choices[0].message.content == texts[0]  # choice 0 keeps the request's seed
    assert 3 <= sampled.usage.completion_tokens <= 30  # the three choices' tokens
    parts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for event in client.chat.completions.create(**kw, temperature=1.5, seed=11, stream=True):
        for c in event.choices:
            parts[c.index] = parts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert [parts[i] for i in range(3)] == texts and sorted(finishes) == [0, 1, 2]
    text = client.completions.create(model="chat", prompt="Dear", max_tokens=6, n=2, temperature=1.5, seed=2)
    assert [c.index for c in text.choices] == [0, 1]
    import openai

    for n in (0, 17):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="chat", messages=ASK, n=n)
        assert err.value.body["param"] == "n"


def test_a_client_that_leaves_a_tool_stream_frees_the_model(long_server, client):
    import httpx

    body = {"model": "chat", "messages": ASK, "tools": TOOLS, "max_tokens": 200, "stream": True, "n": 2}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("POST", f"{long_server.url}/v1/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert next(r.iter_lines()).startswith("data: ")
    # the abandoned generations stop at their next token, in their thread; the model serves the next request
    reply = client.chat.completions.create(model="chat", messages=ASK, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")
