"""The shared conformance suite on the onnx backend (fp32), every family."""

from tinylm_onnx.rows import _Span

from tinylm.testing.conformance import BackendConformance, fail_after


class TestOnnxConformance(BackendConformance):
    backend = "onnx"

    def failing_prefill(self, session, after):
        return fail_after(_Span, "prefill", after)  # each joining prompt runs on its slot's one-row span
