"""Backend choice: argument > TINYLM_BACKEND > auto; typed errors listing the alternatives."""

from __future__ import annotations

import pytest

from tinylm.backend import Capabilities, KindPreference
from tinylm.errors import BackendUnavailable, CapabilityError, DeviceUnavailable, PrecisionUnsupported, UnknownBackend
from tinylm.plugins import PluginManager
from tinylm.selection import choose

from .fakes import BackendsPlugin, FakeBackend


@pytest.fixture
def manager(monkeypatch):
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    monkeypatch.delenv("TINYLM_DEVICE", raising=False)
    pm = PluginManager(autoload=False)
    pm.register(
        BackendsPlugin(
            FakeBackend("slow", priority=1),
            FakeBackend("fast", priority=5, device_list=["cpu", "gpu"]),
            FakeBackend("best", priority=9, ok=False),
            FakeBackend("enc", priority=20, kinds=("encoder",)),
        ),
        name="fakes",
    )
    return pm


def test_auto_picks_the_highest_priority_available_backend_for_the_kind(manager):
    assert choose(manager, kind="decoder").backend.name == "fast"  # "best" unavailable, "enc" encoder-only
    assert choose(manager, kind="encoder").backend.name == "enc"
    assert choose(manager, kind="decoder").reason == "auto"


def test_a_model_whose_layers_keep_another_state_needs_a_backend_that_declares_it(manager):
    """LFM2's conv layers keep a conv state beside the KV cache: a backend that keeps only the KV cache is refused
    by name (typed, naming the ones that can) and passed by in the automatic choice, never run silently wrong."""
    manager.register(BackendsPlugin(FakeBackend("hybrid", priority=2, states=("kv", "conv"))), name="hybrid")
    assert choose(manager, kind="decoder", states=("kv", "conv")).backend.name == "hybrid"  # "fast" keeps kv only
    assert choose(manager, kind="decoder", states=("kv",)).backend.name == "fast"
    with pytest.raises(CapabilityError, match=r"'fast' does not keep the per-layer conv state.*Fix: .*hybrid"):
        choose(manager, kind="decoder", backend="fast", states=("kv", "conv"))


def test_env_beats_auto(manager, monkeypatch):
    monkeypatch.setenv("TINYLM_BACKEND", "slow")
    choice = choose(manager, kind="decoder")
    assert choice.backend.name == "slow" and choice.reason == "TINYLM_BACKEND"


def test_argument_beats_env(manager, monkeypatch):
    monkeypatch.setenv("TINYLM_BACKEND", "slow")
    choice = choose(manager, kind="decoder", backend="fast")
    assert choice.backend.name == "fast" and choice.reason == "argument"


def test_unknown_backend_lists_the_registered_ones(manager):
    with pytest.raises(UnknownBackend) as err:
        choose(manager, kind="decoder", backend="nope")
    msg = str(err.value)
    assert "'nope'" in msg and all(n in msg for n in ("slow", "fast", "best", "enc")) and "Fix" in msg


def test_unavailable_backend_never_falls_back(manager, monkeypatch):
    monkeypatch.setenv("TINYLM_BACKEND", "best")
    with pytest.raises(BackendUnavailable) as err:
        choose(manager, kind="decoder")
    msg = str(err.value)
    assert "best-runtime is not installed" in msg and "pip install best-runtime" in msg
    assert "fast (available)" in msg  # the alternatives are listed
    assert msg.index("fast (available)") < msg.index("Fix: ") and msg.endswith("Fix: pip install best-runtime.")


def test_backend_that_cannot_run_the_kind(manager):
    with pytest.raises(CapabilityError, match="encoder"):
        choose(manager, kind="decoder", backend="enc")


def test_nothing_available(monkeypatch):
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    pm = PluginManager(autoload=False)
    pm.register(BackendsPlugin(FakeBackend("best", ok=False)), name="fakes")
    from tinylm.install import install_command

    with pytest.raises(BackendUnavailable) as err:
        choose(pm, kind="decoder")
    assert install_command("torch") in str(err.value)


def test_device_argument_env_and_default(manager, monkeypatch):
    assert choose(manager, kind="decoder", backend="fast").device == "cpu"
    monkeypatch.setenv("TINYLM_DEVICE", "GPU")
    assert choose(manager, kind="decoder", backend="fast").device == "gpu"
    assert choose(manager, kind="decoder", backend="fast", device="cpu").device == "cpu"
    with pytest.raises(DeviceUnavailable, match="present: cpu, gpu"):
        choose(manager, kind="decoder", backend="fast", device="npu")


def test_a_backends_default_device_spares_listing_every_device(manager, monkeypatch):
    fast = manager.backends()["fast"]
    monkeypatch.setattr(fast, "default_device", lambda: "gpu", raising=False)
    assert choose(manager, kind="decoder", backend="fast").device == "cpu"  # not declared: never probed
    monkeypatch.setattr(fast, "declares_default_device", True)
    monkeypatch.setattr(fast, "devices", lambda: pytest.fail("listed every device for a load that named none"))
    assert choose(manager, kind="decoder", backend="fast").device == "gpu"
    monkeypatch.undo()
    monkeypatch.setattr(fast, "declares_default_device", True)
    monkeypatch.setattr(
        fast, "default_device", lambda: pytest.fail("a named device is checked against the list"), raising=False
    )
    with pytest.raises(DeviceUnavailable, match="present: cpu, gpu"):
        choose(manager, kind="decoder", backend="fast", device="npu")


def test_precision(manager):
    assert choose(manager, kind="decoder", backend="fast").precision == "fp32"
    assert choose(manager, kind="decoder", backend="fast", precision="INT8").precision == "int8"
    with pytest.raises(PrecisionUnsupported, match="fp32, int8"):
        choose(manager, kind="decoder", backend="fast", precision="int4")


# per-kind automatic choice (Capabilities.auto, native_precisions) ------------------------------------------------

ENCODER_RULE = KindPreference(priority=30, precisions=("bf16", "int8", "fp32"), why="measured fastest")


@pytest.fixture
def tuned(manager):
    """ "tuned" ranks below "enc" in general (priority 2 < 20) but first for encoders, on a CPU with native bf16."""
    backend = FakeBackend(
        "tuned",
        priority=2,
        precisions=("fp32", "bf16", "int8"),
        auto={"encoder": ENCODER_RULE},
        native=["fp32", "int8", "bf16"],
    )
    manager.register(BackendsPlugin(backend), name="tuned")
    return backend


def test_the_encoder_rule_ranks_and_picks_the_precision_the_backend_declares(manager, tuned):
    choice = choose(manager, kind="encoder")
    assert (choice.backend.name, choice.precision, choice.candidates) == ("tuned", "bf16", ("bf16", "int8", "fp32"))
    assert choice.reason.startswith("auto (tuned ranks first for encoder models; measured fastest; native on cpu")
    decoder = choose(manager, kind="decoder")  # no rule for decoders: the general priority, the default precision
    assert (decoder.backend.name, decoder.precision, decoder.candidates, decoder.reason) == ("fast", "fp32", (), "auto")


def test_a_cpu_without_native_bf16_does_not_get_bf16(manager, tuned):
    tuned.native = ["fp32", "int8"]  # what such a CPU reports (OpenVINO: no BF16 in OPTIMIZATION_CAPABILITIES)
    choice = choose(manager, kind="encoder")
    assert (choice.precision, choice.candidates) == ("int8", ("int8", "fp32"))
    assert "bf16" not in choice.reason


def test_without_native_precisions_every_declared_precision_is_tried(manager):
    plain = FakeBackend("plain", priority=1, precisions=("fp32", "bf16", "int8"), auto={"encoder": ENCODER_RULE})
    manager.register(BackendsPlugin(plain), name="plain")
    assert choose(manager, kind="encoder").candidates == ("bf16", "int8", "fp32")


@pytest.mark.parametrize(
    ("named", "env", "precision", "expected"),
    [
        ("tuned", None, None, ("tuned", "fp32", "argument")),  # a named backend keeps its default precision
        (None, "tuned", None, ("tuned", "fp32", "TINYLM_BACKEND")),
        (None, None, "int8", ("tuned", "int8", "auto")),  # a named precision runs as named, unchecked
        ("enc", None, None, ("enc", "fp32", "argument")),
    ],
)
def test_explicit_choices_override_the_encoder_rule(manager, tuned, monkeypatch, named, env, precision, expected):
    if env:
        monkeypatch.setenv("TINYLM_BACKEND", env)
    choice = choose(manager, kind="encoder", backend=named, precision=precision)
    assert (choice.backend.name, choice.precision, choice.reason) == expected and choice.candidates == ()


def test_a_rule_must_name_precisions_the_backend_offers():
    with pytest.raises(TypeError, match="does not offer"):
        Capabilities(precisions=("fp32",), auto={"encoder": KindPreference(priority=1, precisions=("bf16", "fp32"))})
