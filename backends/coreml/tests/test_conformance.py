"""The shared conformance suite, executed through Core ML. Runs on macOS only (the workflow
.github/workflows/coreml-macos.yml runs it on a macos-15 runner); skipped elsewhere.

Tolerances: the package computes in fp16 (10-bit mantissa, relative step 2**-11 ~ 4.9e-4) and keeps
the KV cache in fp16. On the tiny test models logits reach |10|, so one rounding of a logit is ~5e-3
and a few layers of fp16 matmuls, softmax and norms compound to a few 1e-2; 0.1 absolute leaves a
margin without hiding a wrong lowering (a lowering bug moves logits by O(1); the float32 evaluation in
test_evaluate.py pins the lowering itself to 1e-4 on every OS). Cache tests compare Core ML with itself
(prefill + decode vs one call): same kernels, but different shapes may pick different kernels, hence
5e-2 + 1e-2 relative.
"""

from __future__ import annotations

import sys

import pytest

from tinylm.testing.conformance import BackendConformance

pytestmark = pytest.mark.skipif(sys.platform != "darwin", reason="Core ML runs only on macOS")


class TestCoreMLConformance(BackendConformance):
    backend = "coreml"
    logits_atol = 0.1
    cache_atol = 5e-2
    cache_rtol = 1e-2
    embed_atol = 1e-2  # unit-norm sentence vectors: fp16 leaves ~1e-3 per component
