"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

    <dir>/state.safetensors   model.*  (the module's state dict), optim.<i>.<key> (AdamW state), rng.torch
    <dir>/state.json          step, data position, optimizer hyper-parameters, run fingerprint, history
    <dir>/...                 files the run stores beside it (e.g. the tokenizer it trained)

Written atomically: a new checkpoint goes to `<dir>.tmp` and replaces `<dir>` with renames, so an
interruption while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

__all__ = ["TrainingState", "save_checkpoint", "load_checkpoint", "has_checkpoint"]

STATE, META = "state.safetensors", "state.json"


@dataclass(kw_only=True)
class TrainingState:
    """What a resumed run needs besides the model and optimizer objects."""

    step: int = 0
    position: int = 0
    tokens: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def has_checkpoint(folder: Path) -> bool:
    return (folder / META).is_file() and (folder / STATE).is_file()


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    fingerprint: dict[str, Any],
    keep: tuple[str, ...] = (),
) -> None:
    """Write the checkpoint; files/folders named in `keep` are carried over from the previous one."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in keep:
        src = folder / name
        if src.is_dir():
            shutil.copytree(src, tmp / name)
        elif src.is_file():
            shutil.copy2(src, tmp / name)
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / STATE))
    meta = {
        "step": state.step,
        "position": state.position,
        "tokens": state.tokens,
        "seconds": state.seconds,
        "history": state.history,
        "fingerprint": fingerprint,
        "optimizer": opt_meta,
    }
    (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


# run settings that may change between a checkpoint and its resumption
_NOT_IDENTITY = frozenset(
    {"resume", "stop_after", "keep_checkpoint", "threads", "overwrite", "checkpoint_dir", "log_every"}
    | {"checkpoint_every", "eval_every", "command", "steps", "autocast"}
)


def comparable(value: Any) -> Any:
    """`value` (run settings) without the settings that may change on resume; paths as strings."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in _NOT_IDENTITY}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def load_checkpoint(
    folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fingerprint: dict[str, Any]
) -> TrainingState:
    """Restore model, optimizer and RNG from `folder`; `CheckpointError` if it belongs to another run."""
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE))
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{folder}: the checkpoint is unreadable ({e}). Fix: delete {folder} to start over."
        ) from None
    saved = comparable(meta.get("fingerprint", {}))  # older checkpoints may carry since-dropped keys
    current = json.loads(json.dumps(fingerprint))
    defaults = json.loads(json.dumps(getattr(fingerprint, "defaults", {})))
    for key, value in current.items():  # settings added since the checkpoint was written, left at their default
        if key not in saved and key in defaults and value == defaults[key]:
            saved[key] = value
    if saved != current:
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise CheckpointError(
            f"{folder} holds a checkpoint of a different run (changed: {', '.join(changed)}). "
            f"Fix: rerun with the original options to resume, or delete {folder} (or pass --no-resume) to start over."
        )
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    opt = meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in opt["scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return TrainingState(
        step=int(meta["step"]),
        position=int(meta["position"]),
        tokens=int(meta["tokens"]),
        seconds=float(meta["seconds"]),
        history=list(meta["history"]),
    )
