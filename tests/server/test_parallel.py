"""`tinylm serve --parallel N` (issue #24): up to N requests per model decoded in one continuous batch.

Concurrent streaming clients each get exactly their non-stream greedy text (0 errors), seeds and structured
output stay per request, a client that goes away frees its row, the queue beyond N is bounded (429 before any
200), and concurrent embedding requests are embedded together with the same vectors.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest

from tinylm.server import ServerConfig

from .conftest import API_KEY, RunningServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PARALLEL = 4


@pytest.fixture(scope="module")
def parallel_server(served_models):
    config = ServerConfig(api_key=API_KEY, parallel=PARALLEL, max_queue=64)
    with RunningServer(served_models, config) as s:
        yield s


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_concurrent_streams_equal_their_non_stream_greedy_text(parallel_server, served_models):
    client = _client(parallel_server)
    prompts = [f"Order {1000 + i}: where is it? " * (1 + i % 3) for i in range(12)]  # ragged prompts
    non_stream = [
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": p}], max_tokens=12, temperature=0
        )
        .choices[0]
        .message.content
        for p in prompts
    ]
    alone = [served_models["chat"].chat([{"role": "user", "content": p}], max_new_tokens=12).text for p in prompts]
    assert non_stream == alone

    def one(i: int) -> tuple[str, dict]:
        stream = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": prompts[i]}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = [], {}
        for chunk in stream:
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        return "".join(text), usage

    with ThreadPoolExecutor(len(prompts)) as pool:
        got = list(pool.map(one, range(len(prompts))))  # an exception in any client fails the test
    assert [text for text, _ in got] == non_stream
    scheduler = served_models["chat"].batcher()
    assert scheduler.max_rows == PARALLEL and scheduler.stepped_rows > scheduler.steps  # rows shared steps
    for (_, usage), prompt in zip(got, prompts):
        ids = served_models["chat"].chat_ids([{"role": "user", "content": prompt}])
        assert usage["prompt_tokens"] == len(ids) and 1 <= usage["completion_tokens"] <= 12


def test_seeds_and_structured_output_stay_per_request(parallel_server, served_models):
    model = served_models["chat"]
    client = _client(parallel_server)
    messages = [[{"role": "user", "content": f"Customer {i} asks about a refund"}] for i in range(6)]
    expected = [model.chat(m, max_new_tokens=10, temperature=0.9, seed=i).text for i, m in enumerate(messages)]

    def sampled(i: int) -> str:
        reply = client.chat.completions.create(
            model="chat", messages=messages[i], max_tokens=10, temperature=0.9, seed=i
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(sampled, range(6))) == expected
    pytest.importorskip("llguidance")
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}

    def structured(i: int) -> str:
        reply = client.chat.completions.create(model="chat", messages=messages[i], max_tokens=20, response_format=fmt)
        return reply.choices[0].message.content

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(structured, range(4)))
    assert texts == [model.chat(m, max_new_tokens=20, response_format=schema).text for m in messages[:4]]


def _slowed(monkeypatch, model, rows: int):
    """The model's batcher of `rows` rows, its decode steps slowed to 50 ms (a row then stays live a while)."""
    scheduler = model.batcher(max_rows=rows)
    step_rows = scheduler.session.step_rows

    def slow(rows, tokens):
        time.sleep(0.05)
        return step_rows(rows, tokens)

    monkeypatch.setattr(scheduler.session, "step_rows", slow)
    return scheduler


def test_a_disconnect_frees_its_row(parallel_server, served_models, monkeypatch):
    scheduler = _slowed(monkeypatch, served_models["chat"], PARALLEL)
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "stream": True}
    body["temperature"] = 0  # the test model does not end this reply before its context
    url = f"{parallel_server.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(4):
            next(lines)
        assert scheduler.live == 1
    deadline = time.monotonic() + 30  # the client went away: its row is dropped at the next step
    while scheduler.live:
        assert time.monotonic() < deadline, "the disconnected client's row was never freed"
        time.sleep(0.02)


def test_the_queue_beyond_parallel_is_bounded(served_models, monkeypatch):
    """parallel rows run, max_queue wait, the next is a 429 before any 200 (streamed or not)."""
    config = ServerConfig(api_key=API_KEY, parallel=2, max_queue=0)
    scheduler = _slowed(monkeypatch, served_models["chat"], 2)
    with RunningServer(served_models, config) as s:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "stream": True}
        opened = []
        try:
            for _ in range(2):
                r = httpx.stream("POST", f"{s.url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)
                response = r.__enter__()
                lines = response.iter_lines()  # kept: a dropped line iterator closes the connection
                opened.append((r, lines))
                assert response.status_code == 200
                next(lines)
            for stream in (True, False):
                refused = httpx.post(
                    f"{s.url}/v1/chat/completions", json={**body, "stream": stream}, headers=AUTH, timeout=60
                )
                assert refused.status_code == 429, (stream, scheduler.live, refused.text[:300])
                assert refused.json()["error"]["code"] == "queue_full"
        finally:
            for r, _ in opened:
                r.__exit__(None, None, None)
        deadline = time.monotonic() + 30
        while scheduler.live:
            assert time.monotonic() < deadline, "rows of closed streams were never freed"
            time.sleep(0.02)
        ok = httpx.post(
            f"{s.url}/v1/chat/completions", json={**body, "stream": False, "max_tokens": 2}, headers=AUTH, timeout=60
        )
        assert ok.status_code == 200


def test_concurrent_embedding_requests_give_the_vectors_of_each_alone(parallel_server, served_models):
    client = _client(parallel_server)
    inputs = [[f"sentence {i}", f"another one, number {i} and longer"] for i in range(8)]
    expected = [served_models["embed"].embed(texts) for texts in inputs]
    barrier = threading.Barrier(len(inputs))

    def one(i: int) -> np.ndarray:
        barrier.wait()
        reply = client.embeddings.create(model="embed", input=inputs[i])
        return np.array([d.embedding for d in reply.data], np.float32)

    with ThreadPoolExecutor(len(inputs)) as pool:
        got = list(pool.map(one, range(len(inputs))))
    for g, e in zip(got, expected):
        assert g.shape == e.shape and float(np.abs(g - e).max()) <= 1e-5


def test_a_constrained_request_does_not_stall_the_server_while_a_generation_holds_the_model(server, served_models):
    """Compiling a request's response_format waits for nothing a generation holds: a one-slot server, or a backend
    without rows, holds the model's lock for a whole generation, and the event loop must not wait for it."""
    model = served_models["chat"]
    model.constraint({"type": "json_object"})  # its tokenizer index built: what is left is the locking
    held, release = threading.Event(), threading.Event()

    def generation() -> None:  # what a generation on the model's own session does (Model._run)
        with model._lock:
            held.set()
            release.wait(20)

    running = threading.Thread(target=generation)
    running.start()
    assert held.wait(10)
    body = {"model": "chat", "prompt": "Hi", "max_tokens": 2, "response_format": {"type": "json_object"}}
    constrained = threading.Thread(
        target=lambda: httpx.post(f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=60)
    )
    try:
        constrained.start()
        time.sleep(0.3)  # the constrained request reaches its handler
        health = httpx.get(f"{server.url}/health", timeout=10)  # times out if the loop waits for the lock
        assert health.status_code == 200 and not release.is_set()
    finally:
        release.set()
        running.join(30)
        constrained.join(60)
