"""The typed errors tinylm raises.

Every message says what went wrong *and* how to fix it. Catch `TinyLMError` to handle all of them.
"""

from __future__ import annotations

__all__ = [
    "TinyLMError",
    "BackendError",
    "UnknownBackend",
    "BackendUnavailable",
    "DeviceUnavailable",
    "PrecisionUnsupported",
    "ModelNotFound",
    "InvalidModelName",
    "UnsupportedArchitecture",
    "ModelFileError",
    "WeightsError",
    "TokenizerError",
    "ChatTemplateError",
    "CapabilityError",
    "GenerationError",
    "InvalidArgument",
    "PromptTooLong",
    "PluginLoadError",
    "ConfigError",
    "ArtifactError",
    "ConstraintError",
    "BatchError",
    "RayUnavailable",
    "QueueFull",
]


class TinyLMError(Exception):
    """Base class of every error tinylm raises on purpose."""


class ConfigError(TinyLMError, ValueError):
    """A setting (an argument or a `TINYLM_*` environment variable) has an invalid value."""


class BackendError(TinyLMError):
    """Base class of the errors about choosing or running a backend."""


class UnknownBackend(BackendError, KeyError):
    """The requested backend name is not registered by any installed plugin."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BackendUnavailable(BackendError):
    """The backend is registered but cannot run here (missing runtime, wrong OS, ...)."""


class DeviceUnavailable(BackendError):
    """The requested device is not present for the chosen backend."""


class PrecisionUnsupported(BackendError):
    """The chosen backend does not offer the requested precision."""


class CapabilityError(BackendError):
    """The model or backend cannot do what was asked (e.g. `embed` on a decoder)."""


class ModelNotFound(TinyLMError):
    """The model name or path could not be resolved to a model folder."""


class InvalidModelName(ModelNotFound, ValueError):
    """A model name or hub id that is malformed or would escape its folder."""


class UnsupportedArchitecture(TinyLMError):
    """The model's `config.json` names a family tinylm does not describe."""


class ModelFileError(TinyLMError):
    """A file of the model folder is missing, unreadable or inconsistent."""


class WeightsError(ModelFileError):
    """The weights are missing, truncated, mis-shaped, or in a format tinylm refuses (pickle)."""


class TokenizerError(ModelFileError):
    """The tokenizer files are missing or cannot be parsed."""


class ChatTemplateError(TinyLMError):
    """The model has no chat template, or its template failed to render the messages."""


class GenerationError(TinyLMError, ValueError):
    """Invalid generation settings or input."""


class InvalidArgument(GenerationError):
    """An argument of the Python API (a generation option, a prompt, messages, texts) has a wrong type or value.

    Attributes:
        argument: the name of the argument that was wrong (e.g. "top_k", "messages").
        problem: the message without its "Fix: ..." part.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument
        self.problem = message.split(" Fix: ", 1)[0].rstrip(".")


class ConstraintError(GenerationError):
    """A structured-output constraint (JSON schema, regex, choices) is unsupported or unsatisfiable,
    or the output was cut before it was complete."""


class PromptTooLong(GenerationError):
    """The prompt does not fit in the model's context window."""


class ArtifactError(TinyLMError):
    """A converted artifact could not be written (disk full, no permission) or was changed on disk."""


class BatchError(TinyLMError, ValueError):
    """A `tinylm batch` input line is not a usable row (bad JSON, a missing field, a repeated id), or the
    output file holds a line that is not a complete JSON row."""


class QueueFull(TinyLMError):
    """A model's batcher (`Model.batcher`, `tinylm.batching.Scheduler`) already has `max_queue` rows waiting for a
    slot; retry later (the server answers 429)."""


class RayUnavailable(TinyLMError):
    """Ray is not installed (the `tinylm[ray]` extra), or the Ray cluster at the given address cannot be reached."""


class PluginLoadError(TinyLMError):
    """A plugin could not be loaded or registered; the other plugins keep working.

    Attributes:
        plugin: the entry-point (or plugin) name.
        cause: the exception it raised.
    """

    def __init__(self, plugin: str, cause: BaseException, *, hint: str = "") -> None:
        self.plugin = plugin
        self.cause = cause
        fix = hint or (
            f"reinstall or upgrade the package that provides {plugin!r}, "
            f"or disable it with TINYLM_DISABLE_PLUGINS={plugin}"
        )
        super().__init__(f"plugin {plugin!r} failed: {type(cause).__name__}: {cause}. Fix: {fix}.")
