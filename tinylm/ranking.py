"""The saved `tinylm bench` ranking: one record per machine and model folder under `TINYLM_HOME/bench/`.

`tinylm bench` writes it (`save`); with `TINYLM_AUTO_BENCH=1` the automatic backend choice reads it
(`saved_ranking`). A small module of its own so that loading a model never imports the bench command.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import settings

__all__ = ["save", "saved_ranking", "ranking_path"]


def _machine_key() -> str:
    text = f"{platform.node()}|{settings.cpu_name()}|{settings.physical_cores()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_key(model: str) -> str:
    from .artifacts import folder_digest
    from .plugins import get_manager
    from .resolve import resolve_model

    return folder_digest(resolve_model(model, get_manager()))[:32]


def ranking_path(model: str) -> Path:
    """Where the latest bench of `model` on this machine is saved."""
    return settings.home() / "bench" / _machine_key() / f"{_model_key(model)}.json"


def save(model: str, rows: Sequence[dict[str, Any]], bandwidth: float) -> Path:
    """Save a bench's rows (dicts of `tinylm.bench.BenchResult` fields) for `model`, atomically."""
    path = ranking_path(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": model, "time": time.time(), "bandwidth_gbs": bandwidth, "rows": list(rows)}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    return path


def saved_ranking(folder: Path) -> list[tuple[str, str]]:
    """(backend, precision) pairs of the latest saved bench for this machine and model folder, fastest
    decode first; [] when there is none."""
    try:
        data = json.loads(ranking_path(str(folder)).read_text())
    except (OSError, ValueError):
        return []
    rows = [r for r in data.get("rows", []) if r.get("decode_tps") or r.get("sentences_per_s_32")]
    rows.sort(key=lambda r: -(r.get("decode_tps") or r.get("sentences_per_s_32") or 0))
    return [(r["backend"], r["precision"]) for r in rows]
