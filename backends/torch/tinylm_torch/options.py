"""The torch backend's options (`tinylm.load(..., backend="torch", **options)`); imports no torch.

share_memory=False   fp32/bf16: keep float32 weights as views of the memory-mapped checkpoint instead of
                     copying them into process memory (less memory, the page cache shared between processes)
"""

from __future__ import annotations

from dataclasses import dataclass

from tinylm.backend import BackendOptions

__all__ = ["TorchOptions"]


@dataclass(frozen=True, kw_only=True)
class TorchOptions(BackendOptions):
    share_memory: bool = False
