"""The same jobs on a real local Ray cluster (2 CPUs, no dashboard): identical rows, resume after kill -9 of the
driver, a killed worker retried by Ray, the Ray Data API, and the server behind Ray Serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install tinylm[ray]")

import tinylm  # noqa: E402
import tinylm.ray  # noqa: E402
from tinylm.cli import main  # noqa: E402

from .conftest import (  # noqa: E402
    batch_cli,
    by_id,
    chats,
    kill_9_then_rerun,
    prompts,
    read_jsonl,
    run_clean,
    texts,
    wait_for_rows,
    write_jsonl,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tinylm_home):
    """A local Ray cluster for this module; drivers started as subprocesses join it by its address."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_local_and_ray_with_two_workers_give_the_same_rows(cluster, tiny_models, tmp_path):
    for task, rows, model in (
        ("generate", prompts(8), tiny_models["decoder"]),
        ("chat", chats(4), tiny_models["decoder"]),
        ("embed", texts(9), tiny_models["encoder"]),
    ):
        src = write_jsonl(tmp_path / f"{task}.jsonl", rows)
        local = run_clean(model, src, tmp_path / f"{task}-local.jsonl", task, max_new_tokens=8)
        out = tmp_path / f"{task}-ray.jsonl"
        argv = ["batch", str(model), str(src), str(out), "--task", task, "--backend", "torch", "--no-progress"]
        assert main([*argv, "--max-new-tokens", "8", "--batch-size", "2", "--ray", cluster, "--workers", "2"]) == 0
        on_ray = by_id(read_jsonl(out))
        assert on_ray.keys() == local.keys()
        for key, row in local.items():
            if task == "embed":
                np.testing.assert_allclose(on_ray[key]["embedding"], row["embedding"], atol=1e-5)
            else:
                assert on_ray[key] == row  # greedy: the same text, finish reason and token counts


def test_kill_9_of_the_driver_then_a_rerun_gives_one_row_per_id(cluster, tiny_models, tmp_path):
    n = 40
    src = write_jsonl(tmp_path / "in.jsonl", prompts(n))
    out = tmp_path / "out.jsonl"
    args = [str(tiny_models["decoder"]), str(src), str(out), "--task", "generate", "--max-new-tokens", "12"]
    kill_9_then_rerun([*args, "--batch-size", "1", "--ray", cluster, "--workers", "2"], out, n)
    assert by_id(read_jsonl(out)) == run_clean(
        tiny_models["decoder"], src, tmp_path / "clean.jsonl", "generate", max_new_tokens=12
    )


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _workers_of(cls_name: str) -> list[int]:
    """Pids of this module's cluster (a child of this process) whose title names `cls_name`."""
    if not Path("/proc").is_dir():
        pytest.skip("finding a Ray worker's process reads /proc (Linux)")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if cls_name.encode() not in (entry / "cmdline").read_bytes():
                continue
            pid = int(entry.name)
            while pid > 1 and pid != os.getpid():
                pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            continue
        if pid == os.getpid():
            found.append(int(entry.name))
    return found


def test_a_worker_killed_mid_job_is_retried_with_no_lost_or_duplicated_rows(cluster, tiny_models, tmp_path):
    n = 40
    src = write_jsonl(tmp_path / "in.jsonl", prompts(n))
    out = tmp_path / "out.jsonl"
    args = [str(tiny_models["decoder"]), str(src), str(out), "--task", "generate", "--max-new-tokens", "12"]
    args += ["--batch-size", "1", "--ray", cluster, "--workers", "2"]
    proc = subprocess.Popen(batch_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_rows(out, 3, proc)
        workers = _workers_of("JsonRowsPredictor")
        assert workers, "no Ray worker of the job found"
        os.kill(workers[0], signal.SIGKILL)
        at_kill = out.read_bytes().count(b"\n")
        assert at_kill < n, "the job finished before a worker was killed; make it longer"
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert by_id(read_jsonl(out)) == run_clean(
        tiny_models["decoder"], src, tmp_path / "clean.jsonl", "generate", max_new_tokens=12
    )


def test_map_batches_in_a_users_own_pipeline(cluster, tiny_models):
    rows = texts(5)
    ds = tinylm.ray.map_batches(ray.data.from_items(rows), str(tiny_models["encoder"]), task="embed", backend="torch")
    got = sorted(ds.take_all(), key=lambda r: r["id"])
    with tinylm.load(tiny_models["encoder"], backend="torch") as model:
        expected = dict(zip([r["id"] for r in rows], model.embed([r["text"] for r in rows])))
    for r in got:
        np.testing.assert_allclose(r["embedding"], expected[r["id"]], atol=1e-5)

    ds = tinylm.ray.map_batches(
        ray.data.from_items(chats(2)), str(tiny_models["decoder"]), task="chat", backend="torch", max_new_tokens=5
    )
    got = sorted(ds.take_all(), key=lambda r: r["id"])
    with tinylm.load(tiny_models["decoder"], backend="torch") as model:
        assert [r["text"] for r in got] == [model.chat(c["messages"], max_new_tokens=5).text for c in chats(2)]
    assert all(r["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 5 for r in got)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tinylm_serve_with_two_ray_replicas(cluster, tiny_models):
    import httpx

    port = _free_port()
    env = {**os.environ, "RAY_ADDRESS": cluster}
    cmd = [sys.executable, "-m", "tinylm.cli", "serve", f"bot={tiny_models['decoder']}", "--backend", "torch"]
    proc = subprocess.Popen(
        [*cmd, "--ray-replicas", "2", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.time() < deadline, "Ray Serve did not start in time"
            time.sleep(0.5)
        from ray import serve

        while (replicas := serve.status().applications["tinylm"].deployments["tinylm"].replica_states).get(
            "RUNNING"
        ) != 2:  # the router answers as soon as one replica runs
            assert time.time() < deadline, replicas
            time.sleep(0.5)
        messages = [{"role": "user", "content": "Where is my parcel?"}]
        body = {"model": "bot", "messages": messages, "max_tokens": 6, "temperature": 0}
        answers = {
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]
            for _ in range(4)
        }
        with tinylm.load(tiny_models["decoder"], backend="torch") as model:
            assert answers == {model.chat(messages, max_new_tokens=6).text}  # every replica answers the same
        assert httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"] == "bot"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
