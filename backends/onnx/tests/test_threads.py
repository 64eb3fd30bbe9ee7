"""The ONNX Runtime thread pools: by default a decoder's threads spin-wait between runs (its steps come back to
back) and an encoder's block as soon as a run ends (an embedding is one run, and a spinning pool would hold a core
through whatever the process runs next: the answer's prefill after a query's embedding); `spin_wait` sets it."""

from __future__ import annotations

import pytest

import tinylm


def _spinning_stops(model: tinylm.Model) -> str:
    options = model._live()._sess.get_session_options()
    return options.get_session_config_entry("session.force_spinning_stop")


@pytest.mark.parametrize("compiled_cache", [True, False])
@pytest.mark.parametrize(("variant", "stops"), [("llama", "0"), ("bert", "1")])
def test_decoders_spin_between_runs_and_encoders_block(model_folder, variant, stops, compiled_cache):
    model = tinylm.load(model_folder(variant), backend="onnx", compiled_cache=compiled_cache, parity=False)
    assert _spinning_stops(model) == stops


@pytest.mark.parametrize(("variant", "spin_wait", "stops"), [("llama", False, "1"), ("bert", True, "0")])
def test_spin_wait_sets_it_for_any_model_and_shares_the_artifact(model_folder, variant, spin_wait, stops):
    default = tinylm.load(model_folder(variant), backend="onnx", parity=False)
    chosen = tinylm.load(model_folder(variant), backend="onnx", parity=False, spin_wait=spin_wait)
    assert _spinning_stops(chosen) == stops
    assert chosen.artifact == default.artifact  # how it is opened, not what it holds


def test_spin_wait_must_be_a_bool(model_folder):
    with pytest.raises(tinylm.ConfigError, match=r"spin_wait='no'.*Fix"):
        tinylm.load(model_folder("llama"), backend="onnx", spin_wait="no")
