"""TINYLM_* settings are validated with typed errors."""

from __future__ import annotations

import pytest

from tinylm import settings
from tinylm.errors import ConfigError


def test_num_threads(monkeypatch):
    monkeypatch.delenv("TINYLM_NUM_THREADS", raising=False)
    assert settings.num_threads() == settings.physical_cores() >= 1
    monkeypatch.setenv("TINYLM_NUM_THREADS", "3")
    assert settings.num_threads() == 3
    for bad in ("0", "-1", "many"):
        monkeypatch.setenv("TINYLM_NUM_THREADS", bad)
        with pytest.raises(ConfigError, match="TINYLM_NUM_THREADS"):
            settings.num_threads()


def test_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLM_HOME", str(tmp_path))
    assert settings.home() == tmp_path
    monkeypatch.delenv("TINYLM_HOME")
    assert settings.home().name == "tinylm"
