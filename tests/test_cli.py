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


def test_serve_passes_load_options_to_every_model(models, monkeypatch):
    pytest.importorskip("fastapi", reason="the server needs FastAPI (pip install tinylm[serve])")
    import tinylm.model
    import tinylm.server

    served, given, load = {}, [], tinylm.model.load
    monkeypatch.setattr(tinylm.server, "serve", lambda models, **kw: served.update(models))
    monkeypatch.setattr(tinylm.model, "load", lambda ref, **kw: given.append(kw) or load(ref, **kw))
    folder = str(models["decoder"])
    assert main(["serve", f"a={folder}", f"b={folder}", "--backend", "torch", "--option", "share_memory=false"]) == 0
    assert sorted(served) == ["a", "b"] and [kw["share_memory"] for kw in given] == [False, False]


def test_serve_option_errors_say_how_to_fix(models, capsys):
    pytest.importorskip("fastapi", reason="the server needs FastAPI (pip install tinylm[serve])")
    with pytest.raises(SystemExit):
        main(["serve", str(models["decoder"]), "--option", "spin_wait"])  # not KEY=VALUE
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["serve", str(models["decoder"]), "--backend", "torch", "--option", "no_such_option=1"]) != 0
    assert "Fix" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("spin_wait=true", ("spin_wait", True)), ("a=False", ("a", False)), ("a=none", ("a", None)),
     ("block_size=64", ("block_size", 64)), ("x=0.5", ("x", 0.5)), ("name=abc", ("name", "abc"))],
)  # fmt: skip
def test_load_option_values(text, parsed):
    from tinylm.cli import _load_option

    assert _load_option(text) == parsed
