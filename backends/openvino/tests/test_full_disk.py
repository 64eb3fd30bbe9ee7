"""A disk that fills during conversion: OpenVINO's writer says only "iostream error"; tinylm says what to do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("openvino", reason="the openvino runtime is not installed (pip install tinylm[openvino])")

# RLIMIT_FSIZE makes every write past 64 KiB fail with EFBIG, as a full disk fails with ENOSPC
LOAD_WITH_A_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
import tinylm
try:
    tinylm.load(sys.argv[1], backend="openvino")
except tinylm.ArtifactError as e:
    print(type(e.__cause__).__name__, "|", e)
    sys.exit(3)
"""


def test_a_full_disk_while_saving_the_ir_is_a_typed_error_and_leaves_nothing(model_folder, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TINYLM_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITH_A_FULL_DISK, str(model_folder("llama"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    cause, message = done.stdout.split(" | ", 1)
    assert cause == "RuntimeError"  # OpenVINO's own error, kept as the cause
    assert "File too large" in message and "Fix: free disk space" in message and "TINYLM_HOME" in message
    left = [name for name in os.listdir(home / "artifacts" / "openvino") if not name.endswith(".lock")]
    assert left == []  # no entry, no temporary folder, no probe
