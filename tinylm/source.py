"""A model folder in Hugging Face layout, read into what the core and backends need.

config.json                         -> ModelSpec (through the family)
model.safetensors (or shards)       -> canonical weights (validated against the spec)
tokenizer.json, tokenizer_config.json, chat_template.jinja -> Tokenizer
generation_config.json              -> default sampling settings and stop tokens
modules.json, 1_Pooling/, sentence_bert_config.json -> pooling, normalisation, max length
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import threading
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .arch import check_weights, family_for
from .arch.bounds import check_bounds
from .arch.config_types import check_config_types
from .arch.spec import ModelSpec, PoolingSpec
from .artifacts import read_marker
from .compressed import Int8Storage, int8_storage
from .errors import ModelFileError, WeightsError
from .tokenizer import Tokenizer
from .weights import CheckpointWeights, weight_files

__all__ = ["ModelFolder"]


def _regular(path: Path) -> bool:
    """Whether `path` is a regular file (following links): False when absent; `ModelFileError` when it is
    something else (a directory, a FIFO, a device, a symlink loop), which tinylm never opens."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as e:
        raise ModelFileError(
            f"{path}: cannot be read ({e.strerror}). Fix: replace it with the file itself "
            "(a symlink must point at an existing file, not at itself)."
        ) from None
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"{path}: not a regular file (a directory, a FIFO or a device); tinylm opens only regular files. "
            "Fix: replace it with the file itself."
        )
    return True


def _json(path: Path, *, required: bool = False) -> dict[str, Any]:
    if not _regular(path):
        if required:
            raise ModelFileError(
                f"{path.parent}: no {path.name}. Fix: point tinylm at a model folder in Hugging Face layout "
                "(config.json, model.safetensors, tokenizer.json)."
            )
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{path}: not valid JSON ({e}). Fix: download or regenerate this file.") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object. Fix: download or regenerate this file.")
    return data


def _pooling(folder: Path) -> tuple[PoolingSpec, int | None]:
    """Pooling and max length from the sentence-transformers files (mean + normalize by default)."""
    mode, normalize = "mean", True
    modules = folder / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{modules}: not valid JSON ({e}). Fix: download it again.") from None
        normalize = any(str(m.get("type", "")).endswith("Normalize") for m in entries)
        for m in entries:
            if str(m.get("type", "")).endswith("Pooling"):
                cfg = _json(folder / m.get("path", "1_Pooling") / "config.json")
                for key, value in (
                    ("pooling_mode_cls_token", "cls"),
                    ("pooling_mode_max_tokens", "max"),
                    ("pooling_mode_lasttoken", "last"),
                    ("pooling_mode_mean_tokens", "mean"),
                ):
                    if cfg.get(key):
                        mode = value
                        break
    max_len = _json(folder / "sentence_bert_config.json").get("max_seq_length")
    return PoolingSpec(mode=mode, normalize=normalize), (int(max_len) if max_len else None)


def _entries(folder: Path) -> list[Path]:
    """The folder's entries and those of its direct subfolders (the only depths tinylm reads files from,
    e.g. `1_Pooling/config.json`); symlinked subfolders are not entered."""
    found: list[Path] = []
    try:
        with os.scandir(folder) as top:
            for entry in top:
                found.append(Path(entry.path))
                if entry.is_dir(follow_symlinks=False):
                    with os.scandir(entry.path) as sub:
                        found.extend(Path(e.path) for e in sub)
    except OSError as e:
        raise ModelFileError(f"{folder}: cannot list the folder ({e.strerror}). Fix: check its permissions.") from None
    return found


def check_links(folder: Path) -> None:
    """Refuse symlinks inside a model folder that point outside it, or nowhere (a loop).

    The one exception is the Hugging Face cache layout, where `snapshots/<rev>/file` links to the
    same repository's `blobs/`. Only the folder and its direct subfolders are looked at: tinylm reads
    no file deeper, so a folder that is not a model (`~`, `/`) costs one listing, not a walk.
    """
    root = folder.resolve()
    allowed = [root]
    if folder.parent.name == "snapshots":
        allowed.append((folder.parent.parent / "blobs").resolve())
    for entry in _entries(folder):
        if not entry.is_symlink():
            continue
        try:
            target = entry.resolve(strict=True)
        except FileNotFoundError:
            continue  # dangling: reported as a missing file where the file is needed
        except (OSError, RuntimeError) as e:  # a loop: RuntimeError before Python 3.13, OSError (ELOOP) after
            raise ModelFileError(
                f"{entry} is a symlink that cannot be followed ({e}). Fix: replace it with the file itself."
            ) from None
        if not any(target == a or a in target.parents for a in allowed):
            raise ModelFileError(
                f"{entry} is a symlink to {target}, outside the model folder; tinylm refuses to follow it. "
                "Fix: copy the file into the folder (or remove the link) if you trust it."
            )


def check_finite(weights: dict[str, np.ndarray], *, where: str) -> None:
    """Raise `WeightsError` naming the first tensor holding NaN or infinity."""
    for name, w in weights.items():
        if w.dtype.kind == "f" and not np.isfinite(w.sum()) and not np.isfinite(w).all():
            bad = int((~np.isfinite(w)).sum())
            raise WeightsError(
                f"{where}: tensor {name} holds {bad} NaN or infinite value(s). "
                "Fix: the checkpoint is corrupted or was saved after a diverged training step; use another one."
            )


class ModelFolder:
    """One model on disk. Cheap to create: weights and tokenizer load on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not _regular(path / "config.json"):  # first, reading nothing: a folder that is no model ends here
            _json(path / "config.json", required=True)
        check_links(path)  # before reading config.json, which may be a link out of the folder
        self.config = _json(path / "config.json", required=True)
        self.family = family_for(self.config, where=str(path / "config.json"))
        wrong = check_config_types(self.config)
        if wrong:
            raise ModelFileError(
                f"{path / 'config.json'}: {wrong}. Fix: use the config.json the checkpoint was saved with."
            )
        try:
            spec: ModelSpec = self.family.from_config(self.config)
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ModelFileError(
                f"{path / 'config.json'}: cannot describe this {self.family.name} model ({type(e).__name__}: {e}). "
                "Fix: use the config.json the checkpoint was saved with."
            ) from None
        #: Whether the weights are stored as int8 (compressed-tensors), widened to float32 on read.
        self.int8_storage = int8_storage(self.config, where=str(path / "config.json"))
        self.generation_config = _json(path / "generation_config.json")
        #: The metadata of a folder written by `tinylm.convert` (its backend and precision), else None.
        self.artifact: dict[str, Any] | None = read_marker(path)
        self.max_seq_length: int | None = None
        if spec.kind == "encoder":
            pooling, self.max_seq_length = _pooling(path)
            spec = dataclasses.replace(spec, pooling=pooling)
        check_bounds(spec, where=str(path / "config.json"))
        self.spec = spec
        self._lock = threading.Lock()

    @cached_property
    def tokenizer(self) -> Tokenizer:
        limit = self.max_seq_length or self.spec.max_positions
        return Tokenizer(self.path, max_length=limit)

    def check(self) -> None:
        """What `tinylm.load` checks before choosing a backend, beyond the config: the tokenizer parses
        (a broken tokenizer.json fails at load, not at the first generate)."""
        self.tokenizer  # noqa: B018 (parsing is the check)

    def weights(self) -> dict[str, np.ndarray]:
        """Canonical weights, memory-mapped where the file allows; validated against the spec."""
        with self._lock:
            raw: Mapping[str, np.ndarray] = CheckpointWeights(weight_files(self.path))
            if self.int8_storage:
                raw = Int8Storage(raw, where=str(self.path))
            weights = self.family.sanitize(raw, self.spec)
            check_weights(self.spec, weights, where=str(self.path))
            check_finite(weights, where=str(self.path))
            return weights

    def stop_token_ids(self) -> tuple[int, ...]:
        """End-of-sequence ids from generation_config.json, config.json and the tokenizer."""
        ids: list[int] = []
        gen = self.generation_config.get("eos_token_id")
        ids.extend([gen] if isinstance(gen, int) else list(gen or []))
        ids.extend(self.spec.eos_token_ids)
        tok_eos = self.tokenizer.eos_token_id
        if tok_eos is not None:
            ids.append(tok_eos)
        return tuple(dict.fromkeys(int(i) for i in ids))
