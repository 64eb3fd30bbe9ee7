"""Rows (issue #24) on onnx: the shared rows tests (`tinylm.testing.rows_suite`) plus what is onnx's own.

Positions reach the graph three ways: rotary inside GroupQueryAttention (llama; qwen3 with per-head q/k norms
before it), rotary outside it (phi3-partial-rotary: GQA cannot express 8 rotary dims; reads each row's positions
from seqlens_k, graph revision 4), learned positions (gpt2, the same); live rows stay packed in the first slots
(a dropped row's slot takes the last one's cache), and a step that leaves a row between listed ones runs it with
a placeholder past its end.
"""

from __future__ import annotations

from tinylm.testing.row_check import open_rows
from tinylm.testing.rows_suite import RowsSuite


class TestOnnxRows(RowsSuite):
    backend = "onnx"

    def test_rows_share_the_loaded_runtime_model(self, loaded):
        model = loaded("llama")
        rows = open_rows(model, 2)
        assert rows._sess is model._live()._sess  # one InferenceSession: the weights are loaded once
