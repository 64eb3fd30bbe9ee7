"""tinylm's conformance suite on the numpy backend: every decoder family and the BERT-style encoders, fp32."""

import pytest

import tinylm
from tinylm.testing.conformance import BackendConformance, fail_after
from tinylm.testing.models import ENCODER_VARIANTS, build_model

BERT_STYLE = tuple(v for v in ENCODER_VARIANTS if not v.startswith("modernbert"))


class TestNumpyConformance(BackendConformance):
    backend = "numpy"
    encoder_variants = BERT_STYLE  # the example lowers BERT-style encoders; ModernBERT is refused by name

    def failing_prefill(self, session, after):
        return fail_after(session.model, "step", after)  # a rows prefill is one model step per prompt


def test_modernbert_is_refused_by_name(tmp_path):
    folder = build_model("modernbert", tmp_path / "modernbert", seed=0)
    with pytest.raises(tinylm.UnsupportedArchitecture, match=r"numpy example.*Fix:"):
        tinylm.load(folder, backend="numpy")
