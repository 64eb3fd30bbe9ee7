"""The shared conformance suite on the onnx backend (fp32), every family."""

from tinylm.testing.conformance import BackendConformance


class TestOnnxConformance(BackendConformance):
    backend = "onnx"
