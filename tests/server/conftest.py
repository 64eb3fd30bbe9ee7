"""A real server on a loopback port, serving tiny random models, for the official `openai` client."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the server needs the serve extra (pip install tinylm[serve])")
pytest.importorskip("openai", reason="the server is checked with the official openai client (pip install tinylm[test])")
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")

import uvicorn

import tinylm
from tinylm.server import ServerConfig, create_app
from tinylm.testing.models import build_model

API_KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, models, config):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(models, config), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def served_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    return {
        "chat": tinylm.load(build_model("smollm", root / "chat"), backend="torch"),
        "embed": tinylm.load(build_model("bert", root / "embed"), backend="torch"),
    }


@pytest.fixture(scope="session")
def server(served_models):
    with RunningServer(served_models, ServerConfig(api_key=API_KEY, max_queue=64, max_body_bytes=200_000)) as s:
        yield s


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def long_chat(tmp_path_factory):
    """A tiny chat model with a 2048-token context: prompts with tools (their schemas and the generic tool
    prompt) are longer than the 256 tokens of the tiny models' byte-level vocabulary."""
    from ..tool_templates import long_context

    folder = long_context(build_model("smollm", tmp_path_factory.mktemp("long") / "chat"))
    with tinylm.load(folder, backend="torch") as model:
        yield model


@pytest.fixture(scope="session")
def long_server(long_chat):
    with RunningServer({"chat": long_chat}, ServerConfig(api_key=API_KEY)) as s:
        yield s
