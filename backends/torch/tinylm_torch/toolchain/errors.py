"""The typed errors of the training toolchain; each message says how to fix the problem."""

from __future__ import annotations

from tinylm.errors import TinyLMError

__all__ = ["ToolchainError", "DataError", "TokenizerMismatch", "CheckpointError", "PruneError", "IntegrityError"]


class ToolchainError(TinyLMError):
    """Base class of the errors `tinylm train/finetune/distill/prune/eval` raise on purpose."""


class DataError(ToolchainError, ValueError):
    """A data file is missing, empty, or not in a format the toolchain reads."""


class TokenizerMismatch(ToolchainError):
    """Teacher and student do not share a tokenizer (logit distillation needs the same vocabulary)."""


class CheckpointError(ToolchainError):
    """A training checkpoint is unreadable or belongs to a different run."""


class PruneError(ToolchainError, ValueError):
    """The requested pruning cannot keep a valid model of the same family."""


class IntegrityError(ToolchainError):
    """A model file does not have the hash it must have."""
