"""`tinylm prune`: layers, heads (whole kv groups), MLP width, vocabulary; valid models of the same family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tinylm_torch.toolchain.common import RunOptions
from tinylm_torch.toolchain.errors import PruneError
from tinylm_torch.toolchain.prune import PruneConfig, prune
from tinylm_torch.toolchain.surgery import keep_kv_groups, keep_mlp_channels
from tinylm_torch.weights import build_transformer

import tinylm
from tinylm.cli import main
from tinylm.source import ModelFolder

from .conftest import assert_runs_everywhere, write_text_jsonl


def _logits(spec, weights, ids):
    with torch.no_grad():
        return build_transformer(spec, weights)(ids).numpy()


def test_dropping_kv_groups_equals_silencing_their_heads(model_folder):
    source = ModelFolder(model_folder("llama"))  # 4 query heads in 2 kv groups
    spec, weights = source.spec, {k: np.array(v) for k, v in source.weights().items()}
    pruned, new_spec = keep_kv_groups(weights, spec, {0: [1], 1: [0]})
    assert (new_spec.num_heads, new_spec.num_kv_heads) == (2, 1)
    silenced = dict(weights)
    g, hd = spec.num_heads // spec.num_kv_heads, spec.head_dim
    for layer, dropped in ((0, 0), (1, 1)):  # a dropped group's heads only reach the output through o
        o = silenced[f"layers.{layer}.attn.o.weight"].copy()
        o[:, dropped * g * hd : (dropped + 1) * g * hd] = 0
        silenced[f"layers.{layer}.attn.o.weight"] = o
    ids = torch.from_numpy(np.random.default_rng(0).integers(3, spec.vocab_size, (1, 10)))
    np.testing.assert_allclose(_logits(new_spec, pruned, ids), _logits(spec, silenced, ids), atol=1e-4)


def test_dropping_mlp_channels_equals_silencing_them(model_folder):
    source = ModelFolder(model_folder("llama"))
    spec, weights = source.spec, {k: np.array(v) for k, v in source.weights().items()}
    keep = {i: list(range(0, spec.intermediate_size, 2)) for i in range(spec.num_layers)}
    pruned, new_spec = keep_mlp_channels(weights, spec, keep)
    silenced = dict(weights)
    for i in range(spec.num_layers):
        down = silenced[f"layers.{i}.mlp.down.weight"].copy()
        down[:, 1::2] = 0
        silenced[f"layers.{i}.mlp.down.weight"] = down
    ids = torch.from_numpy(np.random.default_rng(1).integers(3, spec.vocab_size, (1, 10)))
    np.testing.assert_allclose(_logits(new_spec, pruned, ids), _logits(spec, silenced, ids), atol=1e-4)


def test_prune_layers_heads_and_mlp_of_a_gqa_decoder(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 40)
    out = tmp_path / "p"
    args = ["prune", str(model_folder("llama")), "--out", str(out), "--num-layers", "1", "--num-heads", "2"]
    assert (
        main([*args, "--intermediate-size", "48", "--calibration-data", str(data), "--calibration-samples", "16"]) == 0
    )
    spec = ModelFolder(out).spec
    assert (spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.intermediate_size) == (1, 2, 1, 48)
    assert spec.family == "llama" and spec.head_dim == 16
    assert_runs_everywhere(out)
    with pytest.raises(PruneError, match="multiple of 2"):
        prune(model_folder("llama"), tmp_path / "bad", PruneConfig(num_heads=3, calibration_data=(data,)))


def test_prune_layers_heads_and_mlp_of_a_hybrid_decoder(model_folder, tmp_path):
    """LFM2: heads are scored and dropped on the attention layers only; the conv layers keep their kernels."""
    data = write_text_jsonl(tmp_path / "t.jsonl", 40)
    out = tmp_path / "p"
    config = PruneConfig(num_layers=3, num_heads=3, intermediate_size=64, calibration_data=(data,))
    prune(model_folder("lfm2-k4"), out, config)  # 6 heads in 2 kv groups, attention on layers 0 and 2 of 4
    spec = ModelFolder(out).spec
    assert (spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.intermediate_size) == (3, 3, 1, 64)
    assert spec.family == "lfm2" and spec.conv_layers and spec.attention_layers
    assert_runs_everywhere(out)


def test_bert_heads_cannot_be_dropped_but_layers_and_mlp_can(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 40)
    with pytest.raises(PruneError, match="head_dim"):
        prune(model_folder("bert"), tmp_path / "bad", PruneConfig(num_heads=2, calibration_data=(data,)))
    out = tmp_path / "p"
    prune(model_folder("bert"), out, PruneConfig(drop_layers=(0,), intermediate_size=64, calibration_data=(data,)))
    assert ModelFolder(out).spec.num_layers == 1
    assert_runs_everywhere(out)


def test_vocabulary_pruning_keeps_embeddings_of_texts_it_covers(model_folder, tmp_path):
    teacher = model_folder("bert")
    corpus = ["my parcel never arrived", "the quick brown fox", "hello world, how are you?"]
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus))
    out = tmp_path / "v"
    prune(teacher, out, PruneConfig(vocab_data=(data,), keep_ascii=False))
    small, big = ModelFolder(out), ModelFolder(teacher)
    assert small.spec.vocab_size < big.spec.vocab_size
    tok = json.loads((out / "tokenizer.json").read_text())
    ids = sorted(tok["model"]["vocab"].values())
    assert ids == list(range(small.spec.vocab_size))  # dense ids, consistent with the embedding rows
    with tinylm.load(teacher, backend="torch") as a, tinylm.load(out, backend="torch") as b:
        np.testing.assert_allclose(b.embed(corpus), a.embed(corpus), atol=1e-6)
        assert b.tokenizer.decode(b.tokenizer.encode(corpus[0])) == corpus[0]
    assert_runs_everywhere(out, probe=corpus[0])


def test_vocabulary_pruning_refuses_bpe(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 5)
    with pytest.raises(PruneError, match="vocabulary pruning is for embedding models"):
        prune(model_folder("llama"), tmp_path / "x", PruneConfig(vocab_data=(data,)))


def test_prune_then_heal_by_distillation(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 60)
    run = RunOptions(steps=3, batch_size=4, eval_every=3, lr=1e-3)
    result = prune(
        model_folder("llama"), tmp_path / "h", PruneConfig(drop_layers=(1,), heal_data=(data,), max_length=32, run=run)
    )
    assert result.heal is not None and result.heal.steps == 3 and result.kept_layers == [0]
    card = (result.out / "README.md").read_text()
    assert "heal steps" in card and "parameters (after)" in card
    assert_runs_everywhere(result.out)
