"""The artifact cache across processes: one build for concurrent loaders, nothing trusted after a
kill, changed files detected, a full disk a typed error with nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tinylm.artifacts import MARKER


def entries(home):
    root = home / "artifacts" / "slowconv"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_two_processes_build_one_artifact_and_both_load_it(run_load):
    start, log, home = run_load
    procs = [start(FAKE_CONVERT_SLEEP=1.5), start(FAKE_CONVERT_SLEEP=1.5)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(o[0].strip() == "(5, 5)" for o in outs)
    assert len(list(log.iterdir())) == 1  # converted once
    assert len(entries(home)) == 1


def test_a_killed_conversion_leaves_nothing_trusted(run_load):
    start, log, home = run_load
    victim = start(FAKE_CONVERT_SLEEP=30)
    deadline = time.time() + 60
    while not list(log.iterdir()):  # wait until it is inside prepare()
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not any((e / MARKER).is_file() for e in entries(home))
    again = start()
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert len(list(log.iterdir())) == 2  # the next load converted again
    complete = [e for e in entries(home) if (e / MARKER).is_file()]
    assert len(complete) == 1


def test_changed_files_are_detected_and_rebuilt(run_load):
    start, log, home = run_load
    assert start().wait(timeout=120) == 0
    (entry,) = entries(home)
    meta = json.loads((entry / MARKER).read_text())
    assert set(meta["files"]) == {"part1.bin", "part2.bin"} and len(meta["files"]["part1.bin"]["sha256"]) == 64
    with (entry / "part2.bin").open("ab") as f:
        f.write(b"tampered")
    p = start()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(list(log.iterdir())) == 2 and "rebuilding" in err
    (entry,) = entries(home)
    assert (entry / "part2.bin").stat().st_size == 1000


def test_a_full_disk_is_a_typed_error_and_leaves_no_entry(run_load, fake_dist, tiny_model):
    _, log, home = run_load
    # RLIMIT_FSIZE makes writes past 64 KiB fail with EFBIG, as a full disk fails with ENOSPC.
    env = {
        **os.environ,
        "PYTHONPATH": str(fake_dist),
        "TINYLM_HOME": str(home),
        "FAKE_CONVERT_LOG": str(log),
        "FAKE_CONVERT_BYTES": str(10**6),
    }
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); import tinylm\n"
        "try:\n    tinylm.load(sys.argv[1], backend='slowconv')\n"
        "except tinylm.ArtifactError as e:\n    print('ArtifactError:', e); sys.exit(3)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model)], env=env, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 3, p.stderr
    assert "Fix" in p.stdout and "TINYLM_HOME" in p.stdout
    assert entries(home) == []  # no partial entry, no temp folder
