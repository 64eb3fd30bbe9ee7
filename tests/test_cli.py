"""The `tinylm` command line on tiny random models (torch backend)."""

from __future__ import annotations

import io
import json

import pytest

from tinylm.cli import main

pytest.importorskip(
    "tinylm_torch", reason="the CLI tests run models on the torch backend (pip install -e backends/torch)"
)
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinylm.testing.models import build_model

    root = tmp_path_factory.mktemp("cli")
    return {"decoder": build_model("smollm", root / "dec"), "encoder": build_model("bert", root / "enc")}


def test_generate_streams_and_reports_stats(models, capsys):
    assert (
        main(["generate", str(models["decoder"]), "Hello", "--max-new-tokens", "5", "--stats", "--backend", "torch"])
        == 0
    )
    out = capsys.readouterr()
    assert out.out.endswith("\n") and "[torch/cpu/fp32]" in out.err and "tok/s" in out.err


def test_generate_speculates_with_the_flag(models, capsys):
    base = [
        "generate",
        str(models["decoder"]),
        "order 4412, order 4412",
        "--max-new-tokens",
        "16",
        "--ignore-eos",
        "--backend",
        "torch",
    ]
    assert main(base) == 0
    plain = capsys.readouterr().out
    assert main([*base, "--speculative", "lookup", "--num-speculative-tokens", "4", "--stats"]) == 0
    out = capsys.readouterr()
    assert out.out == plain  # the same tokens (this random model repeats too little for proposals to be kept)
    assert main([*base, "--speculative", "ngram"]) == 1
    assert "speculative must be 'lookup'" in capsys.readouterr().err


def test_generate_reads_the_prompt_from_stdin(models, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello from stdin"))
    assert (
        main(["generate", str(models["decoder"]), "--max-new-tokens", "3", "--seed", "1", "--temperature", "0.7"]) == 0
    )


def test_chat_keeps_history(models, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("first question\n\n/reset\nsecond\n/exit\nnot read\n"))
    assert main(["chat", str(models["decoder"]), "--max-new-tokens", "3", "--system", "be brief"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # two replies, one line each


def test_embed_prints_json_lines(models, capsys):
    assert main(["embed", str(models["encoder"]), "refund", "shipping"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["text"] for x in lines] == ["refund", "shipping"]
    assert len(lines[0]["embedding"]) == 64


def test_info(models, capsys):
    assert main(["info", str(models["decoder"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "llama" and info["kind"] == "decoder" and info["chat_template"] is True
    assert info["parameters"] > 0 and info["stop_token_ids"]
    assert main(["info", str(models["encoder"])]) == 0
    assert "bert" in capsys.readouterr().out


def test_errors_are_one_line_with_the_fix(models, capsys):
    assert main(["generate", str(models["decoder"]), "hi", "--backend", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown backend 'nope'") and "Fix" in err
    assert main(["embed", str(models["decoder"]), "x"]) == 1
    assert "embed() needs an encoder model" in capsys.readouterr().err
    assert main(["info", "/no/such/folder"]) == 1
    assert "no folder" in capsys.readouterr().err


def test_backends_table(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("torch", "onnx", "openvino", "coreml"):
        assert name in out
