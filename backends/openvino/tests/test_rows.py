"""Rows (issue #24) on openvino: the shared rows tests (`tinylm.testing.rows_suite`) plus what is openvino's own.

Rows share one state with holes (keys a row does not hold, masked out): joins are prefilled alone and spliced
in, drops reorder rows through beam_idx, steps that leave rows out add a hole for each, and past twice the
longest row the state is compacted.
"""

from __future__ import annotations

from tinylm.testing.row_check import RowsDriver, open_rows
from tinylm.testing.rows_suite import RowsSuite, prompt_ids


class TestOpenVINORows(RowsSuite):
    backend = "openvino"
    # int8/int4 execute in f32 with activations quantized on the fly by the CPU plugin (dynamic quantization).
    # A row's f32 activations differ from alone by float round-off (~1e-6: attention over a state with holes
    # sums in another order), and where such a value sits on a rounding boundary of the dynamic quantization
    # the step's logits move by a few hundredths (0.04 once in 60 steps here; without dynamic quantization every
    # step is within 1e-5). The greedy tokens agree; the bound is the quantization's, not fp32's.
    quantized_atol = 0.1

    def test_holes_are_compacted_away(self, loaded):
        """Steps that leave a row out and rows that join late leave holes; past twice the longest row the state
        is compacted (each row's keys moved to the front), and every row still equals itself alone."""
        model = loaded("mistral-window5")
        v = model.spec.vocab_size
        driver = RowsDriver(open_rows(model, 3))
        ids = driver.add([prompt_ids(v, 20, 1)])
        for _ in range(12):
            driver.step()
        ids += driver.add([prompt_ids(v, 2, 2), prompt_ids(v, 3, 3)])
        for _ in range(30):
            driver.step([ids[1], ids[2]])  # row 0 sits out: a hole per step
        assert driver.session._keys.shape[1] < 64  # compacted at least once (33 + 30 steps would be 63)
        driver.step()
        driver.check(model._live())

    def test_rows_share_the_loaded_runtime_model(self, loaded):
        model = loaded("llama")
        rows = open_rows(model, 2)
        assert rows._compiled is model._live()._compiled  # one compiled model: the weights are loaded once
