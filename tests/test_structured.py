"""Structured output: JSON schema, regex and choices, validated on every available backend, on the
bundled support assistant and on tiny random models with two tokenizer kinds (byte-level BPE,
SentencePiece-style)."""

from __future__ import annotations

import json
import re

import pytest

import tinylm
from tinylm.errors import ConstraintError
from tinylm.plugins import get_manager

pytest.importorskip("llguidance", reason="structured output needs llguidance (pip install tinylm[structured])")
pytest.importorskip("transformers", reason="tiny test models are built with transformers (pip install tinylm[test])")
jsonschema = pytest.importorskip("jsonschema", reason="outputs are validated with jsonschema (pip install jsonschema)")

SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["refund", "delivery", "account", "invoice"]},
        "order_number": {"type": "integer", "minimum": 0, "maximum": 999999},
        "priority": {"type": "number", "minimum": -10, "maximum": 10},
        "items": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 12}, "vip": {"type": "boolean"}},
            "required": ["name", "vip"],
            "additionalProperties": False,
        },
    },
    "required": ["intent", "order_number", "items", "customer"],
    "additionalProperties": False,
}
ORDER = re.compile(r"ORD-[0-9]{6}")
CHOICES = ["refund", "delivery", "account", "invoice", "other"]
# 50 seeded generations per constraint is the bar (run with -m slow); the default suite samples 8.
RUNS = [pytest.param(8, id="8-runs"), pytest.param(50, id="50-runs", marks=pytest.mark.slow)]


def backends() -> list[str]:
    return sorted(
        n for n, b in get_manager().backends().items() if b.availability().ok and "decoder" in b.capabilities.kinds
    )


@pytest.fixture(scope="module", params=["support-assistant", "smollm", "llama-sp"])
def folder(request, tmp_path_factory):
    from tinylm.testing.models import build_model

    if request.param == "support-assistant":
        return get_manager().models()["support-assistant"].path  # the bundled, trained model
    return build_model(request.param, tmp_path_factory.mktemp("structured") / request.param)


@pytest.fixture(scope="module", params=backends())
def model(request, folder):
    with tinylm.load(folder, backend=request.param) as m:
        yield m


@pytest.mark.parametrize("runs", RUNS)
def test_json_schema_outputs_validate(model, runs):
    for seed in range(runs):
        done = model.generate("Ticket:", response_format=SCHEMA, temperature=1.0, seed=seed, max_new_tokens=200)
        jsonschema.validate(json.loads(done.text), SCHEMA)
        assert done.parsed == json.loads(done.text) and done.finish_reason == "stop"


@pytest.mark.parametrize("runs", RUNS)
def test_regex_outputs_match(model, runs):
    for seed in range(runs):
        done = model.generate("Order:", response_format=ORDER, temperature=1.0, seed=seed, max_new_tokens=20)
        assert ORDER.fullmatch(done.text), done.text


@pytest.mark.parametrize("runs", RUNS)
def test_choice_outputs_are_one_of_the_choices(model, runs):
    seen = set()
    for seed in range(runs):
        done = model.chat(
            [{"role": "user", "content": "Classify: where is my parcel?"}],
            response_format=CHOICES,
            temperature=1.0,
            seed=seed,
            max_new_tokens=10,
        )
        assert done.text in CHOICES and done.parsed == done.text
        seen.add(done.text)
    if model.path.name != "support-assistant":  # random weights: sampling really explores the choices
        assert len(seen) > 1


def test_streaming_gives_the_same_text(model):
    chunks = list(model.stream("Ticket:", response_format=SCHEMA, temperature=0.7, seed=3, max_new_tokens=200))
    done = model.generate("Ticket:", response_format=SCHEMA, temperature=0.7, seed=3, max_new_tokens=200)
    assert "".join(c.text for c in chunks) == done.text


def test_pydantic_models(model):
    pydantic = pytest.importorskip("pydantic", reason="pydantic response formats need pydantic")

    class Reply(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")  # additionalProperties: false
        intent: str = pydantic.Field(max_length=10)
        urgent: bool

    done = model.generate("Reply:", response_format=Reply, temperature=0.9, seed=1, max_new_tokens=300)
    assert isinstance(done.parsed, Reply)


def test_bad_constraints_fail_before_generation(model):
    with pytest.raises(ConstraintError, match="Fix"):
        model.generate("x", response_format={"type": "object", "properties": {"a": {"type": "nonsense"}}})
    with pytest.raises(ConstraintError, match="not supported"):
        model.generate("x", response_format=42)
    with pytest.raises(ConstraintError, match="stop"):
        model.generate("x", response_format=CHOICES, stop=["\n"])
    with pytest.raises(ConstraintError, match="max_new_tokens"):
        model.generate("x", response_format=SCHEMA, max_new_tokens=3, temperature=0)
