"""Property-based fuzz of the server's request schemas (issue 22): every route answers any body, any field of
any JSON type, with a 200 or a 4xx in OpenAI's error shape, never a 500; a stream that got its 200 carries no
error event and ends with [DONE].

The default suite sends a few dozen requests per route (seconds); `-m slow` sends thousands (minutes).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylm.server import ServerConfig

from ..fuzzing import fuzz
from .conftest import API_KEY, RunningServer

FEW, MANY = 40, 2000


@pytest.fixture(scope="module")
def http(served_models):
    # a short default length keeps each valid generation cheap; a small body limit reaches the 413 path
    config = ServerConfig(api_key=API_KEY, max_queue=64, max_body_bytes=20_000, default_max_tokens=4)
    with RunningServer(served_models, config) as s, httpx.Client(base_url=s.url, timeout=60) as client:
        yield client


# JSON values -------------------------------------------------------------------------------------------------

TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(categories=["Cs", "L", "Zs", "Cc"]), max_size=6),  # lone surrogates: "\ud800"
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),  # sent as NaN / Infinity, which Python's json accepts
    TEXT,
)
JSON = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8
)


WORDS = st.text(max_size=20)  # valid text; TEXT above may hold lone surrogates
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer"]), "content": WORDS},
    optional={"name": WORDS.filter(bool)},
)
SCHEMA = st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "string", "integer", "boolean"])},
    optional={"enum": st.lists(st.integers(0, 9) | WORDS, min_size=1, max_size=2)},
)
#: each field's valid values
GOOD = {
    "max_tokens": st.integers(min_value=1, max_value=4),
    "max_completion_tokens": st.integers(min_value=1, max_value=4),
    "temperature": st.floats(min_value=0, max_value=2),
    "top_p": st.floats(min_value=0.01, max_value=1),
    "stop": WORDS.filter(bool) | st.lists(WORDS.filter(bool), max_size=4),
    "seed": st.integers(min_value=0, max_value=2**63),
    "stream": st.booleans(),
    "n": st.integers(min_value=1, max_value=2),
    "user": WORDS,
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.floats(min_value=-2, max_value=2),
    "logit_bias": st.dictionaries(st.integers(0, 447).map(str), st.floats(min_value=-100, max_value=100), max_size=2),
    "response_format": st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
        st.fixed_dictionaries(
            {"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries({"name": WORDS, "schema": SCHEMA})}
        ),
    ),
    "messages": st.lists(MESSAGE, min_size=1, max_size=3),
    "prompt": WORDS,
    "input": WORDS | st.lists(WORDS, min_size=1, max_size=3),
    "encoding_format": st.sampled_from(["float", "base64"]),
}
#: values of the right JSON type that a check must refuse (out of range, lone surrogates, unsupported)
EDGE = {
    "max_tokens": st.integers(max_value=0),
    "max_completion_tokens": st.integers(max_value=0),
    "temperature": st.floats(max_value=-0.01) | st.floats(min_value=2.01) | st.just(float("nan")),
    "top_p": st.floats(max_value=0) | st.floats(min_value=1.01) | st.just(float("nan")),
    "stop": st.lists(TEXT, min_size=5, max_size=6) | st.just("") | st.lists(TEXT, max_size=2),
    "seed": st.integers(max_value=-1) | st.integers(min_value=2**64),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON}),
    "n": st.integers().filter(lambda n: not 1 <= n <= 16),
    "presence_penalty": st.floats(allow_nan=True).filter(lambda v: not -2 <= v <= 2),
    "frequency_penalty": st.floats(allow_nan=True).filter(lambda v: not -2 <= v <= 2),
    "logit_bias": st.dictionaries(TEXT, JSON, max_size=2) | st.dictionaries(st.just("5"), st.floats(allow_nan=True)),
    "response_format": st.fixed_dictionaries(
        {"type": st.sampled_from(["xml", "json_schema", "json_object"])},
        optional={"json_schema": JSON | st.fixed_dictionaries({"schema": JSON})},
    ),
    "messages": st.lists(st.fixed_dictionaries({"role": TEXT, "content": TEXT}), max_size=3),
    "prompt": TEXT,
    "input": TEXT | st.lists(TEXT, max_size=3),
    "dimensions": st.integers(),
    "echo": st.just(True),
    "logprobs": JSON,
}
SAMPLING = (
    "max_tokens max_completion_tokens temperature top_p stop seed stream n user presence_penalty "
    "frequency_penalty logit_bias response_format"
).split()
FIELDS = {
    "/v1/chat/completions": ("messages", SAMPLING),
    "/v1/completions": ("prompt", SAMPLING),
    "/v1/embeddings": ("input", ["encoding_format", "user"]),
}
SERVED = {"/v1/chat/completions": "chat", "/v1/completions": "chat", "/v1/embeddings": "embed"}


def bodies(route: str) -> st.SearchStrategy[Any]:
    """Valid request objects for `route`, then up to two fields (its own, an unknown or a misspelt one) set to a
    value a check must refuse or to any JSON at all; sometimes a body that is not an object."""
    required, optional = FIELDS[route]
    model = SERVED[route]
    served = st.sampled_from([model, model, model, "chat" if model == "embed" else "embed", "nope"])
    base = st.fixed_dictionaries({"model": served, required: GOOD[required]}, optional={k: GOOD[k] for k in optional})
    names = [required, *optional, "stream_options", "model", "logprobs", "dimensions", "echo", "tools", "Model"]
    names += ["tool_choice", "top_logprobs", "parallel_tool_calls"]
    mutation = st.sampled_from(names).flatmap(lambda k: st.tuples(st.just(k), EDGE.get(k, JSON) | JSON))
    objects = st.builds(lambda body, changes: {**body, **dict(changes)}, base, st.lists(mutation, max_size=2))
    return st.one_of(objects, objects, objects, JSON)


ROUTES = {route: bodies(route) for route in FIELDS}
RAW = st.one_of(st.binary(max_size=40), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
#: what an HTTP header value can hold (visible ASCII and latin-1 bytes), the right key most often
HEADER_CHARS = st.characters(codec="latin-1", exclude_categories=["Cc", "Zs"])
AUTH = st.one_of(
    st.just(f"Bearer {API_KEY}"),
    st.just(f"Bearer {API_KEY}"),
    st.builds(lambda t: f"Bearer {t}", st.text(HEADER_CHARS, min_size=1, max_size=12)),
    st.text(HEADER_CHARS, min_size=1, max_size=12),
)


def check(http: httpx.Client, route: str, content: bytes, auth: str) -> None:
    headers = {"Content-Type": "application/json", "Authorization": auth.encode("latin-1")}
    with http.stream("POST", route, content=content, headers=headers) as r:
        body = r.read()
    assert r.status_code < 500, (r.status_code, content[:300], body[:300])
    if r.status_code >= 400:
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str), error
        assert error["param"] is None or isinstance(error["param"], str), error
        return
    assert r.status_code == 200
    if r.headers["content-type"].startswith("text/event-stream"):
        events = [line[len("data: ") :] for line in body.decode("utf-8").splitlines() if line.startswith("data: ")]
        assert events and events[-1] == "[DONE]", body[-300:]
        assert not any("error" in json.loads(e) for e in events[:-1]), body[:500]  # nothing refused after the 200
    else:
        assert {"object", "model"} <= json.loads(body).keys()


def encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode("ascii")  # lone surrogates travel as \ud800 escapes


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_requests(http, route):
    @fuzz(FEW)
    @given(body=ROUTES[route], auth=AUTH)
    def run(body, auth):
        check(http, route, encode(body), auth)

    run()


def test_raw_bodies(http):
    @fuzz(FEW)
    @given(route=st.sampled_from(sorted(ROUTES)), content=RAW)
    def run(route, content):
        check(http, route, content, f"Bearer {API_KEY}")

    run()


@pytest.mark.slow
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_requests_at_length(http, route):
    @fuzz(MANY)
    @given(body=ROUTES[route], auth=AUTH)
    def run(body, auth):
        check(http, route, encode(body), auth)

    run()


@pytest.mark.slow
def test_raw_bodies_at_length(http):
    @fuzz(MANY)
    @given(route=st.sampled_from(sorted(ROUTES)), content=RAW)
    def run(route, content):
        check(http, route, content, f"Bearer {API_KEY}")

    run()
