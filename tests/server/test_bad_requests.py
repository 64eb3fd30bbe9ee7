"""Bad requests: each a 4xx with an OpenAI-style error body, and the server keeps serving."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tinylm.server.errors import APIError
from tinylm.server.slots import Slots

from .conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def post(server, path, body=None, *, content=None, headers=AUTH):
    return httpx.post(f"{server.url}{path}", json=body, content=content, headers=headers, timeout=30)


def assert_openai_error(response, status, fragment):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert fragment in error["message"]


@pytest.mark.parametrize(
    "path,body,content,status,fragment",
    [
        ("/v1/chat/completions", None, b"{not json", 400, "not valid JSON"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": "many"}, None, 400, "max_tokens"),
        ("/v1/chat/completions", {**CHAT, "messages": "hi"}, None, 400, "messages"),
        ("/v1/chat/completions", {**CHAT, "model": "nope"}, None, 404, "'nope' is not served"),
        ("/v1/chat/completions", {**CHAT, "n": 0}, None, 400, "n must be a positive integer"),
        ("/v1/chat/completions", {**CHAT, "n": 17}, None, 400, "n must be at most 16"),
        ("/v1/chat/completions", {**CHAT, "functions": [{"name": "f"}]}, None, 400, "unsupported field 'functions'"),
        ("/v1/chat/completions", {**CHAT, "top_logprobs": 2}, None, 400, "needs logprobs"),
        ("/v1/chat/completions", {**CHAT, "logit_bias": {"x": 1}}, None, 400, "token ids"),
        ("/v1/chat/completions", {**CHAT, "logit_bias": {"99999": 1}}, None, 400, "outside this model's vocabulary"),
        ("/v1/chat/completions", {**CHAT, "tool_choice": "auto"}, None, 400, "tool_choice needs tools"),
        ("/v1/chat/completions", {**CHAT, "tools": [{"type": "web"}]}, None, 400, "not a function tool"),
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": "robot", "content": "x"}]}, None, 400, "role"),
        ("/v1/chat/completions", {**CHAT, "temperature": 5}, None, 400, "temperature"),
        ("/v1/chat/completions", {**CHAT, "response_format": {"type": "xml"}}, None, 400, "not supported"),
        (
            "/v1/chat/completions",
            {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "bogus"}}}},
            None,
            400,
            "cannot be used",
        ),
        ("/v1/completions", {"model": "chat", "prompt": "word " * 400}, None, 400, "context"),
        ("/v1/completions", {"model": "embed", "prompt": "x"}, None, 400, "encoder"),
        ("/v1/embeddings", {"model": "chat", "input": "x"}, None, 400, "decoder"),
        ("/v1/embeddings", {"model": "embed", "input": []}, None, 400, "input"),
        (
            "/v1/chat/completions",
            {**CHAT, "messages": [{"role": "user", "content": "x" * 300_000}]},
            None,
            413,
            "exceeds",
        ),
    ],
)
def test_bad_requests_are_4xx_with_an_openai_error(server, path, body, content, status, fragment):
    assert_openai_error(post(server, path, body, content=content), status, fragment)
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # still serving
    assert post(server, "/v1/chat/completions", CHAT).status_code == 200


def test_api_key(server):
    assert_openai_error(post(server, "/v1/chat/completions", CHAT, headers={}), 401, "API key")
    assert_openai_error(post(server, "/v1/models", None, headers={"Authorization": "Bearer wrong"}), 405, "")
    r = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer wrong"})
    assert_openai_error(r, 401, "API key")
    assert httpx.get(f"{server.url}/health").status_code == 200  # /health needs no key
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_unknown_route(server):
    assert_openai_error(httpx.get(f"{server.url}/v1/nothing", headers=AUTH), 404, "Not Found")


def test_a_client_that_disconnects_frees_its_slot(server):
    body = {**CHAT, "max_tokens": 200, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30) as r:
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    # the abandoned stream stops at its next token; the model is free again for others
    assert post(server, "/v1/chat/completions", CHAT).status_code == 200


def test_full_queue_answers_429_with_retry_after():
    async def scenario():
        slots = Slots(parallel=1, max_queue=1)
        await slots.acquire()  # running
        waiter = asyncio.ensure_future(slots.acquire())  # waiting (queue now full)
        await asyncio.sleep(0)
        with pytest.raises(APIError) as err:
            await slots.acquire()
        assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"
        slots.release()
        await waiter
        slots.release()

    asyncio.run(scenario())
