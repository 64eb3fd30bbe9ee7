"""The shared conformance suite on a model the toolchain wrote, on every available backend.

    TINYLM_CONFORMANCE_MODEL=/work/artifacts/minilm-student \
        pytest backends/torch/tests/toolchain/test_toolchain_conformance.py

Skipped unless TINYLM_CONFORMANCE_MODEL names a model folder (the real students are not in the repository);
the tiny toolchain outputs are checked on every backend by the other tests of this folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest

from tinylm.plugins import get_manager
from tinylm.source import ModelFolder
from tinylm.testing.conformance import BackendConformance

MODEL = os.environ.get("TINYLM_CONFORMANCE_MODEL")
pytestmark = pytest.mark.skipif(not MODEL, reason="set TINYLM_CONFORMANCE_MODEL to a model folder to check")


def _kind() -> str:
    return ModelFolder(Path(MODEL)).spec.kind if MODEL else "encoder"


class _OnModel(BackendConformance):
    decoder_variants: ClassVar[tuple[str, ...]] = ("model",) if _kind() == "decoder" else ()
    encoder_variants: ClassVar[tuple[str, ...]] = ("model",) if _kind() == "encoder" else ()

    @pytest.fixture(scope="class")
    def folders(self) -> dict[str, Path]:
        backend = get_manager().backends().get(self.backend)
        if backend is None or not backend.availability().ok:
            pytest.skip(f"backend {self.backend} is not available here")
        return {"model": Path(MODEL)}

    def test_closed_model_says_so(self, folders: dict[str, Path]) -> None:
        if not self.decoder_variants:
            pytest.skip("the suite checks this on a decoder")
        super().test_closed_model_says_so(folders)


class TestTorch(_OnModel):
    backend = "torch"


class TestOnnx(_OnModel):
    backend = "onnx"


class TestOpenvino(_OnModel):
    backend = "openvino"
