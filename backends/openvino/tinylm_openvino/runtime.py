"""Importing the OpenVINO runtime for running models, without its model-conversion tools.

`import openvino` also imports `openvino.tools.ovc` (model conversion, with argparse, telemetry and
urllib behind it) for `openvino.convert_model`: 0.07 of the 0.16 s the import takes here, paid by every
process that opens a model although tinylm never converts through it. OpenVINO's `__init__` treats that
import as optional (it skips it on ImportError), so the first import made here skips it, and
`openvino.convert_model` is then imported on first use: code that uses it after tinylm loaded a model
sees no difference. When openvino was imported before, this changes nothing.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

__all__ = ["openvino"]

_TOOLS = "openvino.tools.ovc"


def _convert_model_on_first_use(name: str) -> Any:
    if name != "convert_model":
        raise AttributeError(f"module 'openvino' has no attribute {name!r}")
    from openvino.tools.ovc import convert_model

    sys.modules["openvino"].convert_model = convert_model
    return convert_model


def openvino() -> ModuleType:
    """The `openvino` module (imported once; see the module docstring)."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    skipped = _TOOLS not in sys.modules
    if skipped:
        sys.modules[_TOOLS] = None  # type: ignore[assignment]  # makes `from openvino.tools.ovc import ...` fail
    try:
        import openvino as ov
    finally:
        if skipped and sys.modules.get(_TOOLS, ...) is None:
            del sys.modules[_TOOLS]
    if skipped and not hasattr(ov, "convert_model"):
        ov.__getattr__ = _convert_model_on_first_use  # type: ignore[attr-defined]  # PEP 562: only for missing names
    return ov
