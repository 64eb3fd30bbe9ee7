"""Shared fixtures: tiny random models built once per session, and the transformers reference."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.models import build_model  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


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
def reference() -> Callable[[Path], object]:
    """folder -> the transformers model (fp32, eval), cached."""
    cache: dict[Path, object] = {}

    def get(folder: Path) -> object:
        if folder not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config = transformers.AutoConfig.from_pretrained(folder)
                cls = transformers.BertModel if config.model_type == "bert" else transformers.AutoModelForCausalLM
                cache[folder] = cls.from_pretrained(folder).eval()
        return cache[folder]

    return get
