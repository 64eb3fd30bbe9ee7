"""The artifact cache's contents: bytes rewritten in place (size and modification time kept) are caught at
load, in an entry and in the onnx compiled copy alike, and fully by `tinylm cache verify`; what a killed
conversion leaves is shown by `tinylm cache ls` and removed by the next conversion of the key or by `prune`;
`prune` removes complete entries only when asked; an unwritable cache folder is an `ArtifactError`."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinylm
from tinylm import artifacts
from tinylm.artifacts import MARKER
from tinylm.errors import ArtifactError

IDS = np.arange(3, 27)


def cli(*args, home):
    env = {**os.environ, "TINYLM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "tinylm.cli", *args], capture_output=True, text=True, env=env, timeout=50
    )


def rewrite_in_place(path, offset_fraction=0.5, count=4096):
    """Overwrite bytes in the middle of `path`, keeping its size and modification time."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start : start + count] = bytes((b + 77) % 256 for b in data[start : start + count])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.fixture
def onnx_home(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the compiled copy is the onnx backend's")
    home = tmp_path / "home"
    monkeypatch.setenv("TINYLM_HOME", str(home))
    return home


def test_onnx_compiled_copy_rewritten_in_place_is_caught_at_load(tiny_model, onnx_home, caplog):
    reference = tinylm.load(tiny_model, backend="onnx", parity=False, compiled_cache=False).logits(IDS)
    first = tinylm.load(tiny_model, backend="onnx", parity=False)  # writes the compiled copy
    (data,) = first.artifact.glob("compiled/*/model.onnx.data")
    first.close()
    rewrite_in_place(data)
    with caplog.at_level("WARNING", logger="tinylm.onnx"):
        again = tinylm.load(tiny_model, backend="onnx", parity=False)
    np.testing.assert_allclose(again.logits(IDS), reference, atol=1e-4)
    assert "changed since it was written" in caplog.text


def test_an_entry_rewritten_in_place_is_rebuilt(tiny_model, onnx_home, caplog):
    model = tinylm.load(tiny_model, backend="onnx", parity=False, compiled_cache=False)
    reference = model.logits(IDS)
    data = model.artifact / "model.onnx.data"
    model.close()
    rewrite_in_place(data)
    with caplog.at_level("WARNING", logger="tinylm.artifacts"):
        again = tinylm.load(tiny_model, backend="onnx", parity=False, compiled_cache=False)
    np.testing.assert_allclose(again.logits(IDS), reference, atol=1e-4)
    assert "rebuilding cache entry" in caplog.text


def test_cache_verify_rehashes_everything(tiny_model, onnx_home):
    tinylm.load(tiny_model, backend="onnx", parity=False).close()  # an entry and its compiled copy
    ok = cli("cache", "verify", home=onnx_home)
    assert ok.returncode == 0 and "1 entry: 0 damaged" in ok.stdout, ok.stdout + ok.stderr
    (copy_data,) = onnx_home.glob("artifacts/onnx/*/compiled/*/model.onnx.data")
    rewrite_in_place(copy_data, offset_fraction=0.9, count=16)
    bad = cli("cache", "verify", home=onnx_home)
    assert bad.returncode == 1 and "model.onnx.data" in bad.stdout and "Fix:" in bad.stderr, bad.stdout


def test_a_killed_conversion_is_listed_and_removed_by_the_next_one(run_load):
    start, log, home = run_load
    victim = start(FAKE_CONVERT_SLEEP=30)
    deadline = time.time() + 40
    while not list(log.iterdir()):
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    parent = home / "artifacts" / "slowconv"
    (orphan,) = [p for p in parent.iterdir() if p.is_dir()]
    assert orphan.name.startswith(".")
    listed = cli("cache", "ls", home=home)
    assert orphan.name in listed.stdout and "orphaned" in listed.stdout, listed.stdout

    again = start()
    assert again.wait(timeout=50) == 0, again.stderr.read()
    assert not orphan.exists()
    (entry,) = [p for p in parent.iterdir() if p.is_dir()]
    assert (entry / MARKER).is_file()


def test_prune_keeps_complete_entries_unless_asked(run_load):
    start, _, home = run_load
    assert start().wait(timeout=50) == 0
    parent = home / "artifacts" / "slowconv"
    (entry,) = [p for p in parent.iterdir() if p.is_dir()]
    orphan = parent / f".{entry.name}.deadbeef"
    orphan.mkdir()
    (orphan / "part1.bin").write_bytes(b"x")
    (lock,) = parent.glob("*.lock")

    pruned = cli("cache", "prune", home=home)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 0 entries, 1 unfinished conversion, 1 stale lock file" in pruned.stdout
    assert "--all" in pruned.stdout and "kept 1 complete entry" in pruned.stdout
    assert (entry / MARKER).is_file() and not orphan.exists() and not lock.exists()

    assert cli("cache", "prune", "--all", home=home).returncode == 0
    assert not entry.exists()
    helped = cli("cache", "prune", "--help", home=home)
    assert "--all" in helped.stdout and "complete entries only with" in " ".join(helped.stdout.split())


def test_prune_leaves_a_running_conversion_alone(run_load):
    start, log, home = run_load
    running = start(FAKE_CONVERT_SLEEP=8)
    deadline = time.time() + 40
    while not list(log.iterdir()):
        assert time.time() < deadline and running.poll() is None
        time.sleep(0.05)
    parent = home / "artifacts" / "slowconv"
    (tmp,) = [p for p in parent.iterdir() if p.is_dir()]
    assert "converting now" in cli("cache", "ls", home=home).stdout
    assert cli("cache", "prune", home=home).returncode == 0
    assert tmp.exists() and list(parent.glob("*.lock"))
    assert running.wait(timeout=50) == 0


class Converting:
    name = "conv"
    version = "1.0"

    def __init__(self):
        from tinylm.backend import Capabilities, ConvertOptions

        self.capabilities = Capabilities(converts=True, options=ConvertOptions)

    def prepare(self, request, options, out):
        (out / "graph.bin").write_bytes(b"x" * 100)
        return {}


def _request(tiny_model):
    from tinylm.backend import ConvertOptions, OpenRequest
    from tinylm.source import ModelFolder

    folder = ModelFolder(tiny_model)
    return OpenRequest(
        spec=folder.spec,
        folder=tiny_model,
        weights_loader=dict,
        precision="fp32",
        device="cpu",
        num_threads=1,
        options=ConvertOptions.parse("fp32", {}, backend="conv"),
    )


def test_a_cache_folder_that_is_not_a_writable_folder_is_an_artifact_error(tiny_model, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TINYLM_HOME", str(home))
    (home / "artifacts").mkdir(parents=True)
    (home / "artifacts" / "conv").write_text("a file where the backend's folder should be")
    with pytest.raises(ArtifactError, match=r"artifacts/conv.*Fix:"):
        artifacts.ensure_artifact(Converting(), _request(tiny_model))


def test_permission_denied_in_the_cache_folder_is_an_artifact_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "artifacts" / "conv").mkdir(parents=True)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(artifacts.tempfile, "mkdtemp", denied)  # as a folder without write permission does
    with pytest.raises(ArtifactError, match=r"Permission denied.*Fix:"):
        artifacts.ensure_artifact(Converting(), _request(tiny_model))
    assert [p.name for p in (tmp_path / "home" / "artifacts" / "conv").iterdir() if p.is_dir()] == []
