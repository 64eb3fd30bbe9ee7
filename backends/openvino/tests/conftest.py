"""Shared fixtures: an isolated artifact cache, tiny random models built once per session, and a small
trained model (int8/int4 quality needs trained weights: random ones have no margins)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.models import build_model  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", message=".*near-tie.*")


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


# The same recipe as backends/onnx/tests/conftest.py (a conftest cannot be imported across packages; both
# belong in tinylm.testing.models): a 2-layer llama trained on a small grammar for a few hundred Adam steps.
# a small trained model (int8/int4 quality needs trained weights: random ones have no margins) ------------


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    """(folder, 20 prompts as token ids): a 2-layer llama trained for a few hundred Adam steps (~15 s)."""
    from tinylm.testing.models import train_tiny_decoder

    folder = tmp_path_factory.mktemp("trained-llama")
    return folder, train_tiny_decoder(folder)
