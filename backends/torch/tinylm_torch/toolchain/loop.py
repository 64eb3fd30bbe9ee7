"""The training loop every command shares: AdamW, warmup + cosine schedule, gradient clipping,
periodic validation, checkpoints that resume, a progress line, and a clean stop on Ctrl-C/SIGTERM.

The caller supplies `step_loss(step) -> (loss, tokens)` (which builds batch `step` itself, so the data
position is a function of the step) and optionally `validate() -> float`.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import TrainingState, has_checkpoint, load_checkpoint, save_checkpoint
from .progress import Progress

__all__ = ["LoopConfig", "LoopResult", "run_loop", "lr_at"]


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """Optimisation and bookkeeping settings (the data and the model come with `run_loop`'s arguments)."""

    steps: int
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 0
    checkpoint_every: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = True
    stop_after: int | None = None  # stop (as if interrupted) once this step is done: tests and time boxes
    log_every: int = 10
    autocast: str | None = None  # "bf16": forward and loss under torch.autocast, fp32 weights and optimizer
    label: str = "train"


@dataclass(kw_only=True)
class LoopResult:
    steps: int
    train_loss: float
    val_loss: float | None
    seconds: float
    tokens: int
    interrupted: bool
    resumed_from: int
    history: list[dict[str, float]] = field(default_factory=list)


def lr_at(step: int, config: LoopConfig) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to `lr * min_lr_ratio` at `steps`."""
    if config.warmup and step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(1, config.steps - config.warmup)
    progress = min(1.0, (step - config.warmup) / span)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


def make_optimizer(params: list[tuple[str, torch.nn.Parameter]], config: LoopConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases)."""
    decay = [p for _, p in params if p.dim() >= 2]
    other = [p for _, p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8)


@contextmanager
def _stop_on_signals(flag: dict[str, bool]) -> Iterator[None]:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop after the current step (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_loop(
    *,
    model: torch.nn.Module,
    step_loss: Callable[[int], tuple[torch.Tensor, int]],
    config: LoopConfig,
    fingerprint: dict[str, Any],
    validate: Callable[[], float] | None = None,
    position: Callable[[int], int] = lambda step: step,
    keep: tuple[str, ...] = (),
) -> LoopResult:
    """Train `model`'s parameters that require grad for `config.steps` steps (resuming if a checkpoint
    of the same run exists in `config.checkpoint_dir`)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    state = TrainingState()
    ckpt = config.checkpoint_dir
    if ckpt is not None and config.resume and has_checkpoint(ckpt):
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer, fingerprint=fingerprint)
    resumed_from = state.step
    progress = Progress(config.steps, initial=state.step, label=config.label, every=config.log_every)
    if resumed_from:
        progress.note(f"resumed from the checkpoint at step {resumed_from} ({ckpt})")

    def checkpoint() -> None:
        if ckpt is not None:
            state.position = position(state.step)
            save_checkpoint(ckpt, model=model, optimizer=optimizer, state=state, fingerprint=fingerprint, keep=keep)

    flag = {"stop": False}
    loss_value, val_loss, interrupted = float("nan"), None, False
    started = time.perf_counter()
    base_seconds = state.seconds
    model.train()
    with _stop_on_signals(flag):
        while state.step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state.step, config)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.autocast == "bf16"):
                loss, tokens = step_loss(state.step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for _, p in params], config.grad_clip)
            optimizer.step()
            state.step += 1
            state.tokens += tokens
            state.seconds = base_seconds + time.perf_counter() - started
            loss_value = float(loss.detach())
            val_loss = None
            if (
                validate is not None
                and config.eval_every
                and (state.step % config.eval_every == 0 or state.step == config.steps)
            ):
                model.eval()
                val_loss = float(validate())
                model.train()
            entry = {"step": state.step, "loss": loss_value}
            if val_loss is not None:
                entry["val_loss"] = val_loss
            if val_loss is not None or state.step % config.log_every == 0 or state.step == config.steps:
                state.history.append(entry)
            progress.update(state.step, loss=loss_value, tokens=tokens, val_loss=val_loss)
            stop_now = flag["stop"] or (config.stop_after is not None and state.step >= config.stop_after)
            periodic = config.checkpoint_every and state.step % config.checkpoint_every == 0
            if (periodic or stop_now) and state.step < config.steps:
                checkpoint()
            if stop_now and state.step < config.steps:
                interrupted = True
                progress.note(f"stopped at step {state.step}; checkpoint saved in {ckpt}. Rerun to resume.")
                break
    model.eval()
    vals = [h["val_loss"] for h in state.history if "val_loss" in h]
    return LoopResult(
        steps=state.step,
        train_loss=loss_value,
        val_loss=vals[-1] if vals else None,
        seconds=state.seconds,
        tokens=state.tokens,
        interrupted=interrupted,
        resumed_from=resumed_from,
        history=state.history,
    )
