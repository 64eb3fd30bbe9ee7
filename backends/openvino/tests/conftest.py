"""Shared fixtures: an isolated artifact cache, tiny random models built once per session, and a small
trained model (int8/int4 quality needs trained weights: random ones have no margins)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tinylm.testing.models import build_model  # noqa: E402

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", message=".*near-tie.*")


@pytest.fixture(scope="session", autouse=True)
def tinylm_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Artifacts go to a fresh cache for the session, never the user's ~/.cache/tinylm."""
    home = tmp_path_factory.mktemp("tinylm-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYLM_HOME", str(home))
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """variant -> folder of that tiny random model (built once per test session; treat as read-only)."""
    built: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in built:
            built[variant] = build_model(variant, tmp_path_factory.mktemp(variant), seed=0)
        return built[variant]

    return get


# The same recipe as backends/onnx/tests/conftest.py (a conftest cannot be imported across packages; both
# belong in tinylm.testing.models): a 2-layer llama trained on a small grammar for a few hundred Adam steps.
TRAIN_STEPS = 300


def _corpus() -> str:
    import random

    rng = random.Random(0)
    who = ["the cat", "a dog", "my friend", "the old man", "our teacher", "the baker"]
    did = ["walked to", "looked at", "painted", "talked about", "ran past", "waited near"]
    what = ["the river", "a small house", "the green park", "the harbour", "a red boat", "the market"]
    when = ["in the morning", "after lunch", "before the rain", "at night", "on sunday"]
    return " ".join(f"{rng.choice(who)} {rng.choice(did)} {rng.choice(what)} {rng.choice(when)}." for _ in range(400))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    """(folder, 20 prompts as token ids) of the trained llama (~15 s to train on 2 cores)."""
    import torch

    from tinylm.testing.models import write_decoder_tokenizer
    from tinylm.tokenizer import Tokenizer

    folder = tmp_path_factory.mktemp("trained-llama")
    special = write_decoder_tokenizer(folder, 256)
    ids = torch.tensor(Tokenizer(folder).encode(_corpus(), add_special_tokens=False))
    config = transformers.LlamaConfig(
        hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=True, **special,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    seq, batch = 64, 16
    for _ in range(TRAIN_STEPS):
        starts = torch.randint(0, len(ids) - seq - 1, (batch,), generator=gen)
        x = torch.stack([ids[s : s + seq + 1] for s in starts.tolist()])  # (B, seq + 1)
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1].clone(), logits_to_keep=0).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    held_out = Tokenizer(folder).encode(_corpus()[-2000:], add_special_tokens=False)
    prompts = [held_out[i * 20 : i * 20 + 12] for i in range(20)]
    return folder, prompts
