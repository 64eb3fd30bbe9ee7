"""What every toolchain command shares: run options (optimisation, checkpoints, seed, threads),
resolving a source model (verified known packages first), and building its trainable module."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tinylm.source import ModelFolder

from .checkpoint import comparable
from .errors import IntegrityError
from .loop import LoopConfig

__all__ = ["RunOptions", "setup", "loop_config", "checkpoint_dir", "open_source", "fingerprint_of"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Optimisation and bookkeeping options of one training run (the CLI's shared flags)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    warmup: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    checkpoint_every: int = 50
    checkpoint_dir: Path | None = None
    resume: bool = True
    stop_after: int | None = None
    keep_checkpoint: bool = False
    seed: int = 0
    threads: int | None = None
    autocast: str | None = None  # "bf16": mixed-precision compute, fp32 weights and optimizer
    overwrite: bool = False
    log_every: int = 10


def setup(run: RunOptions) -> None:
    """Threads and the global seed: the same seed and thread count give the same run."""
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)


def checkpoint_dir(out: Path, run: RunOptions) -> Path:
    """`--checkpoint-dir`, else `<out>.checkpoint` beside the output; cleared first with --no-resume."""
    folder = run.checkpoint_dir or out.with_name(out.name + ".checkpoint")
    if not run.resume:
        shutil.rmtree(folder, ignore_errors=True)
    return folder


def loop_config(run: RunOptions, *, label: str, ckpt: Path | None) -> LoopConfig:
    return LoopConfig(
        steps=run.steps,
        lr=run.lr,
        warmup=min(run.warmup, max(0, run.steps - 1)),
        weight_decay=run.weight_decay,
        grad_clip=run.grad_clip,
        eval_every=run.eval_every,
        checkpoint_every=run.checkpoint_every,
        checkpoint_dir=ckpt,
        resume=run.resume,
        stop_after=run.stop_after,
        log_every=run.log_every,
        autocast=run.autocast,
        label=label,
    )


class Fingerprint(dict):
    """A run's settings, with `defaults`: the default value of each dataclass setting.

    A checkpoint written before a setting existed lacks its key; it resumes when the setting is at its
    default (the run it belongs to behaved that way)."""

    defaults: dict[str, Any]


def fingerprint_of(*parts: Any) -> Fingerprint:
    """The settings that define a run (a checkpoint only resumes the same run); paths become strings.

    Left out, so they may change when resuming: bookkeeping, threads, `autocast` (compute precision
    only) and `steps` (the schedule then follows the new total from the step reached)."""
    out = Fingerprint()
    out.defaults = {}
    for part in parts:
        out.update(comparable(dataclasses.asdict(part) if dataclasses.is_dataclass(part) else dict(part)))
        if dataclasses.is_dataclass(part):
            for f in dataclasses.fields(part):
                if f.default is not dataclasses.MISSING:
                    out.defaults[f.name] = comparable(f.default)
    return out


def open_source(model: str | Path) -> ModelFolder:
    """The model folder for `model`: a known verified package name, a folder, a bundled name or a hub id."""
    from tinylm.plugins import get_manager
    from tinylm.resolve import resolve_model

    from .known import known_model_folder

    known = known_model_folder(str(model))  # a known name: its package is installed and its hashes match
    folder = resolve_model(model, get_manager())  # the one resolver, as tinylm.load uses
    if known is not None and known.resolve() != folder.resolve():  # pragma: no cover - another plugin took the name
        raise IntegrityError(
            f"{model} names {folder}, not the verified package folder {known}. "
            "Fix: disable the plugin that registers this name (TINYLM_DISABLE_PLUGINS)."
        )
    return ModelFolder(folder)


def check_counts(config: Any, names: tuple[str, ...], error: type[Exception]) -> None:
    """Raise `error` naming the first of `config`'s fields `names` that is set but not a positive integer
    (before a string such as "four" reaches arithmetic and fails there with Python's own words)."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise error(
                f"{type(config).__name__}.{name} is {value!r}; it must be a positive integer. "
                f"Fix: pass a whole number, e.g. {name}=4."
            )
