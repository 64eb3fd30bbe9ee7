"""`tinylm distill`: decoders by logits (same tokenizer), encoders by embeddings; students start
from a subset of the teacher's layers and come out as valid models of the same family."""

from __future__ import annotations

import json

import pytest
import torch
from tinylm_torch.toolchain.common import RunOptions
from tinylm_torch.toolchain.distill import DistillConfig, distill, kd_loss
from tinylm_torch.toolchain.errors import TokenizerMismatch
from tinylm_torch.toolchain.evaluate import EvalOptions, agreement

from tinylm.cli import main
from tinylm.source import ModelFolder
from tinylm.testing.models import build_model

from .conftest import assert_runs_everywhere, write_text_jsonl

RUN = RunOptions(steps=3, batch_size=4, eval_every=3, lr=1e-3)


def test_kd_loss_is_cross_entropy_at_alpha_zero_and_zero_kl_for_equal_logits():
    logits = torch.randn(2, 5, 11)
    targets = torch.randint(0, 11, (2, 5))
    weights = torch.ones(2, 5)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(kd_loss(logits, logits * 3, targets, weights, temperature=2.0, alpha=0.0), ce)
    assert float(kd_loss(logits, logits, targets, weights, temperature=2.0, alpha=1.0)) == pytest.approx(0, abs=1e-6)


def test_decoder_distill_from_every_other_layer(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 60)
    out = tmp_path / "student"
    result = distill(model_folder("llama"), [data], out, DistillConfig(layers=(1,), max_length=32, run=RUN))
    assert result.parameters_student < result.parameters_teacher
    folder = ModelFolder(out)
    assert folder.spec.num_layers == 1 and folder.spec.family == "llama"
    assert "held-out perplexity" in (out / "README.md").read_text()
    assert_runs_everywhere(out)


def test_decoder_distill_refuses_a_student_with_another_tokenizer(model_folder, tmp_path):
    other = build_model("llama", tmp_path / "other")
    data = json.loads((other / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[10:12]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # same size, different ids
    (other / "tokenizer.json").write_text(json.dumps(data))
    text = write_text_jsonl(tmp_path / "t.jsonl", 20)
    config = DistillConfig(student=str(other), max_length=32, run=RUN)
    with pytest.raises(TokenizerMismatch, match="different tokenizers"):
        distill(model_folder("llama"), [text], tmp_path / "s", config)


def test_encoder_distill_by_embeddings(model_folder, tmp_path):
    data = write_text_jsonl(tmp_path / "t.jsonl", 80)
    out = tmp_path / "student"
    args = ["distill", str(model_folder("bert")), str(data), "--out", str(out), "--num-layers", "1"]
    assert main([*args, "--steps", "4", "--batch-size", "8", "--lr", "1e-3", "--eval-every", "4"]) == 0
    folder = ModelFolder(out)
    assert folder.spec.num_layers == 1 and folder.spec.kind == "encoder"
    assert (out / "modules.json").is_file() and (out / "1_Pooling" / "config.json").is_file()
    cos = agreement(out, model_folder("bert"), [data], EvalOptions(max_records=20))
    assert 0.0 < cos <= 1.0
    assert_runs_everywhere(out)


def _narrow_bert(teacher, folder):
    """A random 1-layer BERT 32 wide with the teacher's tokenizer and sentence-transformers files."""
    import shutil

    import transformers

    shutil.copytree(teacher, folder)
    cfg = json.loads((teacher / "config.json").read_text())
    cfg.update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config = transformers.BertConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_narrower_encoder_student_learns_the_teachers_pca(model_folder, tmp_path):
    import shutil

    from tinylm_torch.toolchain.errors import DataError

    data = write_text_jsonl(tmp_path / "t.jsonl", 60)
    teacher = model_folder("bert")
    student = _narrow_bert(teacher, tmp_path / "narrow")
    with pytest.raises(DataError, match="no distill_projection"):
        agreement(student, teacher, [data], EvalOptions(max_records=5))
    config = DistillConfig(student=str(student), max_length=32, run=RunOptions(steps=40, batch_size=8, lr=3e-3))
    result = distill(teacher, [data], tmp_path / "s", config)
    projection = result.out / "distill_projection.safetensors"
    assert projection.is_file() and ModelFolder(result.out).spec.hidden_size == 32
    shutil.copy(projection, student / projection.name)  # the untrained student, compared in the same space
    before = agreement(student, teacher, [data], EvalOptions(max_records=30))
    after = agreement(result.out, teacher, [data], EvalOptions(max_records=30))
    assert after > before
