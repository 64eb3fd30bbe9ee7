"""`tinylm eval`: perplexity = exp(mean NLL), checked independently; retrieval metrics by hand."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from tinylm_torch.toolchain.errors import DataError
from tinylm_torch.toolchain.evaluate import EvalOptions, load_retrieval, perplexity, retrieval, retrieval_metrics

from tinylm.cli import main
from tinylm.tokenizer import Tokenizer

from .conftest import output_backends

TEXTS = ["my parcel never arrived", "the cat sat on the mat and the dog ran to the big red house"]


@pytest.mark.parametrize("backend", output_backends())
def test_perplexity_is_exp_of_the_mean_nll(model_folder, reference, tmp_path, backend):
    folder = model_folder("llama")
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    result = perplexity(folder, [data], EvalOptions(backend=backend))

    tok = Tokenizer(folder)  # independently: transformers' model, text + end token, every next token
    hf = reference(folder)
    nll, count = 0.0, 0
    for text in TEXTS:
        ids = torch.tensor([[*tok.encode(text), tok.eos_token_id]])
        with torch.no_grad():
            logp = torch.log_softmax(hf(ids).logits[0, :-1].double(), dim=-1)
        nll -= float(logp.gather(1, ids[0, 1:, None]).sum())
        count += ids.shape[1] - 1
    assert result.tokens == count and result.records == 2
    assert result.perplexity == pytest.approx(math.exp(nll / count), rel=1e-4)


def test_retrieval_metrics_by_hand():
    docs = np.eye(4, dtype=np.float32)  # d0..d3 along the axes
    queries = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # ranks d0, d1, ...: relevant d0 at rank 1
            [0.6, 0.0, 0.5, 0.1],  # d0, d2, d3, d1: relevant d2 at rank 2
            [0.5, 0.4, 0.3, 0.2],  # d0, d1, d2, d3: relevant {d3} at rank 4
        ],
        dtype=np.float32,
    )
    result = retrieval_metrics(queries, docs, [{0}, {2}, {3}], ks=(1, 2, 5))
    assert result.mrr == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    assert result.top_k == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 5: 1.0}


def test_retrieval_file_and_cli(model_folder, tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    rows = [
        {"type": "document", "id": "d1", "text": "track your parcel on the website"},
        {"type": "document", "id": "d2", "text": "cancel the order from your account"},
        {"type": "query", "id": "q1", "text": "where is my parcel", "relevant": ["d1"]},
        {"type": "query", "id": "q2", "text": "cancel order", "relevant": ["d2", "d1"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rs = load_retrieval(path)
    assert rs.relevant == {"q1": {"d1"}, "q2": {"d1", "d2"}}
    result = retrieval(model_folder("bert"), path, EvalOptions(backend="torch"))
    assert result.queries == 2 and result.documents == 2 and 0.5 <= result.mrr <= 1.0
    assert main(["eval", str(model_folder("bert")), "--retrieval", str(path), "--backend", "torch"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["retrieval"][str(path)]["model"]["mrr"] == pytest.approx(result.mrr)

    model = tmp_path / "m"  # a copy with a model card, against itself as the teacher
    shutil.copytree(model_folder("bert"), model)
    (model / "README.md").write_text("# m\n")
    args = ["eval", str(model), "--teacher", str(model_folder("bert")), "--retrieval", str(path), "--write-card"]
    assert main([*args, "--data", str(path), "--field", "text", "--backend", "torch"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mean_cosine_with_teacher"] == pytest.approx(1.0, abs=1e-5)
    assert report["retrieval"][str(path)]["mrr_ratio"] == pytest.approx(1.0)
    card = (model / "README.md").read_text()
    assert "## Evaluation" in card and "ratio 1.0000" in card
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "query", "id": "q", "text": "x", "relevant": ["nope"]}) + "\n")
    with pytest.raises(DataError, match="relevant"):
        load_retrieval(bad)


def test_eval_runs_at_the_precision_asked_for(model_folder, monkeypatch, tmp_path, capsys):
    """--precision and --device reach tinylm.load (they were accepted and ignored: fp32 was evaluated)."""
    import tinylm

    path = tmp_path / "r.jsonl"
    rows = [
        {"type": "document", "id": "d1", "text": "track your parcel"},
        {"type": "query", "id": "q1", "text": "where is my parcel", "relevant": ["d1"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []
    real_load = tinylm.load

    def spy(model, **options):
        seen.append(options)
        return real_load(model, **options)

    monkeypatch.setattr(tinylm, "load", spy)
    args = ["eval", str(model_folder("bert")), "--retrieval", str(path), "--backend", "torch"]
    assert main([*args, "--precision", "int8", "--device", "cpu"]) == 0
    assert seen and all(o["precision"] == "int8" and o["device"] == "cpu" for o in seen)
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"


def test_max_records_is_per_file(tmp_path):
    from tinylm_torch.toolchain.data import read_records

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"text": f"a{i}"}) + "\n" for i in range(5)))
    b.write_text("".join(json.dumps({"text": f"b{i}"}) + "\n" for i in range(5)))
    texts = [r.text for r in read_records([a, b], limit=2)]
    assert texts == ["a0", "a1", "b0", "b1"]  # the first file no longer uses the whole limit


def test_near_copies_marks_paraphrases_of_training_text():
    from tinylm_torch.toolchain.data import near_copies

    training = ["i need help to cancel order 123", "where is my refund"]
    texts = [
        "I need help to cancel order 123!",  # verbatim but for case and punctuation
        "help me cancel order 123 i need",  # every word in one training text
        "my parcel arrived broken, what now",  # new
        "",
    ]
    assert near_copies(texts, training) == [True, True, False, False]
    assert near_copies(["where is the refund for my order"], training, overlap=0.5) == [True]
