"""LFM2 (gated short convolutions beside attention) on every backend that keeps conv states, against transformers.

Random `Lfm2Config` models (tinylm.testing.models: `lfm2` and `lfm2-k4` vary the hidden size, head_dim, GQA ratio,
the kernel (3, 4), which layers attend, tying and conv biases), fp32:
- teacher-forced logits over 48 tokens within 1e-4 of transformers;
- greedy decoding through the session's state (prefill, then one token at a time) gives transformers' `generate`
  tokens (which runs transformers' own conv-state cache);
- prefills shorter than the conv state (1 and 2 tokens for kernel 4), then decode, and `reset()` between
  sequences: a state left from the previous sequence would change the logits of the next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinylm
from tinylm.plugins import get_manager
from tinylm.testing.models import build_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BACKENDS = ("torch", "onnx", "openvino")
VARIANTS = ("lfm2", "lfm2-k4")
N = 48  # teacher-forced tokens
NEW = 24  # greedy tokens
ATOL = 1e-4


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lfm2")
    return {v: build_model(v, root / v, seed=0) for v in VARIANTS}


def _need(backend: str) -> None:
    manager = get_manager()
    found = manager.backends().get(backend)
    if found is None or not manager.availability(found).ok:
        pytest.skip(f"backend {backend} is not available here")


def _reference(folder: Path) -> transformers.PreTrainedModel:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # generate exactly NEW tokens
    return model


def _ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 400, size=n).astype(np.int64)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_teacher_forced_logits_match_transformers(backend: str, variant: str, folders: dict[str, Path]) -> None:
    _need(backend)
    ids = _ids(N, 0)
    with torch.no_grad():
        want = _reference(folders[variant])(torch.from_numpy(ids[None])).logits[0].numpy()  # (N, V)
    with tinylm.load(folders[variant], backend=backend, precision="fp32") as model:
        ours = model.logits(ids)
    diff = float(np.abs(ours - want).max())
    assert diff <= ATOL, f"{backend}/{variant}: max |logits - transformers| = {diff:.3g}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_greedy_with_the_state_matches_transformers_generate(
    backend: str, variant: str, folders: dict[str, Path]
) -> None:
    _need(backend)
    prompt = _ids(8, 1)
    with torch.no_grad():
        out = _reference(folders[variant]).generate(
            torch.from_numpy(prompt[None]), max_new_tokens=NEW, do_sample=False, pad_token_id=0
        )
    want = out[0, len(prompt) :].tolist()
    with tinylm.load(folders[variant], backend=backend, precision="fp32") as model:
        ours = list(model.generate(prompt.tolist(), max_new_tokens=NEW, ignore_eos=True).token_ids)
    assert ours == want, f"{backend}/{variant}: {ours} vs transformers {want}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_short_prefills_then_decode_and_reset(backend: str, folders: dict[str, Path]) -> None:
    """Kernel 4 keeps 3 inputs: prefills of 1 and 2 tokens leave a partly zero state, 5 a full one; each sequence
    after a reset must see zeros before its first token, not the previous sequence's inputs."""
    _need(backend)
    ids = _ids(12, 2)
    with torch.no_grad():
        want = _reference(folders["lfm2-k4"])(torch.from_numpy(ids[None])).logits[0].numpy()  # (12, V)
    with tinylm.load(folders["lfm2-k4"], backend=backend, precision="fp32") as model:
        session = model._live()
        for first in (5, 1, 2):
            session.reset()
            rows = list(session.forward(ids[None, :first], all_positions=True)[0])
            rows += [session.forward(ids[None, t : t + 1])[0] for t in range(first, len(ids))]
            diff = float(np.abs(np.stack(rows) - want).max())
            assert diff <= ATOL, f"{backend}: prefill of {first} then decode: max diff {diff:.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_calls_run_the_rows_one_after_another(backend: str, folders: dict[str, Path]) -> None:
    """Rows on torch/onnx/openvino keep KV caches only (`Capabilities.row_states`): LFM2's batched calls run
    its rows one after another on the single session, with the tokens each prompt gives alone; the backend's
    rows session itself refuses the model with a typed error instead of mixing rows' conv states."""
    _need(backend)
    from tinylm.testing.row_check import open_rows

    with tinylm.load(folders["lfm2"], backend=backend) as model:
        assert not model.batches_rows
        prompts = [[int(t) for t in _ids(n, seed)] for seed, n in enumerate((5, 17, 2))]
        batched = model.generate_batch(prompts, max_new_tokens=6, ignore_eos=True)
        alone = [model.generate(p, max_new_tokens=6, ignore_eos=True) for p in prompts]
        assert [b.token_ids for b in batched] == [a.token_ids for a in alone]
        with pytest.raises(tinylm.CapabilityError, match=r"conv.*Fix:"):
            open_rows(model, 2).add_rows([_ids(4, 1)])
