"""tinylm's conformance suite on the numpy backend: every decoder family and the BERT encoder, fp32."""

from tinylm.testing.conformance import BackendConformance


class TestNumpyConformance(BackendConformance):
    backend = "numpy"
