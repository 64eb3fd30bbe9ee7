"""The toolchain writes the newer families back out (`save_model`: the family's `to_config` and `to_checkpoint`) in
a form transformers loads with the same outputs: as they were, updating the original config or from the spec alone
(a model trained from scratch), and pruned (fewer layers, a narrower MLP), where transformers must read the new
config as tinylm does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from tinylm_torch.toolchain.card import ModelCard
from tinylm_torch.toolchain.export import Draft, save_model

import tinylm
from tinylm.source import ModelFolder
from tinylm.testing.models import ENCODER_VARIANTS, build_model

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

VARIANTS = ("granite", "olmo2", "smollm3", "gemma2", "gemma3", "gemma3-multimodal", "modernbert", "modernbert-mean")
CARD = ModelCard(title="write-back test", task="prune", command="pytest")


def _outputs(folder: Path, ids: np.ndarray, encoder: bool) -> np.ndarray:
    """transformers' logits (decoders) or last hidden states (encoders), float32, for ids (1, T)."""
    cls = transformers.AutoModel if encoder else transformers.AutoModelForCausalLM
    model = cls.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids))
    return (out.last_hidden_state if encoder else out.logits)[0].numpy()


def _ids(spec, n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).integers(5, min(spec.vocab_size, 300), size=(1, n)).astype(np.int64)


@pytest.mark.parametrize("base", [True, False], ids=["updating-its-config", "from-the-spec"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_written_model_loads_in_transformers_with_the_same_outputs(variant, base, tmp_path):
    source = ModelFolder(build_model(variant, tmp_path / "source"))
    draft = Draft(
        spec=source.spec,
        weights=dict(source.weights()),
        files_from=source.path,
        base_config=source.config if base else None,
    )
    out = save_model(draft, tmp_path / "out", card=CARD)
    encoder = variant in ENCODER_VARIANTS
    ids = _ids(source.spec)  # 40 tokens: past every sliding window of these variants
    want, got = _outputs(source.path, ids, encoder), _outputs(out, ids, encoder)
    assert float(np.abs(got - want).max()) <= 1e-5


def _pruned(spec, weights: dict[str, np.ndarray], keep: list[int]):
    """The spec and canonical weights of layers `keep` with the first half of each MLP's channels."""
    half = spec.intermediate_size // 2
    out = {}
    for name, array in weights.items():
        if name.startswith("layers."):
            _, i, rest = name.split(".", 2)
            if int(i) not in keep:
                continue
            name = f"layers.{keep.index(int(i))}.{rest}"
            if rest.startswith(("mlp.gate.", "mlp.up.")):
                array = array[:half]
            elif rest == "mlp.down.weight":
                array = array[:, :half]
        out[name] = np.ascontiguousarray(array)
    return dataclasses.replace(spec.with_layers(keep), intermediate_size=half), out


@pytest.mark.parametrize("variant", VARIANTS)
def test_pruned_model_reads_the_same_in_transformers_and_tinylm(variant, tmp_path):
    source = ModelFolder(build_model(variant, tmp_path / "source"))
    layers = source.spec.num_layers
    keep = [0, 2, 3][: layers - 1] if layers > 2 else [0]  # ModernBERT keeps its first layer (no attn_norm)
    spec, weights = _pruned(source.spec, dict(source.weights()), keep)
    draft = Draft(spec=spec, weights=weights, files_from=source.path, base_config=source.config)
    out = save_model(draft, tmp_path / "out", card=CARD)
    encoder = variant in ENCODER_VARIANTS
    ids = _ids(spec)
    want = _outputs(out, ids, encoder)
    with tinylm.load(out, backend="torch") as model:
        assert model.spec.num_layers == len(keep) and model.spec.intermediate_size == spec.intermediate_size
        if encoder:
            got = model._live().embed(ids, np.ones_like(ids), np.zeros_like(ids))[0]
        else:
            got = model.logits(ids[0])
    assert float(np.abs(got - want).max()) <= 1e-4


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text", "smollm3", "olmo2", "granite"])
def test_scratch_family_is_written_as_transformers_reads_it(family, tmp_path):
    """`tinylm train --family F`: the new model's spec (from the family's own config) written out and read back
    by transformers gives tinylm's logits."""
    from tinylm_torch.toolchain.presets import SCRATCH_FAMILIES, SIZES, scratch_spec

    from tinylm.arch import expected_shapes

    assert family in SCRATCH_FAMILIES
    folder = build_model("llama", tmp_path / "tokenizer")  # its tokenizer files
    spec = scratch_spec(family, SIZES["tiny"], vocab_size=448, max_positions=128, bos=0, eos=2, pad=0)
    rng = np.random.default_rng(0)
    weights = {n: (rng.standard_normal(s) * 0.2).astype(np.float32) for n, s in expected_shapes(spec).items()}
    out = save_model(Draft(spec=spec, weights=weights, files_from=folder), tmp_path / "out", card=CARD)
    ids = _ids(spec)
    with tinylm.load(out, backend="torch") as model:
        assert model.spec.family == family
        got = model.logits(ids[0])
    assert float(np.abs(got - _outputs(out, ids, False)).max()) <= 1e-4
