"""Tool calling: tools rendered into the prompt, the model's calls parsed out of its output.

    reply = model.chat(messages, tools=[TRACK_ORDER], tool_choice="required")
    reply.tool_calls[0].name, reply.tool_calls[0].args      # "track_order", {"order_number": "88213"}

Tools and `tool_choice` follow OpenAI's chat API. How they reach the model depends on its chat template:

- a template that uses `tools` (Qwen2.5/Qwen3, Llama 3.x, SmolLM3, Hermes ...) renders them itself, as with
  `transformers`' `apply_chat_template(messages, tools=tools)`: tools in OpenAI's form, earlier calls as
  `tool_calls` on assistant messages with their arguments as a dict, results as `role: "tool"` messages;
- any other template gets the generic rendering (`GENERIC_TOOLS_PROMPT`): the tools and the Hermes call format
  appended to the system message (one is added when there is none), earlier calls written into the assistant's
  text as `<tool_call>` blocks, and tool results sent as a user turn of `<tool_response>` blocks.

The call format is read from the template: Llama 3.x's JSON form (`{"name": ..., "parameters": {...}}`) when it
writes `<|python_tag|>` or that form, else Hermes/Qwen's `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
With `tool_choice="required"` or a named function, decoding is constrained (structured output) to one call in that
format whose arguments match the function's parameter schema. With `"none"` the tools are left out of the prompt.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from .arguments import show
from .errors import InvalidArgument

if TYPE_CHECKING:
    from .generation import Chunk, Completion

__all__ = ["ToolCall", "ToolPlan", "CallStream", "ToolFormat", "plan_tools", "detect_format", "GENERIC_TOOLS_PROMPT"]

ToolChoice = Literal["auto", "none", "required", "function"]
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

#: The generic rendering, for chat templates that do not take `tools`: appended to the system message.
GENERIC_TOOLS_PROMPT = (
    "# Tools\n\n"
    "You may call one or more functions to help with the user's request. The functions, as JSON schemas:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "To call a function, write a JSON object with its name and arguments inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{{"name": <function-name>, "arguments": <arguments-as-a-JSON-object>}}\n</tool_call>'
)


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made, in OpenAI's shape.

    Attributes:
        id: the call's id ("call_" + 24 hex digits); a tool result answers it with `tool_call_id`.
        name: the function's name (always one of the tools offered).
        arguments: the arguments as JSON text (an object), as OpenAI sends them.
    """

    id: str
    name: str
    arguments: str

    @property
    def args(self) -> dict[str, Any]:
        """The arguments, parsed."""
        return json.loads(self.arguments)

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolFormat:
    """How a model writes tool calls, read from its chat template.

    Attributes:
        name: "hermes" (`<tool_call>{"name", "arguments"}</tool_call>`) or "llama3" (`{"name", "parameters"}`).
        in_template: the template renders `tools` itself (else the generic rendering is used).
    """

    name: Literal["hermes", "llama3"]
    in_template: bool

    @property
    def arguments_key(self) -> str:
        return "parameters" if self.name == "llama3" else "arguments"


@lru_cache(maxsize=16)
def detect_format(template: str | None) -> ToolFormat:
    """The tool-call format of a chat template (see the module's docstring)."""
    if not template:
        return ToolFormat("hermes", False)
    import jinja2

    try:
        names = {value for _, kind, value in jinja2.Environment().lex(template) if kind == "name"}
    except jinja2.TemplateSyntaxError:
        names = set()
    in_template = "tools" in names
    llama = in_template and ("<|python_tag|>" in template or '"parameters": dictionary' in template)
    return ToolFormat("llama3" if llama else "hermes", in_template)


def _new_id() -> str:
    return "call_" + secrets.token_hex(12)


# checking what the caller sends --------------------------------------------------------------------------------


def _bad(name: str, message: str, fix: str) -> InvalidArgument:
    return InvalidArgument(name, f"{message}. Fix: {fix}.")


_TOOL_EXAMPLE = "tools=[{'type': 'function', 'function': {'name': 'track_order', 'parameters': {...}}}]"


def check_tools(tools: Any) -> tuple[dict[str, Any], ...]:
    """OpenAI's `tools`, checked; each as {"type": "function", "function": {name, description?, parameters}}."""
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence) or not tools:
        raise _bad("tools", f"tools must be a non-empty list of functions, got {show(tools)}", f"pass {_TOOL_EXAMPLE}")
    checked, names = [], set()
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(function, Mapping):
            raise _bad("tools", f"tools[{i}] is not a function tool: {show(tool)}", f"pass {_TOOL_EXAMPLE}")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _bad(
                "tools",
                f"tools[{i}]'s function name {show(name)} is not 1-64 letters, digits, '_' or '-'",
                "rename the function",
            )
        if name in names:
            raise _bad("tools", f"two tools are named {name!r}", "give each function its own name")
        names.add(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
            raise _bad(
                "tools",
                f"tools[{i}] ({name})'s parameters must be a JSON schema of an object, got {show(parameters)}",
                "pass e.g. {'type': 'object', 'properties': {'order_number': {'type': 'string'}}}",
            )
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad("tools", f"tools[{i}] ({name})'s description must be text", "pass a str or leave it out")
        spec = {"name": name, **({"description": description} if description else {}), "parameters": dict(parameters)}
        checked.append({"type": "function", "function": spec})
    return tuple(checked)


def check_tool_choice(choice: Any, names: Sequence[str]) -> tuple[ToolChoice, str | None]:
    """(mode, function name): OpenAI's `tool_choice` ("auto", "none", "required" or a named function)."""
    if choice is None:
        return "auto", None
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice, None  # type: ignore[return-value]
    function = choice.get("function") if isinstance(choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(choice, Mapping) or choice.get("type") != "function" or not isinstance(name, str):
        raise _bad(
            "tool_choice",
            f"tool_choice must be 'auto', 'none', 'required' or a named function, got {show(choice)}",
            "pass e.g. tool_choice={'type': 'function', 'function': {'name': 'track_order'}}",
        )
    if name not in names:
        raise _bad(
            "tool_choice",
            f"tool_choice names {name!r}, which is not among the tools ({', '.join(names)})",
            "name one of the tools",
        )
    return "function", name


# the plan of one request -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolPlan:
    """The tools of one chat request: how they are rendered, constrained and parsed."""

    tools: tuple[dict[str, Any], ...]
    choice: ToolChoice
    format: ToolFormat
    function: str | None = None  # the named function (choice "function")
    parallel: bool = True  # parallel_tool_calls: more than one call per reply allowed (unconstrained)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t["function"]["name"] for t in self.tools)

    @property
    def constrained(self) -> bool:
        return self.choice in ("required", "function")

    # rendering ---------------------------------------------------------------------------------------------

    def template_tools(self) -> list[dict[str, Any]] | None:
        """The `tools` the template renders (None: it does not take them, or tool_choice is "none")."""
        return list(self.tools) if self.format.in_template and self.choice != "none" else None

    def render(self, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The messages as the chat template gets them (the generic rendering when it does not take tools)."""
        if self.format.in_template:
            return [_template_message(m) for m in messages]
        return generic_messages(messages, self.tools if self.choice != "none" else ())

    # constraining ------------------------------------------------------------------------------------------

    def grammar(self) -> str:
        """The Lark grammar (llguidance) of one call to an allowed function, with schema-valid arguments."""
        functions = [t["function"] for t in self.tools]
        allowed = [f for f in functions if self.choice == "required" or f["name"] == self.function]
        key = self.format.arguments_key
        rules = []
        for i, function in enumerate(allowed):
            # arguments hold the properties the schema names (and any it allows explicitly): a schema without
            # additionalProperties would let a small model write made-up keys until max_tokens
            parameters = {"additionalProperties": False, **function["parameters"]}
            schema = {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, key: parameters},
                "required": ["name", key],
                "additionalProperties": False,
                "x-guidance": _JSON_DEFAULTS,
            }
            rules.append(f"call_{i}: %json {json.dumps(schema, ensure_ascii=False)}")
        calls = " | ".join(f"call_{i}" for i in range(len(allowed)))
        start = "start: call" if self.format.name == "llama3" else 'start: "<tool_call>\\n" call "\\n</tool_call>"'
        return "\n".join([start, f"call: {calls}", *rules])

    # parsing -----------------------------------------------------------------------------------------------

    def parse(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        """(the text besides the calls, the calls) of a complete reply; text that is not a valid call to one of
        the tools stays text."""
        if self.choice == "none":
            return text, ()
        calls: list[ToolCall] = []
        parts: list[str] = []
        cursor = 0
        for m in _HERMES_CALL.finditer(text):
            call = self._call(m.group(1))
            if call is not None:
                parts.append(text[cursor : m.start()])
                calls.append(call)
                cursor = m.end()
        parts.append(text[cursor:])
        if not calls and self.format.name == "llama3":
            json_calls = self._json_calls(text)
            if json_calls:
                return "", json_calls[: None if self.parallel else 1]
        content = "".join(parts).strip() if calls else text
        return content, tuple(calls[: None if self.parallel else 1])

    def _call(self, body: str) -> ToolCall | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return self._from_json(data)

    def _from_json(self, data: Any) -> ToolCall | None:
        if not isinstance(data, dict) or data.get("name") not in self.names:
            return None
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):  # some models write the arguments as JSON text
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        return ToolCall(_new_id(), data["name"], json.dumps(arguments, ensure_ascii=False))

    def _json_calls(self, text: str) -> tuple[ToolCall, ...]:
        """Llama 3.x's form: the whole reply is one JSON call, or several separated by ';'."""
        body = text.strip().removeprefix("<|python_tag|>").strip()
        decoder, calls, at = json.JSONDecoder(), [], 0
        while at < len(body):
            try:
                data, at = decoder.raw_decode(body, at)
            except ValueError:
                return ()
            call = self._from_json(data)
            if call is None:
                return ()
            calls.append(call)
            rest = body[at:].lstrip()
            if rest.startswith(";"):
                rest = rest[1:].lstrip()
            at = len(body) - len(rest)
        return tuple(calls)

    def finish(self, done: Completion) -> Completion:
        """A joined completion with its calls parsed out."""
        text, calls = self.parse(done.text)
        if not calls:
            return done
        return dataclasses.replace(done, text=text, tool_calls=calls, finish_reason="tool_calls")

    def stream(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """The chunks of one generation with its calls parsed out (see `CallStream`)."""
        calls = CallStream(self)
        try:
            for chunk in chunks:
                yield calls.feed(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:  # stopped early: stop the generation (and free the model) now
                close()


class CallStream:
    """Parses one generation's calls as its chunks come, one chunk out for each chunk in.

    Text streams until a call may begin; from there the text is held and parsed at the end, where the last
    chunk carries the calls (and `finish_reason` "tool_calls"). Tokens and logprobs still come with their
    chunks. Push-based, so that chunks of several generations may arrive interleaved (n choices, batches).
    """

    def __init__(self, plan: ToolPlan) -> None:
        self.plan = plan
        self.held = ""  # text not sent yet
        self.holding = False  # a call may have begun: everything from there is held to the end
        self.begun = False  # text other than blanks was sent (Llama's JSON call can only open a reply)

    def feed(self, chunk: Chunk) -> Chunk:
        if self.plan.choice == "none":
            return chunk
        text = self.held + chunk.text
        if chunk.finish_reason is not None:
            self.held = ""
            content, calls = self.plan.parse(text)
            if calls:
                return dataclasses.replace(chunk, text=content, tool_calls=calls, finish_reason="tool_calls")
            return dataclasses.replace(chunk, text=text)
        if self.holding:
            self.held = text
            return dataclasses.replace(chunk, text="")
        start = self._call_start(text)
        if start is not None:
            self.holding, self.held, out = True, text[start:], text[:start]
        else:
            keep = self._undecided(text)
            self.held, out = text[len(text) - keep :], text[: len(text) - keep]
        self.begun = self.begun or bool(out.strip())
        return dataclasses.replace(chunk, text=out)

    def _call_start(self, text: str) -> int | None:
        """Where a call may begin in `text`, if it may."""
        if self.plan.format.name == "llama3":
            # the blanks before the call are held with it (the parsed reply drops them)
            return 0 if not self.begun and text.lstrip().startswith("{") else None
        at = text.find(_OPEN)
        return at if at >= 0 else None

    def _undecided(self, text: str) -> int:
        """How much of the end of `text` to hold until the next text says whether a call begins there."""
        if self.plan.format.name == "llama3":
            return len(text) if not self.begun and not text.strip() else 0
        return _partial_suffix(text, _OPEN)


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of `text` that begins `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


def plan_tools(tools: Any, tool_choice: Any, *, template: str | None, parallel: bool = True) -> ToolPlan:
    """Check `tools` and `tool_choice` (raises `InvalidArgument` naming them) and plan them for a template."""
    checked = check_tools(tools)
    choice, name = check_tool_choice(tool_choice, [t["function"]["name"] for t in checked])
    return ToolPlan(checked, choice, detect_format(template), function=name, parallel=parallel)


# messages ----------------------------------------------------------------------------------------------------


def _arguments_object(arguments: Any) -> Any:
    """OpenAI sends a call's arguments as JSON text; templates (transformers' convention) take a dict."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(message)
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": _arguments_object(call["function"]["arguments"])}}
            for call in message["tool_calls"]
        ]
    return out


def _call_text(call: Mapping[str, Any]) -> str:
    function = call["function"]
    body = {"name": function["name"], "arguments": _arguments_object(function["arguments"])}
    return f"{_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{_CLOSE}"


def _text(content: Any) -> str:
    if isinstance(content, list):  # text parts
        return "".join(part["text"] for part in content)
    return content or ""


def generic_messages(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The generic rendering (for templates without tools): tools in the system message, calls and results
    as text in the Hermes format."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            block = f"<tool_response>\n{_text(message.get('content'))}\n</tool_response>"
            if out and out[-1].get("_tool_results"):  # consecutive results: one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
            continue
        item = {k: v for k, v in message.items() if k not in ("tool_calls", "tool_call_id")}
        if role == "assistant" and message.get("tool_calls"):
            text = _text(message.get("content"))
            calls = "\n".join(_call_text(c) for c in message["tool_calls"])
            item["content"] = f"{text}\n{calls}" if text else calls
        out.append(item)
    for item in out:
        item.pop("_tool_results", None)
    if tools:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        prompt = GENERIC_TOOLS_PROMPT.format(tools=listing)
        if out and out[0]["role"] == "system":
            system = _text(out[0].get("content"))
            out[0] = {**out[0], "content": f"{system}\n\n{prompt}" if system else prompt}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out
