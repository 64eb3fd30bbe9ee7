"""Shared fixtures: tiny random models built once per session, and a small trained model (int8/int4
quality needs trained weights: random ones have no margins). The artifact cache is the repository conftest's."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("openvino")
pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.fixtures import model_folder, trained_model  # noqa: E402, F401 - pytest fixtures

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", message=".*near-tie.*")
