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
    "ToolCallItem",
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
    n: int = 1  # 1..MAX_CHOICES, checked by tinylm.choices
    user: str | None = None  # accepted, not used
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None  # token id (as JSON text) -> bias
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

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        items = [stop] if isinstance(stop, str) else (stop or [])
        if len(items) > 4 or any(not s for s in items):
            raise ValueError("stop takes at most 4 non-empty strings")
        return stop

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if not (key.isascii() and key.isdigit() and len(key) < 20):
                raise ValueError(f'logit_bias keys are token ids (e.g. "50256"), got {key!r}')
        return value

    def requested_logprobs(self) -> tuple[bool | None, int | None]:
        """(logprobs, top_logprobs) as the library takes them."""
        return None, None

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def options(self, *, default_max_tokens: int) -> GenerationOptions:
        """The request's generation settings, checked (`InvalidArgument` naming the setting)."""
        logprobs, top_logprobs = self.requested_logprobs()
        return GenerationOptions(
            max_new_tokens=self.limit() or default_max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stop,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias is not None else None,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
        )

    def constrained(self) -> dict[str, Any] | None:
        """The response_format to compile, or None for plain text."""
        fmt = self.response_format
        return fmt if fmt is not None and fmt.get("type", "text") != "text" else None


class ToolCallFunction(_Strict):
    name: str
    arguments: str


class ToolCallItem(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | None = None  # None only for an assistant message with tool_calls (checked by the library)
    name: str | None = None
    tool_calls: list[ToolCallItem] | None = None  # assistant messages
    tool_call_id: str | None = None  # tool messages

    @model_validator(mode="after")
    def _roles(self) -> ChatMessage:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages have tool_calls")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("a tool message needs tool_call_id (the id of the call it answers), and only it has one")
        return self


class ChatRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None  # 0..20, with logprobs: true (checked by GenerationOptions)
    tools: list[dict[str, Any]] | None = None  # checked by tinylm.tools
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def requested_logprobs(self) -> tuple[bool | None, int | None]:
        return self.logprobs, self.top_logprobs


class CompletionRequest(SamplingFields):
    prompt: str
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)  # the legacy API's: alternatives with each token

    def requested_logprobs(self) -> tuple[bool | None, int | None]:
        return (True, self.logprobs) if self.logprobs is not None else (None, None)

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
