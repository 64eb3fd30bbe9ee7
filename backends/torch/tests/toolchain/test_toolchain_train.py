"""`tinylm train`: from scratch, deterministic, resumable after an interruption."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tinylm_torch.toolchain.checkpoint import has_checkpoint
from tinylm_torch.toolchain.common import RunOptions
from tinylm_torch.toolchain.errors import CheckpointError
from tinylm_torch.toolchain.train import TrainConfig, train

import tinylm
from tinylm.cli import main

from .conftest import assert_runs_everywhere

ARGS = ["--size", "tiny", "--context", "32", "--vocab-size", "300", "--batch-size", "4", "--threads", "1"]


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(data), "--out", str(out), *ARGS, "--steps", "8", "--eval-every", "4", *extra]


def test_interrupted_train_resumes_and_equals_an_uninterrupted_run(tiny_text, tmp_path, capsys):
    whole = tmp_path / "whole"
    assert main(_args(tiny_text, whole)) == 0

    parts = tmp_path / "parts"
    assert main(_args(tiny_text, parts, "--stop-after", "3")) == 130  # interrupted after step 3
    ckpt = parts.with_name("parts.checkpoint")
    assert has_checkpoint(ckpt) and not parts.exists()
    assert main(_args(tiny_text, parts)) == 0
    assert "resumed from the checkpoint at step 3" in capsys.readouterr().err
    assert not ckpt.exists()  # removed once the model is written

    a, b = load_file(str(whole / "model.safetensors")), load_file(str(parts / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    card = (parts / "README.md").read_text()
    assert "tinylm train" in card and "validation perplexity" in card
    assert_runs_everywhere(parts)


def test_resume_continues_from_the_saved_step_and_optimizer(tiny_text, tmp_path):
    config = TrainConfig(
        size="tiny", context=32, vocab_size=300, run=RunOptions(steps=6, batch_size=4, eval_every=0, stop_after=2)
    )
    first = train([tiny_text], tmp_path / "m", config)
    assert first.interrupted and first.steps == 2 and first.out is None
    again = dataclasses.replace(config, run=dataclasses.replace(config.run, stop_after=None))
    resumed = train([tiny_text], tmp_path / "m", again)
    assert resumed.resumed_from == 2 and resumed.steps == 6 and resumed.out is not None
    assert [h["step"] for h in resumed.history][-1] == 6
    with tinylm.load(resumed.out, backend="torch") as m:
        assert m.spec.family == "llama" and m.spec.num_layers == 2


def test_a_checkpoint_of_another_run_is_refused(tiny_text, tmp_path):
    run = RunOptions(steps=4, batch_size=4, eval_every=0, stop_after=1)
    train([tiny_text], tmp_path / "m", TrainConfig(size="tiny", context=32, vocab_size=300, run=run))
    other = TrainConfig(size="tiny", context=32, vocab_size=300, run=RunOptions(steps=4, batch_size=4, lr=0.5))
    with pytest.raises(CheckpointError, match="different run"):
        train([tiny_text], tmp_path / "m", other)


def test_a_resumed_run_may_change_its_steps_and_compute_precision(tiny_text, tmp_path):
    run = RunOptions(steps=8, batch_size=4, eval_every=0, stop_after=2)
    train([tiny_text], tmp_path / "m", TrainConfig(size="tiny", context=32, vocab_size=300, run=run))
    shorter = RunOptions(steps=5, batch_size=4, eval_every=0, autocast="bf16")
    resumed = train([tiny_text], tmp_path / "m", TrainConfig(size="tiny", context=32, vocab_size=300, run=shorter))
    assert resumed.resumed_from == 2 and resumed.steps == 5 and resumed.out is not None
    assert np.isfinite(resumed.train_loss)


def test_bf16_autocast_trains_close_to_fp32(tiny_text, tmp_path):
    losses = {}
    for autocast in (None, "bf16"):
        run = RunOptions(steps=6, batch_size=4, eval_every=0, autocast=autocast)
        config = TrainConfig(size="tiny", context=32, vocab_size=300, run=run)
        losses[autocast] = train([tiny_text], tmp_path / str(autocast), config).train_loss
    assert losses["bf16"] != losses[None]  # bf16 rounding shows: autocast was really on
    assert losses["bf16"] == pytest.approx(losses[None], rel=0.05)


@pytest.mark.parametrize("family", ["gpt2", "qwen3", "gemma3_text", "smollm3"])
def test_other_families_train_and_load(family, tiny_text, tmp_path):
    run = RunOptions(steps=2, batch_size=4, eval_every=0)
    config = TrainConfig(family=family, size="tiny", context=32, vocab_size=300, run=run)
    result = train([tiny_text], tmp_path / family, config)
    assert_runs_everywhere(result.out)


@pytest.mark.slow
def test_a_killed_train_process_resumes(tiny_text, tmp_path):
    out = tmp_path / "m"
    args = [
        sys.executable,
        "-m",
        "tinylm.cli",
        *_args(tiny_text, out)[:-4],
        "--steps",
        "400",
        "--checkpoint-every",
        "5",
    ]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ckpt = out.with_name("m.checkpoint")
    deadline = time.time() + 120
    while not has_checkpoint(ckpt) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # no chance to save: the periodic checkpoint must be enough
    proc.wait()
    assert has_checkpoint(ckpt) and not out.exists()
    assert main([*_args(tiny_text, out)[:-4], "--steps", "400", "--checkpoint-every", "5"]) == 0
    assert (out / "model.safetensors").is_file()


def test_a_checkpoint_from_before_a_new_setting_resumes_at_its_default(tmp_path):
    """A setting added after a checkpoint was written: at its default the run resumes; changed, it is refused."""
    import dataclasses

    import pytest
    import torch
    from tinylm_torch.toolchain.checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
    from tinylm_torch.toolchain.common import fingerprint_of

    @dataclasses.dataclass(frozen=True)
    class Old:
        lr: float = 0.1

    @dataclasses.dataclass(frozen=True)
    class New:
        lr: float = 0.1
        replay_ratio: float = 1.0

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(
        tmp_path / "ck",
        model=model,
        optimizer=optimizer,
        state=TrainingState(step=3),
        fingerprint=fingerprint_of(Old()),
    )
    state = load_checkpoint(tmp_path / "ck", model=model, optimizer=optimizer, fingerprint=fingerprint_of(New()))
    assert state.step == 3
    with pytest.raises(CheckpointError, match="replay_ratio"):
        load_checkpoint(
            tmp_path / "ck", model=model, optimizer=optimizer, fingerprint=fingerprint_of(New(replay_ratio=2.0))
        )
    with pytest.raises(CheckpointError, match="lr"):
        load_checkpoint(tmp_path / "ck", model=model, optimizer=optimizer, fingerprint=fingerprint_of(New(lr=0.2)))
