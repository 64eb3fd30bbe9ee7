"""The shared conformance suite on the torch backend (the reference backend), every family."""

from tinylm.testing.conformance import BackendConformance, fail_after


class TestTorchConformance(BackendConformance):
    backend = "torch"

    def failing_prefill(self, session, after):
        return fail_after(session.model, "step", after)  # a rows prefill is one model step per prompt
