"""The shared conformance suite on the torch backend (the reference backend), every family."""

from tinylm.testing.conformance import BackendConformance


class TestTorchConformance(BackendConformance):
    backend = "torch"
