"""Shared fixtures: tiny random models built once per session, and the transformers reference."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.fixtures import model_folder  # noqa: E402, F401 - pytest fixtures

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


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
