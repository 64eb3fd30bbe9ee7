"""Classes 1 and 2 of issue 22: everything that can refuse a request does so before the first byte, every
malformed input is a 4xx in OpenAI's error shape (never a 500), and a client that goes away stops its
generation, streamed or not."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import httpx
import openai
import pytest

from tinylm.server import ServerConfig

from .conftest import API_KEY, RunningServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


class SlowModel:
    """A served model that generates past end-of-sequence, one token every `delay` seconds, and records how
    many chunks it produced and when its generation was closed."""

    def __init__(self, model, *, delay: float = 0.02, fail_after: int | None = None) -> None:
        self._model, self.delay, self.fail_after = model, delay, fail_after
        self.produced = 0
        self.closed = threading.Event()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def stream(self, ids, *, options, **kw):
        chunks = self._model.stream(ids, options=dataclasses.replace(options, ignore_eos=True), **kw)

        def slow():
            try:
                for n, chunk in enumerate(chunks, 1):
                    time.sleep(self.delay)
                    self.produced += 1
                    if self.fail_after is not None and n > self.fail_after:
                        raise RuntimeError("a backend failed mid-stream")
                    yield chunk
            finally:
                chunks.close()  # in this thread, which holds the model's lock
                self.closed.set()

        return slow()


@pytest.fixture
def slow_server(served_models):
    """A server whose 'chat' model is slow, one request at a time (parallel=1: its stream is the slow one) with no
    waiting room (a second request while one runs is a 429)."""
    slow = SlowModel(served_models["chat"])
    models = {"chat": slow, "embed": served_models["embed"]}
    with RunningServer(models, ServerConfig(api_key=API_KEY, parallel=1, max_queue=0, max_body_bytes=2_000)) as s:
        s.model = slow
        yield s


def post(server, path, body=None, *, content=None, headers=AUTH, timeout=30):
    return httpx.post(f"{server.url}{path}", json=body, content=content, headers=headers, timeout=timeout)


def assert_openai_error(response, status, fragment="", *, param="unset"):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert fragment in error["message"], error
    if param != "unset":
        assert error["param"] == param, error
    return error


# class 1: errors before the 200 ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize(
    "extra,fragment,param",
    [
        ({"seed": -1}, "seed must be", "seed"),
        ({"response_format": {"type": "json_object"}, "stop": ["}"]}, "stop strings cannot be combined", None),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "bogus"}}}}, "", None),
    ],
    ids=["seed", "json_object+stop", "bad-schema"],
)
def test_a_streamed_request_is_refused_before_the_200(server, route, extra, fragment, param):
    body = {"model": "chat", "max_tokens": 3, **extra, "stream": True}
    body.update({"messages": CHAT["messages"]} if "chat" in route else {"prompt": "hi"})
    with httpx.stream("POST", f"{server.url}{route}", json=body, headers=AUTH, timeout=30) as r:
        r.read()
        assert_openai_error(r, 400, fragment, param=param)
    body["stream"] = False
    assert_openai_error(post(server, route, body), 400, fragment, param=param)  # the same answer unstreamed


@pytest.mark.parametrize("stream", [True, False])
def test_an_empty_prompt_is_refused_before_the_200(server, stream):
    """Found by the schema fuzz: the emptiness of a prompt was checked at the first token, after the 200."""
    body = {"model": "chat", "prompt": "", "stream": stream}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=30) as r:
        r.read()
        assert_openai_error(r, 400, "empty", param=None)


def test_a_full_queue_is_a_429_before_the_200_for_streams_too(slow_server):
    holder = threading.Thread(target=post, args=(slow_server, "/v1/chat/completions", {**CHAT, "max_tokens": 60}))
    holder.start()
    try:
        deadline = time.monotonic() + 20
        while slow_server.model.produced == 0:  # until the slot is taken
            assert time.monotonic() < deadline, "the first request never started"
            time.sleep(0.01)
        for stream in (True, False):
            body = {**CHAT, "stream": stream}
            with httpx.stream("POST", f"{slow_server.url}/v1/chat/completions", json=body, headers=AUTH) as r:
                r.read()
                error = assert_openai_error(r, 429, "busy")
                assert r.headers["Retry-After"] == "1" and error["code"] == "queue_full"
    finally:
        holder.join(timeout=30)
    assert post(slow_server, "/v1/chat/completions", CHAT).status_code == 200  # free again


def test_a_failure_after_the_200_ends_the_stream_with_an_error_event(served_models):
    failing = SlowModel(served_models["chat"], delay=0, fail_after=3)  # a fourth chunk fails
    with RunningServer({"chat": failing}, ServerConfig(api_key=API_KEY, parallel=1)) as s:
        body = {**CHAT, "max_tokens": 10, "stream": True}
        with httpx.stream("POST", f"{s.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30) as r:
            assert r.status_code == 200
            events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
        error = json.loads(events[-2])["error"]  # then [DONE]: the client sees why, not a cut connection
        assert events[-1] == "[DONE]" and error["type"] == "server_error" and set(error) >= {"message", "code"}
        assert post(s, "/v1/chat/completions", CHAT).status_code == 200  # the slot was freed


# class 2: 4xx, never 500 --------------------------------------------------------------------------------


LONE = b'"lone \\ud800 surrogate"'


@pytest.mark.parametrize(
    "path,content,param",
    [
        ("/v1/chat/completions", b'{"model":"chat","messages":[{"role":"user","content":' + LONE + b"}]}", "messages"),
        ("/v1/completions", b'{"model":"chat","max_tokens":2,"prompt":' + LONE + b"}", "prompt"),
        ("/v1/embeddings", b'{"model":"embed","input":' + LONE + b"}", "input"),
        ("/v1/embeddings", b'{"model":"embed","input":["ok",' + LONE + b"]}", "input"),
        ("/v1/completions", b'{"model":"chat","prompt":"x","stop":[' + LONE + b"]}", "stop"),
    ],
)
def test_a_lone_surrogate_is_a_400(server, path, content, param):
    headers = {**AUTH, "Content-Type": "application/json"}
    assert_openai_error(post(server, path, content=content, headers=headers), 400, "lone surrogate", param=param)


@pytest.mark.parametrize(
    "body,fragment,param",
    [
        ({**CHAT, "seed": -1}, "seed must be", "seed"),
        ({**CHAT, "seed": 2**64}, "seed must be", "seed"),
        ({**CHAT, "seed": 2.0}, "integer", "seed"),  # not coerced to 2
        ({**CHAT, "stream": "yes"}, "boolean", "stream"),
        ({**CHAT, "stream": 1}, "boolean", "stream"),
        ({**CHAT, "max_tokens": "5"}, "integer", "max_tokens"),
        ({**CHAT, "temperature": "0.5"}, "number", "temperature"),
        ({**CHAT, "response_format": {"type": "json_schema", "json_schema": "x"}}, "json_schema", "response_format"),
        ({**CHAT, "response_format": {"type": "json_schema", "json_schema": 5}}, "json_schema", "response_format"),
        ({**CHAT, "response_format": {"type": "json_schema", "json_schema": None}}, "json_schema", "response_format"),
        ({**CHAT, "stream_options": {"include_usage": True}}, "only allowed with stream", None),
        ({**CHAT, "stream": True, "stream_options": {"include_usage": "yes"}}, "boolean", None),
        ({**CHAT, "stream": True, "stream_options": {"bogus": 1}}, "unsupported field", None),
    ],
)
def test_malformed_fields_are_400s_naming_the_field(server, body, fragment, param):
    error = assert_openai_error(post(server, "/v1/chat/completions", body), 400, fragment)
    if param is not None:
        assert error["param"] is not None and error["param"].startswith(param), error


def test_invalid_json_names_no_param(server):
    """Issue 26: the error carried the character offset as `param` ("31")."""
    headers = {**AUTH, "Content-Type": "application/json"}
    body = b'{"model": "chat", "messages": [}'
    assert_openai_error(post(server, "/v1/chat/completions", content=body, headers=headers), 400, "JSON", param=None)


@pytest.mark.parametrize("value", ["Bearer \u00e9\u00e8", "Bearer caf\u00e9", "\u00ff\u00fe"])
def test_a_non_ascii_authorization_header_is_a_401(server, value):
    headers = {"Authorization": value.encode("latin-1")}
    assert_openai_error(post(server, "/v1/chat/completions", CHAT, headers=headers), 401, "API key")
    utf8 = {"Authorization": "Bearer ключ".encode()}
    assert_openai_error(post(server, "/v1/models", headers=utf8), 405)  # POST on a GET route: still no 500
    assert_openai_error(httpx.get(f"{server.url}/v1/models", headers=utf8), 401, "API key")


def test_a_chunked_body_over_the_limit_is_a_413(slow_server):
    def chunks():
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 500  # no Content-Length: the size is known only as it arrives
        yield b'"}]}'

    headers = {**AUTH, "Content-Type": "application/json"}
    assert_openai_error(post(slow_server, "/v1/chat/completions", content=chunks(), headers=headers), 413, "exceeds")
    small = iter([b'{"model": "chat", "max_tokens": 2, ', b'"messages": [{"role": "user", "content": "hi"}]}'])
    assert post(slow_server, "/v1/chat/completions", content=small, headers=headers).status_code == 200


def test_completions_stream_the_usage_when_asked(client, served_models):
    kw = dict(model="chat", prompt="Dear customer,", max_tokens=6, temperature=0)
    events = list(client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    *text_events, last = events
    assert last.choices == [] and last.usage is not None
    done = served_models["chat"].generate("Dear customer,", max_new_tokens=6)
    assert last.usage.completion_tokens == done.usage.completion_tokens
    assert last.usage.prompt_tokens == done.usage.prompt_tokens
    assert "".join(e.choices[0].text for e in text_events) == done.text
    without = list(client.completions.create(**kw, stream=True))
    assert all(e.usage is None for e in without)


def test_a_non_streamed_request_whose_client_left_stops_generating(slow_server):
    slow = slow_server.model
    with pytest.raises(httpx.TimeoutException):
        post(slow_server, "/v1/chat/completions", {**CHAT, "max_tokens": 200}, timeout=0.5)
    assert slow.closed.wait(timeout=20), "the generation went on after its client left"
    assert slow.produced < 200  # stopped at its next token, not at max_tokens
    assert post(slow_server, "/v1/chat/completions", CHAT).status_code == 200  # and the slot is free


def test_the_official_client_gets_typed_errors(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="chat", messages=CHAT["messages"], seed=-1, stream=True)
    assert err.value.body["param"] == "seed"
