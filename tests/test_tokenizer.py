"""The tokenizer wrapper: special tokens from the model's configs, truncation as the model declares it."""

from __future__ import annotations

import json

import pytest

from tinylm.source import ModelFolder
from tinylm.tokenizer import Tokenizer

pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from tinylm.testing.models import build_model

    return build_model("bert", tmp_path_factory.mktemp("tok") / "bert")


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    from tinylm.testing.models import build_model

    return build_model("smollm", tmp_path_factory.mktemp("tok") / "dec")


def test_sentence_transformers_max_seq_length_wins(bert):
    folder = ModelFolder(bert)
    assert json.loads((bert / "sentence_bert_config.json").read_text())["max_seq_length"] == 64
    ids, types = folder.tokenizer.encode_batch(["word " * 500, "short"])
    assert len(ids[0]) == 64 and len(types[0]) == 64
    assert ids[0][0] == folder.tokenizer.token_id("[CLS]") and ids[0][-1] == folder.tokenizer.token_id("[SEP]")
    assert len(ids[1]) < 64


def test_tokenizer_json_truncation_and_padding_are_ignored(bert, tmp_path):
    data = json.loads((bert / "tokenizer.json").read_text())
    data["truncation"] = {"direction": "Right", "max_length": 5, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = {
        "strategy": {"Fixed": 100},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    for f in bert.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    text = "hello " * 9
    plain = Tokenizer(bert).encode(text)
    assert 5 < len(plain) < 64
    assert Tokenizer(tmp_path, max_length=64).encode(text) == plain  # not cut to 5, not padded to 100


def test_special_tokens_and_stop_ids_come_from_the_configs(decoder):
    folder = ModelFolder(decoder)
    tok = folder.tokenizer
    assert tok.special_tokens["eos_token"] == "<|im_end|>"
    assert tok.eos_token_id in folder.stop_token_ids()
    assert tok.decode(tok.encode("Hello, wörld 😀")) == "Hello, wörld 😀"


def test_bad_tokenizer_file_is_a_typed_error(tmp_path):
    from tinylm.errors import TokenizerError

    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="Fix"):
        Tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(TokenizerError, match=r"no tokenizer\.json"):
        Tokenizer(tmp_path)
