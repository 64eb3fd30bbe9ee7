"""Request bodies, validated strictly: a field tinylm does not implement is a 400, never ignored, and a value of
the wrong JSON type is a 400, never coerced (`"stream": "yes"` is not true, `"seed": 1.5` is not 1).

These models check the JSON shape and OpenAI's protocol rules; the generation settings' values are checked
once, by `tinylm.GenerationOptions` (built from the request by `SamplingFields.options`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..options import GenerationOptions

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "SamplingFields",
    "StreamOptions",
    "OPENAI_NAMES",
]

#: tinylm's argument names as OpenAI's requests spell them (the `param` of a 400).
OPENAI_NAMES = {"max_new_tokens": "max_tokens", "texts": "input"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False


class SamplingFields(_Strict):
    """The generation fields shared by chat and text completions."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    user: str | None = None  # accepted, not used
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("response_format")
    @classmethod
    def _formats(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        kind = (value or {}).get("type", "text")
        if not isinstance(kind, str) or kind not in ("text", "json_object", "json_schema"):
            raise ValueError(f"response_format type {kind!r} is not supported (text, json_object, json_schema)")
        spec = (value or {}).get("json_schema")
        if kind == "json_schema" and not (isinstance(spec, dict) and isinstance(spec.get("schema"), dict)):
            raise ValueError("response_format json_schema needs json_schema.schema (an object)")
        return value

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> SamplingFields:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("n must be 1: tinylm returns one choice per request; send several requests instead")
        return n

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        items = [stop] if isinstance(stop, str) else (stop or [])
        if len(items) > 4 or any(not s for s in items):
            raise ValueError("stop takes at most 4 non-empty strings")
        return stop

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalties(cls, value: float | None) -> float | None:
        if value not in (None, 0, 0.0):
            raise ValueError("presence/frequency penalties are not supported; omit them or send 0")
        return value

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def options(self, *, default_max_tokens: int) -> GenerationOptions:
        """The request's generation settings, checked (`InvalidArgument` naming the setting)."""
        return GenerationOptions(
            max_new_tokens=self.limit() or default_max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stop,
        )

    def constrained(self) -> dict[str, Any] | None:
        """The response_format to compile, or None for plain text."""
        fmt = self.response_format
        return fmt if fmt is not None and fmt.get("type", "text") != "text" else None


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant", "developer"]
    content: str
    name: str | None = None


class ChatRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(SamplingFields):
    prompt: str
    echo: bool = False

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, echo: bool) -> bool:
        if echo:
            raise ValueError("echo is not supported")
        return echo


class EmbeddingRequest(_Strict):
    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    @field_validator("dimensions")
    @classmethod
    def _no_dimensions(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("dimensions is not supported: tinylm returns the model's full embedding")
        return value
