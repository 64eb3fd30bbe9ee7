"""The conformance suite needs torch and transformers (the test extra) to build tiny random models
and to compute the reference; the backend itself never imports them."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.fixtures import tinylm_home  # noqa: E402, F401 - pytest fixture: a throwaway TINYLM_HOME

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", message=".*near-tie.*")
