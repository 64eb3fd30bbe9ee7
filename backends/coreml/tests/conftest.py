"""Shared fixtures: tiny random models (built once per session) and their conversions (cached per session)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("coremltools")
transformers = pytest.importorskip("transformers")

import tinylm  # noqa: E402
from tinylm.testing.fixtures import model_folder  # noqa: E402, F401 - pytest fixtures

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


@pytest.fixture(scope="session")
def converted(
    model_folder: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., tuple[Path, dict[str, Any]]]:
    """(variant, precision, **options) -> (artifact folder written by tinylm.convert, its metadata), cached."""
    done: dict[tuple[Any, ...], tuple[Path, dict[str, Any]]] = {}

    def get(variant: str, precision: str = "fp16", **options: Any) -> tuple[Path, dict[str, Any]]:
        key = (variant, precision, tuple(sorted(options.items())))
        if key not in done:
            out = tmp_path_factory.mktemp(f"{variant}-{precision}") / "artifact"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = tinylm.convert(
                    model_folder(variant), backend="coreml", out=out, precision=precision, **options
                )
            done[key] = folder, json.loads((folder / "tinylm-artifact.json").read_text())
        return done[key]

    return get
