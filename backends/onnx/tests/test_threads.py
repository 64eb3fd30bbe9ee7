"""The ONNX Runtime thread pools: by default every model's threads block as soon as a run ends (a spinning pool
holds a core through whatever the process runs next: a server's event loop and batch thread between steps, the
answer's prefill after a query's embedding); `spin_wait=True` makes them spin-wait for the next run."""

from __future__ import annotations

import pytest

import tinylm


def _spinning_stops(model: tinylm.Model) -> str:
    options = model._live()._sess.get_session_options()
    return options.get_session_config_entry("session.force_spinning_stop")


@pytest.mark.parametrize("compiled_cache", [True, False])
@pytest.mark.parametrize("variant", ["llama", "bert"])
def test_pools_block_between_runs_by_default(model_folder, variant, compiled_cache):
    model = tinylm.load(model_folder(variant), backend="onnx", compiled_cache=compiled_cache, parity=False)
    assert _spinning_stops(model) == "1"


@pytest.mark.parametrize(("variant", "spin_wait", "stops"), [("llama", True, "0"), ("bert", True, "0")])
def test_spin_wait_sets_it_for_any_model_and_shares_the_artifact(model_folder, variant, spin_wait, stops):
    default = tinylm.load(model_folder(variant), backend="onnx", parity=False)
    chosen = tinylm.load(model_folder(variant), backend="onnx", parity=False, spin_wait=spin_wait)
    assert _spinning_stops(chosen) == stops
    assert chosen.artifact == default.artifact  # how it is opened, not what it holds


def test_spin_wait_must_be_a_bool(model_folder):
    with pytest.raises(tinylm.ConfigError, match=r"spin_wait='no'.*Fix"):
        tinylm.load(model_folder("llama"), backend="onnx", spin_wait="no")
