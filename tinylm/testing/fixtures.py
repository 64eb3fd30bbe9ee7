"""Pytest fixtures a backend's test suite imports into its conftest.py:

    from tinylm.testing.fixtures import model_folder, tinylm_home, trained_model  # noqa: F401

- `tinylm_home` (session, autouse): artifacts go to a fresh cache, never the user's ~/.cache/tinylm.
- `model_folder` (session): variant -> the tiny random model of `tinylm.testing.models.VARIANTS`,
  built once per session (treat as read-only).
- `trained_model` (session): (folder, 20 prompts) of a small trained decoder, for int8/int4 quality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .models import build_model, train_tiny_decoder

__all__ = ["tinylm_home", "model_folder", "trained_model"]


@pytest.fixture(scope="session", autouse=True)
def tinylm_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Artifacts go to a fresh cache for the session, never the user's ~/.cache/tinylm."""
    home = tmp_path_factory.mktemp("tinylm-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYLM_HOME", str(home))
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """variant -> folder of that tiny random model (built once per test session; treat as read-only)."""
    built: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in built:
            built[variant] = build_model(variant, tmp_path_factory.mktemp(variant), seed=0)
        return built[variant]

    return get


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    """(folder, 20 prompts as token ids): a 2-layer llama trained for a few hundred Adam steps (~15 s)."""
    folder = tmp_path_factory.mktemp("trained-llama")
    return folder, train_tiny_decoder(folder)
