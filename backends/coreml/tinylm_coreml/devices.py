"""tinylm device names -> Core ML compute units (TINYLM_DEVICE / `device=` pick one; the first is the default).

all   ct.ComputeUnit.ALL           Core ML chooses among CPU, GPU and Neural Engine
cpu   ct.ComputeUnit.CPU_ONLY
gpu   ct.ComputeUnit.CPU_AND_GPU
ane   ct.ComputeUnit.CPU_AND_NE    the Apple Neural Engine (with the CPU for ops it lacks)
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEVICES", "compute_unit"]

DEVICES: dict[str, str] = {"all": "ALL", "cpu": "CPU_ONLY", "gpu": "CPU_AND_GPU", "ane": "CPU_AND_NE"}


def compute_unit(device: str) -> Any:
    """The `coremltools.ComputeUnit` for a tinylm device name."""
    import coremltools as ct

    return getattr(ct.ComputeUnit, DEVICES[device.lower()])
