"""The lowered MIL program evaluated numerically on any OS (coremltools' numpy value inference, see
tinylm_coreml/evaluate.py), against transformers in float32: logits at every position, prefill + decode
through the cache layout of each variant (states, or cache inputs/outputs), sliding windows, embeddings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinylm.arch.rope import switch_length
from tinylm.source import ModelFolder
from tinylm.testing.models import DECODER_VARIANTS, ENCODER_VARIANTS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm_coreml.evaluate import Evaluator  # noqa: E402

ATOL = 1e-4  # float32 evaluation: the lowering itself, before fp16 (measured ~1e-5 on every family)
FAST = (
    "llama",
    "mistral",
    "mistral-window5",
    "qwen3",
    "phi3-partial-rotary",
    "phi3-longrope",
    "gemma",
    "gpt2",
    "granite",
    "olmo2",
    "smollm3",
    "gemma2",
    "gemma3",
    "gemma3-multimodal",
    "lfm2",
    "lfm2-k4",
)


def _reference_logits(folder: Path, ids: np.ndarray) -> np.ndarray:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.from_numpy(ids[None])).logits[0].numpy()  # (T, V)


def _check_decoder(folder: Path, stateful: bool) -> None:
    model = ModelFolder(folder)
    ids = np.random.default_rng(0).integers(3, 400, size=20).astype(np.int64)  # > mistral's window of 16
    ev = Evaluator(model.spec, model.weights(), capacity=model.spec.max_positions, stateful=stateful)
    switch = switch_length(model.spec.rope)  # longrope: 16 for phi3-longrope, crossed while decoding
    prefill = ev.forward(ids[:12])  # (12, V)
    decode = []
    for t in range(12, 20):
        if ev.length == switch:  # what tinylm.rope_switch does on the crossing call: run it all again
            ev.reset()
            decode.append(ev.forward(ids[: t + 1])[-1])
        else:
            decode.append(ev.forward(ids[t : t + 1])[0])
    ours = np.concatenate([prefill, np.stack(decode)])
    if switch is None:
        want = _reference_logits(folder, ids)
    else:  # each position as transformers computes it over the sequence so far
        want = np.concatenate(
            [_reference_logits(folder, ids[:12])]
            + [_reference_logits(folder, ids[: t + 1])[-1:] for t in range(12, 20)]
        )
    diff = float(np.abs(ours - want).max())
    assert ev.length == 20 and diff <= ATOL, f"max |logits - transformers| = {diff:.3g}"


# Models with conv layers (LFM2) have only the stateful layout: their conv state is a Core ML state.
CONV_VARIANTS = ("lfm2", "lfm2-k4")


# The fast suite: every FAST variant with Core ML states, and the cache-as-inputs/outputs layout on
# llama and mistral (sliding window); every variant in both layouts runs in the slow suite below.
FAST_CASES = [(v, True) for v in FAST] + [(v, False) for v in ("llama", "mistral") if v in FAST]


@pytest.mark.parametrize(
    ("variant", "stateful"), FAST_CASES, ids=[f"{v}-{'states' if s else 'cache-io'}" for v, s in FAST_CASES]
)
def test_decoder_program_matches_transformers(
    variant: str, stateful: bool, model_folder: Callable[[str], Path]
) -> None:
    _check_decoder(model_folder(variant), stateful)


@pytest.mark.slow
@pytest.mark.parametrize("stateful", [True, False], ids=["states", "cache-io"])
@pytest.mark.parametrize("variant", DECODER_VARIANTS)
def test_every_decoder_variant_matches_transformers(
    variant: str, stateful: bool, model_folder: Callable[[str], Path]
) -> None:
    if variant in CONV_VARIANTS and not stateful:
        pytest.skip("conv layers keep their state only as a Core ML state (test_conv_state_needs_states)")
    _check_decoder(model_folder(variant), stateful)


def test_conv_state_is_fresh_at_position_zero_and_follows_the_sequence(model_folder: Callable[[str], Path]) -> None:
    """The conv state after a prefill holds the last kernel - 1 inputs: decoding token by token after prefills of 1
    and 2 tokens (shorter than the state), and after a reset (the program reads zeros at position 0 whatever the
    state holds), gives transformers' logits."""
    folder = model_folder("lfm2-k4")  # kernel 4: a state of 3 inputs
    model = ModelFolder(folder)
    ids = np.random.default_rng(3).integers(3, 400, size=8).astype(np.int64)
    want = _reference_logits(folder, ids)
    ev = Evaluator(model.spec, model.weights(), capacity=64, stateful=True)
    for first in (1, 2):
        ev.reset()
        ours = [ev.forward(ids[:first])]
        ours += [ev.forward(ids[t : t + 1]) for t in range(first, len(ids))]
        diff = float(np.abs(np.concatenate(ours) - want).max())
        assert diff <= ATOL, f"prefill {first}: max |logits - transformers| = {diff:.3g}"
        assert np.abs(ev.conv.array).max() > 0  # the state is really used (reset() leaves it as it is)


def test_conv_state_needs_states(model_folder: Callable[[str], Path]) -> None:
    from tinylm.errors import CapabilityError

    model = ModelFolder(model_folder("lfm2"))
    with pytest.raises(CapabilityError, match="stateful=True"):
        Evaluator(model.spec, model.weights(), capacity=64, stateful=False)


@pytest.mark.parametrize("variant", ENCODER_VARIANTS)
def test_encoder_program_matches_transformers(variant: str, model_folder: Callable[[str], Path]) -> None:
    folder = model_folder(variant)
    model = ModelFolder(folder)
    # 44 tokens: past the local windows of the ModernBERT variants (16 and 10 wide)
    ids = np.random.default_rng(0).integers(5, 300, size=(2, 44)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 23:] = 0  # a padded row: padding must not leak into the real tokens
    types = np.zeros_like(ids)
    if model.spec.type_vocab_size > 1:
        types[:, 5:] = 1
    ours = Evaluator(model.spec, model.weights(), capacity=model.spec.max_positions).embed(ids, mask, types)
    ref = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    extra = {"token_type_ids": torch.from_numpy(types)} if model.spec.type_vocab_size else {}
    with torch.no_grad():
        want = ref(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **extra
        ).last_hidden_state.numpy()
    diff = float(np.abs(ours - want)[mask.astype(bool)].max())
    assert diff <= ATOL, f"max |hidden - transformers| = {diff:.3g}"
