"""Chat templates that exhaust resources: rendering is bounded in time and size, every failure is ChatTemplateError.

Each hostile template renders in a child process (memory capped at 3 GB, killed after 30 s), so a template
that hangs or allocates without bound on a tinylm without the bounds fails its test instead of taking the
machine down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tinylm.chat import TemplateLimits, render_chat
from tinylm.errors import ChatTemplateError
from tinylm.testing.models import CHATML_TEMPLATE

HOSTILE = {
    "nested range(100000) loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops over a long string": "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}"
    "{% endfor %}",
    "range(10**9)": "{% for i in range(10**9) %}{{ i }}{% endfor %}",
    "'x' * 10**10": "{{ 'x' * 10**10 }}",
    "[1] * 10**9": "{{ ([1] * 10**9) | length }}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "macro recursing in breadth": "{% macro f(n) %}{% for i in range(10) %}{{ f(n + 1) if n < 12 }}{% endfor %}"
    "{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "doubling with +": "{% set ns = namespace(s=['x']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "squaring an integer": "{% set ns = namespace(x=3) %}{% for i in range(64) %}{% set ns.x = ns.x * ns.x %}"
    "{% endfor %}{{ ns.x }}",
    "10 ** 10 ** 7": "{{ 10 ** (10 ** 7) }}",
    "padding filter": "{{ 'x' | center(10**10) }}",
    "padding method": "{{ 'x'.ljust(10**10) }}",
    "str.format width": "{{ '{:>10000000000}'.format(1) }}",
    "% width": "{{ '%10000000000d' % 1 }}",
    "format filter width": "{{ '%*d' | format(10**10, 1) }}",
    "replace amplification": "{% set s = 'x' * 1000000 %}{{ s.replace('', s) | length }}",
    "join amplification": "{% set s = 'x' * 1000000 %}{{ s.join(range(100000) | map('string')) | length }}",
    "indent amplification": "{{ ('x\\n' * 1000000) | indent(100000) }}",
    "tojson indent": "{{ range(100000) | list | tojson(indent=10**8) }}",
    "output in a loop": "{% for i in range(100000) %}{{ 'y' * 1000000 }}{% endfor %}",
    "macro buffer in a loop": "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 1000000 }}{% endfor %}{% endmacro %}"
    "{{ m() | length }}",
    "deeply nested expression": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from tinylm.chat import render_chat
    from tinylm.errors import ChatTemplateError
    start = time.monotonic()
    try:
        render_chat(sys.argv[1], [{"role": "user", "content": "hi"}])
        outcome = "rendered"
    except ChatTemplateError as e:
        outcome = "ChatTemplateError: " + str(e)
    except BaseException as e:
        outcome = "raw " + type(e).__name__ + ": " + str(e)[:200]
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - start}))
    """
)


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_template_is_stopped_with_a_typed_error(template):
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, template], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the template rendered for over 30 s")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["outcome"].startswith("ChatTemplateError: "), result["outcome"]
    assert "Fix: " in result["outcome"]
    assert result["seconds"] < TemplateLimits().seconds + 5


def test_time_limit_is_the_one_given():
    start = time.monotonic()
    with pytest.raises(ChatTemplateError, match=r"longer than 0\.2 s"):
        render_chat(HOSTILE["nested range(100000) loops"], [], limits=TemplateLimits(seconds=0.2))
    assert time.monotonic() - start < 5


def test_size_limit_is_the_one_given():
    messages = [{"role": "user", "content": "x" * 2000}]
    assert render_chat(CHATML_TEMPLATE, messages, limits=TemplateLimits(max_chars=3000))
    with pytest.raises(ChatTemplateError, match=r"(over the limit of|emitted over) 1,000\b"):
        render_chat(CHATML_TEMPLATE, messages, limits=TemplateLimits(max_chars=1000))


def test_long_ordinary_conversations_render_within_the_bounds():
    messages = [{"role": ("user", "assistant")[i % 2], "content": "word " * 200} for i in range(2000)]
    start = time.monotonic()
    text = render_chat(CHATML_TEMPLATE, messages)
    assert text.count("<|im_start|>") == 2001
    assert time.monotonic() - start < TemplateLimits().seconds


@pytest.mark.parametrize(
    "template",
    [
        "{{ messages[0]['content'] + 1 }}",  # TypeError inside the template
        "{{ messages[0].content.nope() }}",
        "{{ 1 / 0 }}",
        "{% include 'other.jinja' %}",
        "{{ raise_exception('no system role') }}",
    ],
)
def test_every_template_failure_is_a_chat_template_error(template):
    with pytest.raises(ChatTemplateError, match="Fix: "):
        render_chat(template, [{"role": "user", "content": "hi"}])


def test_the_api_and_the_server_refuse_a_hostile_template(tmp_path):
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    pytest.importorskip("fastapi", reason="the server needs the serve extra")
    from fastapi.testclient import TestClient

    import tinylm
    from tinylm.server import create_app
    from tinylm.testing.models import build_model

    folder = build_model("smollm", tmp_path / "m")
    (folder / "chat_template.jinja").write_text(HOSTILE["'x' * 10**10"])
    with tinylm.load(folder, backend="torch") as model:
        with pytest.raises(ChatTemplateError):
            model.chat([{"role": "user", "content": "hi"}], max_new_tokens=1)
        response = TestClient(create_app({"chat": model})).post(
            "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert response.status_code == 400
    assert "chat template" in response.json()["error"]["message"]
