"""`tinylm serve` from the command line: starts on loopback, serves, and needs the key."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from .conftest import _free_port


def test_tinylm_serve_command(served_models):
    folder = served_models["chat"].path
    port = _free_port()
    env = {**os.environ, "TINYLM_API_KEY": "k"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinylm.cli", "serve", f"bot={folder}", "--port", str(port), "--backend", "torch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k"}).json()
        assert [m["id"] for m in models["data"]] == ["bot"]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
