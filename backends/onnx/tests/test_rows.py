"""Rows (issue #24) on onnx: the shared rows tests (`tinylm.testing.rows_suite`) plus what is onnx's own.

Positions reach the graph three ways: rotary inside GroupQueryAttention (llama; qwen3 with per-head q/k norms
before it), rotary outside it (phi3-partial-rotary: GQA cannot express 8 rotary dims; reads each row's positions
from seqlens_k, graph revision 4), learned positions (gpt2, the same); live rows stay packed in the first slots
(a dropped row's slot takes the last one's cache), and a step that leaves a row between listed ones runs it with
a placeholder past its end.
"""

from __future__ import annotations

import numpy as np

from tinylm.testing.row_check import RowsDriver, open_rows
from tinylm.testing.rows_suite import RowsSuite, prompt_ids


class TestOnnxRows(RowsSuite):
    backend = "onnx"

    def test_rows_share_the_loaded_runtime_model(self, loaded):
        model = loaded("llama")
        rows = open_rows(model, 2)
        assert rows._sess is model._live()._sess  # one InferenceSession: the weights are loaded once

    def test_a_held_prefix_is_copied_not_run_again(self, loaded):
        model = loaded("llama")
        v = model.spec.vocab_size
        head = prompt_ids(v, 20, 1)
        rows = open_rows(model, 2)
        driver = RowsDriver(rows)
        (a,) = driver.add([np.concatenate([head, prompt_ids(v, 3, 2)])])
        (b,) = driver.add([np.concatenate([head, prompt_ids(v, 5, 3)])])  # a's head copied
        assert rows.prefilled == 23 + 5
        driver.step()
        driver.drop(a)
        driver.drop(b)
        (x,) = driver.add([np.concatenate([head, prompt_ids(v, 4, 4)])])  # the dropped rows' slots still hold it
        assert rows.prefilled == 23 + 5 + 4
        (c,) = driver.add([head])  # all of it held: the last two run again (MIN_RUN), the same bits as alone
        assert rows.prefilled == 23 + 5 + 4 + 2
        driver.step()
        driver.step()
        driver.drop(x)
        record = driver.live[c]
        driver.add([np.concatenate([head, record.fed, prompt_ids(v, 6, 5)])])  # its next turn: its prompt held
        assert rows.prefilled == 23 + 5 + 4 + 2 + len(record.fed) + 6
        driver.step()
        driver.check(model._live())
