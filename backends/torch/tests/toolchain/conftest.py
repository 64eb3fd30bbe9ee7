"""Helpers for the toolchain tests: tiny data written in the test, and the backends to check outputs on."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import tinylm
from tinylm.plugins import get_manager

WORDS = "the cat sat on a mat and dog ran to big red house with small blue door my parcel never arrived".split()


def write_text_jsonl(path: Path, n: int = 200, *, seed: int = 0, words: int = 24) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            f.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(words))}) + "\n")
    return path


def write_chat_jsonl(path: Path, n: int = 40, *, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            q = " ".join(rng.choice(WORDS) for _ in range(8))
            a = " ".join(rng.choice(WORDS) for _ in range(10))
            messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


def output_backends() -> list[str]:
    """torch, plus onnx where its backend is installed and available (the toolchain's outputs must run there)."""
    found = ["torch"]
    backend = get_manager().backends().get("onnx")
    if backend is not None and backend.availability().ok:
        found.append("onnx")
    return found


@pytest.fixture
def tiny_text(tmp_path: Path) -> Path:
    return write_text_jsonl(tmp_path / "text.jsonl")


def assert_runs_everywhere(folder: Path, *, probe: str = "my parcel never arrived") -> dict[str, np.ndarray]:
    """Load `folder` on every output backend; decoders' logits and encoders' embeddings agree with torch."""
    outputs: dict[str, np.ndarray] = {}
    for backend in output_backends():
        with tinylm.load(folder, backend=backend) as m:
            if m.spec.kind == "decoder":
                outputs[backend] = m.logits(m.tokenizer.encode(probe))
                done = m.generate(probe, max_new_tokens=4, ignore_eos=True)
                assert len(done.token_ids) == 4 and done.text == m.tokenizer.decode(done.token_ids)
            else:
                outputs[backend] = m.embed([probe, "x"])
    for backend, value in outputs.items():
        np.testing.assert_allclose(value, outputs["torch"], atol=2e-4, rtol=1e-4, err_msg=backend)
    return outputs
