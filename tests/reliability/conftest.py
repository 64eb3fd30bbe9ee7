"""A fake converting backend installed as a real entry point (for cross-process cache tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PLUGIN = textwrap.dedent(
    '''
    """A converting backend whose prepare() is slow and logged, and whose session is scripted."""
    import os, time
    from pathlib import Path

    import numpy as np

    from tinylm import hookimpl
    from dataclasses import dataclass

    from tinylm.backend import Availability, Capabilities, ConvertOptions


    @dataclass(frozen=True, kw_only=True)
    class Options(ConvertOptions):
        parity: bool = False  # the scripted session is no model to measure


    class Session:
        def __init__(self, vocab):
            self.vocab, self.n = vocab, 0

        @property
        def length(self):
            return self.n

        def forward(self, ids, *, all_positions=False):
            self.n += ids.shape[1]
            logits = np.zeros((ids.shape[0], self.vocab), np.float32)
            logits[:, 5] = 1.0
            return logits

        def reset(self):
            self.n = 0

        def close(self):
            pass


    class SlowConverter:
        name = "slowconv"
        version = "1.0"
        capabilities = Capabilities(converts=True, kinds=("decoder",), options=Options)

        def availability(self):
            return Availability(ok=True)

        def devices(self):
            return ["cpu"]

        def prepare(self, request, options, out):
            log = Path(os.environ["FAKE_CONVERT_LOG"])
            with open(log / f"prepare-{os.getpid()}-{time.time_ns()}", "w"):
                pass
            (out / "part1.bin").write_bytes(b"x" * 1000)
            time.sleep(float(os.environ.get("FAKE_CONVERT_SLEEP", "0")))
            size = int(os.environ.get("FAKE_CONVERT_BYTES", "1000"))
            (out / "part2.bin").write_bytes(b"y" * size)
            return {"parity": {"max_abs_logit_diff": 0.0}}

        def open(self, request):
            assert (request.artifact / "part2.bin").is_file()
            return Session(request.spec.vocab_size)


    @hookimpl
    def register_backends(register):
        register(SlowConverter())
    '''
)


@pytest.fixture
def fake_dist(tmp_path):
    root = tmp_path / "site"
    info = root / "tinylm_slowconv-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinylm-slowconv\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tinylm]\nslowconv = fake_slowconv\n")
    (root / "fake_slowconv.py").write_text(PLUGIN)
    return root


@pytest.fixture
def tiny_model(tmp_path_factory):
    pytest.importorskip("transformers", reason="the test model is built with transformers")
    from tinylm.testing.models import build_model

    return build_model("smollm", tmp_path_factory.mktemp("rel") / "m")


@pytest.fixture
def folder(tmp_path, tiny_model):
    """A copy of `tiny_model` that a test may damage."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tiny_model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    return copy


@pytest.fixture
def run_load(fake_dist, tmp_path, tiny_model):
    """Start `tinylm.load(model, backend='slowconv')` in a subprocess; returns (Popen, log dir, home)."""
    log = tmp_path / "log"
    log.mkdir()
    home = tmp_path / "home"

    def start(**env_extra):
        env = {
            **os.environ,
            "PYTHONPATH": str(fake_dist),
            "TINYLM_HOME": str(home),
            "FAKE_CONVERT_LOG": str(log),
            **{k: str(v) for k, v in env_extra.items()},
        }
        code = (
            "import sys, tinylm; m = tinylm.load(sys.argv[1], backend='slowconv'); "
            "print(m.generate('hi', max_new_tokens=2, ignore_eos=True).token_ids)"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code, str(tiny_model)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start, log, home
