"""Tiny random models and input files for the batch tests (torch backend, nothing downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip(
    "tinylm_torch", reason="the batch tests run models on the torch backend (pip install -e backends/torch)"
)
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("batch-models")
    return {"decoder": build_model("smollm", root / "dec"), "encoder": build_model("bert", root / "enc")}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prompts(n: int) -> list[dict]:
    """n generate rows: ids default to line numbers for even rows, named ids for odd ones."""
    return [
        {"prompt": f"Ticket {i}: my parcel is late"} if i % 2 == 0 else {"id": f"t{i}", "prompt": f"Hi {i}"}
        for i in range(n)
    ]


def chats(n: int) -> list[dict]:
    return [{"id": i, "messages": [{"role": "user", "content": f"Where is order {i}?"}]} for i in range(n)]


def texts(n: int) -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"refund request number {i} " * (1 + i % 5)} for i in range(n)]
