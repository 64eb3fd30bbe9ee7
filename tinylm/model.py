"""`tinylm.load` and the `Model` it returns: the stable API every backend sits behind."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import arguments, settings
from .arch.rope import switch_length
from .arch.spec import ModelSpec
from .backend import OpenRequest, RowSession, Session, WeightsOnce
from .batching import RowSink, RowStream, Scheduler, SerialRows
from .errors import (
    ArtifactError,
    BackendUnavailable,
    CapabilityError,
    ConstraintError,
    GenerationError,
    InvalidArgument,
    PrecisionUnsupported,
    PromptTooLong,
)
from .generation import Chunk, Completion, GenerationSettings, join_chunks, stream_tokens
from .options import OPTION_NAMES, GenerationOptions
from .plugins import get_manager
from .resolve import resolve_model
from .rope_switch import with_rope_switch
from .sampling import LogitsProcessor, SamplingParams
from .selection import Choice, choose
from .source import ModelFolder
from .speculative import DEFAULT_TOKENS, DraftModel, NgramMemory, Pace, PromptLookup, Speculator, check_rollback
from .structured import Constraint, Grammar, ResponseFormat
from .tokenizer import Tokenizer
from .tools import ToolPlan, detect_format, plan_tools

__all__ = ["Model", "load", "convert", "DEFAULT_BATCH_SIZE"]

log = logging.getLogger("tinylm")

#: Rows decoded at once by `generate_batch`/`chat_batch` and `batcher()` when none is named. On a CPU one decode
#: step reads every weight once whatever the number of rows, so 8 rows cost little more than one on a small model
#: (docs/batching.md has the curve); each row holds its own KV cache of up to the model's context.
DEFAULT_BATCH_SIZE = 8


def _prepare(
    model: str | os.PathLike[str],
    *,
    backend: str | None,
    device: str | None,
    precision: str | None,
    options: dict[str, Any],
    convert: bool = False,
) -> tuple[ModelFolder, Choice, OpenRequest]:
    """Resolve the model and choose what runs it; an exported artifact folder fixes its backend."""
    manager = get_manager()
    folder = ModelFolder(resolve_model(model, manager))
    folder.check()
    built = folder.artifact
    source = "argument"
    if built is not None:
        wanted = backend or settings.backend_name()
        if wanted and wanted.lower() != built["backend"]:
            raise BackendUnavailable(
                f"{folder.path} is a model converted for backend {built['backend']!r}; it cannot run on {wanted!r}. "
                "Fix: load it without choosing a backend, or load the original model folder."
            )
        if precision and precision.lower() != built["precision"]:
            raise PrecisionUnsupported(
                f"{folder.path} was converted at precision {built['precision']!r}, not {precision!r}. "
                f"Fix: convert the original model again with --precision {precision}."
            )
        from .artifacts import intact

        if not intact(folder.path, built):
            raise ArtifactError(
                f"the files of {folder.path} changed since `tinylm convert` wrote them. "
                "Fix: convert the original model again."
            )
        if not backend:
            source = "TINYLM_BACKEND" if settings.backend_name() else "the converted folder"
        backend, precision = built["backend"], built["precision"]
    preferred: list[str] = []
    if built is None and not backend and settings.auto_bench():
        from .ranking import saved_ranking

        preferred = [name for name, _ in saved_ranking(folder.path)]
    try:
        choice = choose(
            manager,
            kind=folder.spec.kind,
            states=folder.spec.state_kinds,
            backend=backend,
            device=device,
            precision=precision,
            convert=convert,
            preferred=preferred,
            source=source,
        )
    except BackendUnavailable:
        if built is None:
            raise
        available = manager.backends()[built["backend"]].availability()
        if not available.convert_only:
            raise  # e.g. its runtime is missing: the message says what to install
        # e.g. a Core ML package converted on Linux: it is ready, for the machine that runs it
        raise BackendUnavailable(
            f"{folder.path} is a model converted for backend {built['backend']!r}, which cannot run on this "
            f"machine: {available.reason} Fix: copy {folder.path} to a machine where {built['backend']} runs "
            "and load it there."
        ) from None
    parsed = choice.backend.capabilities.options.parse(choice.precision, options, backend=choice.backend.name)
    request = OpenRequest(
        spec=folder.spec,
        folder=folder.path,
        weights_loader=WeightsOnce(folder.weights),  # read once, whatever the conversion and parity ask of it
        precision=choice.precision,
        device=choice.device,
        num_threads=settings.num_threads(),
        artifact=folder.path if built is not None else None,
        meta=built or {},
        options=parsed,
    )
    return folder, choice, request


def load(
    model: str | os.PathLike[str],
    *,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    **options: Any,
) -> Model:
    """Load a model on a backend.

    Args:
        model: a local folder (Hugging Face layout, or a folder written by `convert`), a bundled
            model name, or a hub id.
        backend: backend name; default `TINYLM_BACKEND`, else the best available here.
        device: device of that backend; default `TINYLM_DEVICE`, else the backend's first.
        precision: "fp32", "bf16", "fp16", "int8", "int4" where the backend offers it.
        **options: backend-specific options.

    Raises:
        ModelNotFound: the name is not a folder, a bundled model or a reachable hub id.
        UnsupportedArchitecture: config.json names a family tinylm does not describe.
        ModelFileError: a model file is missing, unreadable or inconsistent.
        UnknownBackend: no plugin registers the requested backend.
        BackendUnavailable: the requested backend cannot run here (never a silent fallback).
        DeviceUnavailable: the requested device is not present.
        PrecisionUnsupported: the backend does not offer the precision.
    """
    folder, choice, request = _prepare(model, backend=backend, device=device, precision=precision, options=options)
    if choice.candidates:
        choice, request = _keeping_quality(folder, choice, request)
    elif choice.backend.capabilities.converts and request.artifact is None:
        from .artifacts import ensure_artifact

        request = ensure_artifact(choice.backend, request, tokenizer=folder.tokenizer)
    session = with_rope_switch(request.spec, choice.backend.open(request))
    if isinstance(request.weights_loader, WeightsOnce):
        request.weights_loader.forget()  # the session holds what it needs; a rows session reads them again
    log.info(
        "loaded %s on %s/%s (%s, backend chosen by %s)",
        folder.path,
        choice.backend.name,
        choice.device,
        choice.precision,
        choice.reason,
    )
    return Model(folder, choice, session, artifact=request.artifact, request=request)


def _keeping_quality(folder: ModelFolder, choice: Choice, request: OpenRequest) -> tuple[Choice, OpenRequest]:
    """A precision picked automatically (`Choice.candidates`): the first candidate whose built artifact keeps the
    model kind's quality bar (`tinylm.quality`, measured when the artifact is built), fp32 without measuring (it is
    the reference). A backend that builds no artifact has nothing measured: its first fp32 candidate, else its last.
    The choice returned says which precision runs and why."""
    from .artifacts import ensure_artifact
    from .quality import verdict

    backend, kind = choice.backend, folder.spec.kind
    candidates = choice.candidates
    if not backend.capabilities.converts:
        candidates = ("fp32",) if "fp32" in candidates else candidates[-1:]
    missed: list[str] = []
    for i, precision in enumerate(candidates):
        at = dataclasses.replace(
            request, precision=precision, options=dataclasses.replace(request.options, precision=precision)
        )
        if backend.capabilities.converts:
            at = ensure_artifact(backend, at, tokenizer=folder.tokenizer)
        ok, figure = (True, "lossless") if precision == "fp32" else verdict(at.meta, kind)
        if ok or i == len(candidates) - 1:
            why = "; ".join([*missed, f"{precision}: {figure}"])
            return dataclasses.replace(choice, precision=precision, reason=f"{choice.reason}; {why}"), at
        log.warning("%s at %s misses the %s quality bar (%s); trying %s", folder.path, precision, kind, figure,
                    candidates[i + 1])  # fmt: skip
        missed.append(f"{precision} not kept ({figure})")
    raise AssertionError("unreachable: candidates is never empty")


def convert(
    model: str | os.PathLike[str],
    *,
    backend: str,
    out: str | os.PathLike[str],
    precision: str | None = None,
    **options: Any,
) -> Path:
    """Convert `model` for `backend` into a self-contained folder `out` that `load(out)` runs
    where only tinylm and that backend are installed (no torch, no original weights needed).

    Raises `CapabilityError` for backends that run checkpoints directly (nothing to convert).
    """
    from .artifacts import export_artifact

    folder, choice, request = _prepare(
        model, backend=backend, device=None, precision=precision, options=options, convert=True
    )
    if not choice.backend.capabilities.converts:
        raise CapabilityError(
            f"backend {choice.backend.name!r} runs checkpoints directly; there is nothing to convert. "
            "Fix: load the model folder itself with this backend."
        )
    return export_artifact(choice.backend, request, Path(out), tokenizer=folder.tokenizer)


class Model:
    """A loaded model: generate, stream, chat, embed and logits, on the chosen backend.

    Thread-safe: calls from several threads are serialised on the model's one session.
    """

    def __init__(
        self,
        folder: ModelFolder,
        choice: Choice,
        session: Session,
        *,
        artifact: Path | None = None,
        request: OpenRequest | None = None,
    ) -> None:
        self._folder = folder
        self._artifact = artifact
        self._choice = choice
        self._session: Session | None = session
        self._request = request  # to open the rows session at the first batched call
        self._lock = threading.RLock()
        self._constraint_tokenizer: Any = None
        self._batcher: Scheduler | None = None
        self._lookup_memory: NgramMemory | None = None  # speculative="lookup": this model's earlier outputs
        self._lookup_pace: Pace | None = None  # greedy speculative="lookup": what a pass costs, how often it pays
        self._batcher_lock = threading.Lock()
        self._constraint_lock = threading.Lock()
        self._generating: int | None = None  # the thread whose generation holds the session (while it runs)

    # what runs -------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The backend that actually runs this model."""
        return self._choice.backend.name

    @property
    def device(self) -> str:
        return self._choice.device

    @property
    def precision(self) -> str:
        return self._choice.precision

    @property
    def chosen_by(self) -> str:
        """Why this backend and precision run (`tinylm.selection.Choice.reason`): "argument", "TINYLM_BACKEND",
        "auto", "bench ranking", "the converted folder", or "auto (...)" naming the per-kind rule that picked the
        precision and the quality figure its artifact measured (docs/choosing-a-backend.md)."""
        return self._choice.reason

    @property
    def spec(self) -> ModelSpec:
        return self._folder.spec

    @property
    def path(self) -> Path:
        return self._folder.path

    @property
    def artifact(self) -> Path | None:
        """The converted artifact folder in use (backends that convert), else None."""
        return self._artifact

    @property
    def tokenizer(self) -> Tokenizer:
        return self._folder.tokenizer

    @property
    def context_length(self) -> int:
        return self.spec.max_positions

    def __repr__(self) -> str:
        return f"<tinylm.Model {self.path.name} backend={self.backend} device={self.device} precision={self.precision}>"

    # lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend session. Further calls raise."""
        with self._batcher_lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()
            if not isinstance(batcher.session, SerialRows):
                batcher.session.close()  # type: ignore[attr-defined]
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
            self._request = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> Session:
        if self._session is None:
            raise GenerationError("this model was closed. Fix: load it again with tinylm.load(...).")
        return self._session

    def _need(self, kind: str, what: str) -> None:
        if self.spec.kind != kind:
            does = "embeds text" if self.spec.kind == "encoder" else "generates text"
            use = "embed() (`tinylm embed`)" if self.spec.kind == "encoder" else "generate() or chat()"
            raise CapabilityError(
                f"{what} needs {_a(kind)} model, but {self.path.name} is {_a(self.spec.kind)} model "
                f"({self.spec.family}): it {does}. Fix: use {use} with this model, or load {_a(kind)} model."
            )

    # generation --------------------------------------------------------------------------------

    def _settings(
        self,
        options: GenerationOptions,
        *,
        processors: Sequence[LogitsProcessor] = (),
        constraint: Constraint | None = None,
        stream_text: bool = True,
    ) -> GenerationSettings:
        """The loop's settings: `options` over the model's generation_config.json, plus processors."""
        max_new_tokens, params = options.resolve(self._folder.generation_config)
        outside = [t for t, _ in params.logit_bias if t >= self.spec.vocab_size]
        if outside:
            raise InvalidArgument(
                "logit_bias",
                f"logit_bias names token {outside[0]}, outside this model's vocabulary of {self.spec.vocab_size}. "
                "Fix: use token ids from model.tokenizer.encode(...).",
            )
        ignore_eos = bool(options.ignore_eos)
        processors = tuple(processors)
        if constraint is not None:
            if options.stop:
                raise ConstraintError(
                    "stop strings cannot be combined with response_format: they could cut the structured output. "
                    "Fix: drop stop, the constraint ends the output itself."
                )
            processors += (constraint.processor(),)
            ignore_eos = False  # a complete structured output ends with end-of-sequence
        return GenerationSettings(
            max_new_tokens=max_new_tokens,
            sampling=params,
            stop=options.stop or (),
            stop_token_ids=() if ignore_eos else self._folder.stop_token_ids(),
            processors=processors,
            stream_text=stream_text,
            speculative=self._speculation(options, params),
        )

    def _speculation(self, options: GenerationOptions, params: SamplingParams) -> Callable[[], Speculator] | None:
        """What `speculative=` asks for, checked now: a maker of one generation's `Speculator`, or None."""
        chosen = options.speculative
        if chosen is None:
            return None
        check_rollback(self.spec, self._choice.backend.capabilities, self.backend, self.path.name)
        tokens = options.num_speculative_tokens or DEFAULT_TOKENS
        if chosen == "lookup":
            if self._lookup_memory is None:
                self._lookup_memory = NgramMemory()
            memory = self._lookup_memory
            if not params.greedy:
                # What is proposed, and whether a pass is made, changes how a sampled call's random stream is
                # consumed, and a seed must give the same text whatever the model generated before or the machine's
                # timings: sampling consults only the prompt and the text so far, with the token-only policy.
                return lambda: Speculator(PromptLookup(learns=memory), tokens=tokens)
            # greedy output is the same whatever is proposed: it also asks the memory, and keeps to the model's pace
            if self._lookup_pace is None:
                self._lookup_pace = Pace()
            pace = self._lookup_pace
            return lambda: Speculator(PromptLookup(memory=memory), tokens=tokens, pace=pace)
        if isinstance(chosen, Model):
            self._check_draft(chosen)
            return lambda: Speculator(DraftModel(chosen, params), tokens=tokens)
        return lambda: Speculator(chosen, tokens=tokens)

    def _check_draft(self, draft: Model) -> None:
        """A draft model: another loaded decoder with this model's vocabulary that can roll back."""
        if draft is self or draft._session is self._session:
            raise InvalidArgument(
                "speculative",
                "a model cannot be its own draft (they would share one cache). Fix: load a smaller model with the "
                "same tokenizer as the draft, or use speculative='lookup'.",
            )
        draft._live()
        draft._need("decoder", "a draft model")
        check_rollback(draft.spec, draft._choice.backend.capabilities, draft.backend, f"the draft {draft.path.name}")
        ours, theirs = self.tokenizer, draft.tokenizer
        sample = range(0, ours.vocab_size, max(1, ours.vocab_size // 512))
        if (
            draft.spec.vocab_size != self.spec.vocab_size
            or theirs.vocab_size != ours.vocab_size
            or any(ours.id_to_token(i) != theirs.id_to_token(i) for i in sample)
        ):
            raise InvalidArgument(
                "speculative",
                f"the draft {draft.path.name} does not share {self.path.name}'s vocabulary (vocab sizes "
                f"{draft.spec.vocab_size} and {self.spec.vocab_size}). Fix: use a draft made from this model "
                "(`tinylm prune` / `tinylm distill`) or one of its family with the same tokenizer.",
            )

    def _prompt_ids(self, prompt: str | Sequence[int], name: str = "prompt") -> list[int]:
        checked = arguments.prompt(prompt, vocab_size=self.spec.vocab_size, name=name)
        return self.tokenizer.encode(checked) if isinstance(checked, str) else checked

    def constraint(self, response_format: ResponseFormat) -> Constraint:
        """Compile a structured-output constraint for this model (validated before any generation).

        `response_format`: a JSON schema (dict, or OpenAI's {"type": "json_schema", ...} /
        {"type": "json_object"}), a pydantic model class, a compiled `re.Pattern`, or a list of choices.
        """
        from .structured import compile_constraint, constraint_tokenizer

        with self._constraint_lock:  # not the model's lock: a running generation holds that one
            if self._constraint_tokenizer is None:
                tokenizer_json = (self.path / "tokenizer.json").read_text(encoding="utf-8")
                eos = self._folder.stop_token_ids()
                self._constraint_tokenizer = constraint_tokenizer(
                    tokenizer_json, vocab_size=self.spec.vocab_size, eos_ids=eos
                )
        return compile_constraint(response_format, self._constraint_tokenizer, vocab_size=self.spec.vocab_size)

    def _not_inside_own_generation(self, what: str) -> None:
        """Refuse a call that needs this model's session from the thread whose generation holds it (a stream not
        finished yet, or a logits processor calling back): the model's lock would let it in and it would overwrite
        that generation's cache (or, for rows run one after another, wait for it forever)."""
        if self._generating == threading.get_ident():
            raise GenerationError(
                f"{what} was called while a generation of this model is still running in this thread (an open "
                "stream, or a logits processor calling back): it would overwrite that generation's cache. Fix: "
                "finish or close() the stream first, or load the model a second time for the other call."
            )

    def _run(self, prompt_ids: list[int], settings: GenerationSettings, draft: Model | None = None) -> Iterator[Chunk]:
        self._not_inside_own_generation("a generation")
        # a draft model's session is this generation's for as long as it runs
        with self._lock, draft._lock if draft is not None else contextlib.nullcontext():
            if draft is not None:
                draft._live()
            self._generating = threading.get_ident()
            try:
                yield from stream_tokens(
                    self._live(),
                    prompt_ids,
                    self.tokenizer,
                    settings,
                    context_length=self.context_length,
                    fast_step=self._choice.backend.capabilities.step,
                )
            finally:
                self._generating = None

    def _compile(self, response_format: ResponseFormat | Constraint | None) -> Constraint | None:
        if response_format is None or isinstance(response_format, Constraint):
            return response_format
        return self.constraint(response_format)

    def stream(
        self,
        prompt: str | Sequence[int],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        ignore_eos: bool | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: dict[int, float] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        speculative: Any = None,
        num_speculative_tokens: int | None = None,
        options: GenerationOptions | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
        response_format: ResponseFormat | None = None,
    ) -> Iterator[Chunk]:
        """Generate a continuation of `prompt` (text, or token ids), yielding text chunks as they are final.

        The settings are those of `GenerationOptions`, as keywords or as `options=` (keywords win). Unset
        settings come from the model's generation_config.json (when it samples), else greedy decoding with
        up to 256 new tokens. `response_format` constrains the output (see `constraint`). Everything is
        checked when called, before the first chunk. The last chunk carries `finish_reason` and `usage`.

        Raises:
            InvalidArgument: a setting or the prompt has a wrong type or value (the error names it).
        """
        self._need("decoder", "text generation (generate, stream, chat)")
        given = {name: value for name, value in locals().items() if name in OPTION_NAMES}
        return self._begin(prompt, GenerationOptions.of(options, **given), logits_processors, response_format)

    def _begin(
        self,
        prompt: str | Sequence[int],
        options: GenerationOptions,
        processors: Sequence[LogitsProcessor],
        response_format: ResponseFormat | Constraint | None,
        *,
        stream_text: bool = True,
    ) -> Iterator[Chunk]:
        """Check and compile everything now (not at the first next()); the chunks of one generation."""
        if not isinstance(processors, Sequence) or not all(callable(p) for p in processors):
            raise InvalidArgument(
                "logits_processors",
                "logits_processors must be a list of callables (logits, history) -> logits. Fix: pass e.g. [fn].",
            )
        constraint = self._compile(response_format)
        settings = self._settings(options, processors=processors, constraint=constraint, stream_text=stream_text)
        ids = self._prompt_ids(prompt)
        if not ids:  # the loop checks these too; here they are refused at the call, before any chunk
            raise GenerationError("the prompt is empty after tokenization. Fix: pass some text.")
        if len(ids) >= self.context_length:
            raise PromptTooLong(
                f"the prompt has {len(ids)} tokens but the model's context is {self.context_length}, leaving no "
                "room to generate. Fix: shorten the prompt (or the chat history)."
            )
        draft = options.speculative if isinstance(options.speculative, Model) else None
        return self._run(ids, settings, draft)

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        response_format: ResponseFormat | None = None,
        options: GenerationOptions | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
        **settings: Any,
    ) -> Completion:
        """Generate a continuation of `prompt` (text or token ids; the settings of `stream`): `stream` joined.

        With `response_format`, `Completion.parsed` holds the parsed output; an output cut by
        `max_new_tokens` before it was complete raises `ConstraintError`.
        """
        self._need("decoder", "text generation (generate, stream, chat)")
        unknown = sorted(settings.keys() - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"generate() got an unexpected keyword argument {unknown[0]!r}")
        checked = GenerationOptions.of(options, **settings)
        constraint = self._compile(response_format)
        # nothing streams: the text is decoded once at the end (the same text, see GenerationSettings.stream_text)
        done = join_chunks(self._begin(prompt, checked, logits_processors, constraint, stream_text=False))
        return done if constraint is None else self._parsed(done, constraint)

    @staticmethod
    def _parsed(done: Completion, constraint: Constraint, what: str = "") -> Completion:
        """The completion with its structured output parsed; `ConstraintError` when it was cut unfinished."""
        if done.finish_reason != "stop":
            raise ConstraintError(
                f"the {constraint.kind} output{' of ' + what if what else ''} was cut at "
                f"max_new_tokens={done.usage.completion_tokens} before it was complete "
                f"(so far: {done.text[:80]!r}). Fix: raise max_new_tokens."
            )
        return dataclasses.replace(done, parsed=constraint.parse(done.text))

    def plan_tools(self, tools: Any, tool_choice: Any = None, *, parallel_tool_calls: bool = True) -> ToolPlan:
        """Check OpenAI-style `tools` and `tool_choice` for this model (its template's tool format); see
        `tinylm.tools`. Raises `InvalidArgument` naming the argument."""
        parallel = arguments.flag(parallel_tool_calls, "parallel_tool_calls")
        return plan_tools(tools, tool_choice, template=self.tokenizer.chat_template, parallel=parallel)

    def _tool_plan(self, tools: Any, tool_choice: Any) -> ToolPlan | None:
        if isinstance(tools, ToolPlan):
            return tools
        if tools is None:
            if tool_choice is not None:
                raise InvalidArgument("tool_choice", "tool_choice needs tools. Fix: pass tools=[...] too.")
            return None
        return self.plan_tools(tools, tool_choice)

    def _chat(self, messages: Sequence[dict[str, Any]], plan: ToolPlan | None) -> tuple[list[dict[str, Any]], Any]:
        """The messages and the `tools` the chat template gets."""
        checked = arguments.messages(messages)
        if plan is None and any(m.get("tool_calls") or m["role"] == "tool" for m in checked):
            # earlier calls and results, with no tools offered now: rendered as a plan with none to call
            plan = ToolPlan((), "none", detect_format(self.tokenizer.chat_template))
        if plan is None:
            return checked, None
        return plan.render(checked), plan.template_tools()

    def chat_prompt(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Any = None,
        tool_choice: Any = None,
    ) -> str:
        """The prompt text the model's chat template makes of `messages` (to read; `chat_ids` gives what runs)."""
        rendered, template_tools = self._chat(messages, self._tool_plan(tools, tool_choice))
        return self.tokenizer.apply_chat_template(
            rendered, add_generation_prompt=add_generation_prompt, tools=template_tools
        )

    def chat_ids(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Any = None,
        tool_choice: Any = None,
    ) -> list[int]:
        """The token ids `chat()` feeds the model for `messages` (and `tools`, see `tinylm.tools`): the
        template's markers are control tokens, message content is text (a special token typed in a message
        never becomes one)."""
        # the template already wrote the special tokens it wants (e.g. BOS): none are added
        rendered, template_tools = self._chat(messages, self._tool_plan(tools, tool_choice))
        return self.tokenizer.encode_chat(rendered, add_generation_prompt=add_generation_prompt, tools=template_tools)

    def tool_constraint(self, plan: ToolPlan) -> Constraint | None:
        """The constraint of `plan`'s call (tool_choice "required" or a named function), else None."""
        if not plan.constrained:
            return None
        return self.constraint(Grammar(plan.grammar(), kind="tool call"))

    def _chat_run(
        self, messages: Sequence[dict[str, Any]], tools: Any, tool_choice: Any, options: dict[str, Any]
    ) -> tuple[list[int], ToolPlan | None, dict[str, Any]]:
        plan = self._tool_plan(tools, tool_choice)
        ids = self.chat_ids(messages, tools=plan)
        constraint = self.tool_constraint(plan) if plan is not None else None
        if constraint is not None:
            if options.get("response_format") is not None:
                raise ConstraintError(
                    f"tool_choice={plan.choice!r} constrains the reply to a tool call; it cannot also follow "
                    "response_format. Fix: drop one of them (tool_choice='auto' leaves the reply free)."
                )
            options = {**options, "response_format": constraint}
        return ids, plan, options

    def stream_chat(
        self, messages: Sequence[dict[str, Any]], *, tools: Any = None, tool_choice: Any = None, **options: Any
    ) -> Iterator[Chunk]:
        """Stream the assistant's reply to `messages` (role/content dicts) using the model's chat template;
        the options of `stream`. With `tools` (OpenAI's form) and `tool_choice` ("auto", "none", "required" or
        {"type": "function", "function": {"name": ...}}), text that may be a call is held back and the calls
        come on the last chunk (`Chunk.tool_calls`; see `tinylm.tools`)."""
        self._need("decoder", "text generation (generate, stream, chat)")
        ids, plan, options = self._chat_run(messages, tools, tool_choice, options)
        chunks = self.stream(ids, **options)
        return chunks if plan is None else plan.stream(chunks)

    def chat(
        self, messages: Sequence[dict[str, Any]], *, tools: Any = None, tool_choice: Any = None, **options: Any
    ) -> Completion:
        """The assistant's reply to `messages`: `stream_chat` joined (the options of `generate`). With `tools`,
        `Completion.tool_calls` holds the calls the model made (`finish_reason` "tool_calls")."""
        self._need("decoder", "text generation (generate, stream, chat)")
        ids, plan, options = self._chat_run(messages, tools, tool_choice, options)
        done = self.generate(ids, **options)
        if plan is None:
            return done
        if plan.constrained:
            done = dataclasses.replace(done, parsed=None)
        return plan.finish(done)

    def stream_choices(
        self,
        prompt: str | Sequence[int],
        *,
        n: int,
        options: GenerationOptions | None = None,
        response_format: ResponseFormat | None = None,
        **settings: Any,
    ) -> Iterator[tuple[int, Chunk]]:
        """`n` choices of a continuation of `prompt` (OpenAI's `n`), as (choice index, chunk) pairs; the settings
        of `stream`. Choice i is seeded from `seed` as `tinylm.choices.row_seed` documents."""
        from .choices import check_n, stream_choices

        self._need("decoder", "text generation (generate, stream, chat)")
        n = check_n(n)
        unknown = sorted(settings.keys() - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"stream_choices() got an unexpected keyword argument {unknown[0]!r}")
        checked = GenerationOptions.of(options, **settings)
        return stream_choices(self, prompt, n=n, options=checked, response_format=self._compile(response_format))

    def generate_choices(self, prompt: str | Sequence[int], *, n: int, **settings: Any) -> list[Completion]:
        """`stream_choices` joined: one `Completion` per choice, in order."""
        rows: dict[int, list[Chunk]] = {}
        for index, chunk in self.stream_choices(prompt, n=n, **settings):
            rows.setdefault(index, []).append(chunk)
        return [join_chunks(iter(rows[i])) for i in sorted(rows)]

    # many sequences at once ------------------------------------------------------------------

    @property
    def batches_rows(self) -> bool:
        """True when this model decodes batched rows together (its backend declares `Capabilities(rows=True)`,
        with `row_states` covering every state kind the model keeps); False when `generate_batch` and the
        batcher run them one after another on its single session."""
        caps = self._choice.backend.capabilities
        switch = switch_length(self.spec.rope) if self.spec.kind == "decoder" else None
        # longrope: a row crossing its switch length needs its whole sequence rotated again (see rope_switch.py),
        # which only the single-sequence session does
        kept = set(self.spec.state_kinds) <= set(caps.row_states)
        return caps.rows and kept and (switch is None or switch >= self.context_length)

    def batcher(self, *, max_rows: int | None = None, max_queue: int | None = None) -> Scheduler:
        """The model's scheduler (`tinylm.batching.Scheduler`): thread-safe `submit(prompt_ids, settings)` ->
        a stream of chunks, decoded in one continuous batch with every other row submitted (what a server
        needs; `submit()` below takes the options of `stream`).

        Made at the first call, with a rows session of `max_rows` rows (default `DEFAULT_BATCH_SIZE`) opened
        then; later calls return it. When it is idle and another `max_rows` is asked, one its rows session holds
        reuses that session (the scheduler then admits at most `max_rows` rows: no session to open, and the
        prompt heads it holds stay), one larger than it replaces it with a new scheduler and rows session of that
        size. A busy batcher (rows live, being admitted or waiting) is returned at its current size.
        `max_queue`: rows that may wait for a slot before `submit` raises `QueueFull` (None: keep the bound set
        before, none at first).
        On a backend without rows (see `batches_rows`) the scheduler runs the rows one after another on the
        model's own session: correct, not faster.
        """
        self._need("decoder", "batched generation")
        if max_rows is not None:
            max_rows = arguments.positive_int(max_rows, "max_rows", example="max_rows=8")
        if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0):
            raise InvalidArgument(
                "max_queue", f"max_queue must be an integer >= 0 or None, got {max_queue!r}. Fix: pass e.g. 32."
            )
        with self._batcher_lock:
            return self._batcher_for(max_rows, max_queue)

    def _batcher_for(self, max_rows: int | None, max_queue: int | None) -> Scheduler:
        """`batcher`'s choice, with `_batcher_lock` held (callers that submit hold it until they have)."""
        current = self._batcher
        wanted = max_rows or (current.max_rows if current is not None else DEFAULT_BATCH_SIZE)
        if not self.batches_rows:
            wanted = 1
        busy = current is not None and current.busy
        if current is not None and (busy or wanted <= current.session.max_rows):
            if not busy:  # a size its rows session holds: only how many rows it admits changes
                current.max_rows = wanted
            if max_queue is not None:
                current.max_queue = max_queue
            return current
        if current is not None:
            if max_queue is None:
                max_queue = current.max_queue
            current.close(
                "this batcher was replaced by one of more rows (model.batcher(max_rows=...)).",
                "submit through model.batcher() (or model.submit), which returns the current one.",
            )
            if not isinstance(current.session, SerialRows):
                current.session.close()  # type: ignore[attr-defined]
            self._batcher = None
        self._batcher = Scheduler(
            self._rows_session(wanted), self.tokenizer, context_length=self.context_length, max_queue=max_queue
        )
        return self._batcher

    def _submit_rows(
        self,
        rows: Sequence[tuple[Sequence[int], GenerationSettings, Callable[[], None] | None]],
        *,
        max_rows: int | None = None,
        bounded: bool = True,
        sinks: Sequence[RowSink] | None = None,
    ) -> list[RowStream]:
        """Submit `rows` to the batcher of `max_rows` (see `batcher`) in one step: no other call can replace the
        batcher between choosing it and queueing them (its callers have checked that this model decodes)."""
        if not self.batches_rows:  # its rows run on the model's own session, which that generation holds
            self._not_inside_own_generation("a batched call")
        with self._batcher_lock:
            return self._batcher_for(max_rows, None).submit_many(rows, bounded=bounded, sinks=sinks)

    def _rows_session(self, rows: int) -> RowSession:
        if not self.batches_rows:
            log.info(
                "backend %s decodes one sequence at a time for %s: batched rows run one after another",
                self.backend,
                self.path.name,
            )
            return SerialRows(self._live(), fast_step=self._choice.backend.capabilities.step, lock=self._lock)
        if self._request is None:
            raise GenerationError("this model was closed. Fix: load it again with tinylm.load(...).")
        session = self._choice.backend.open(dataclasses.replace(self._request, rows=rows))
        if isinstance(self._request.weights_loader, WeightsOnce):
            self._request.weights_loader.forget()
        return session  # type: ignore[return-value]

    def submit(
        self,
        prompt: str | Sequence[int],
        *,
        options: GenerationOptions | None = None,
        response_format: ResponseFormat | Constraint | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
        stream_text: bool = True,
        **settings: Any,
    ) -> RowStream:
        """`stream`, through the model's batcher: thread-safe, and decoded together with every other row
        submitted (from any thread) — the tokens are those `stream` gives. Everything is checked now; the
        stream's `close()` (or dropping it) cancels the row and frees its slot. Raises `QueueFull` when the
        batcher's queue is full (see `batcher`)."""
        self._need("decoder", "text generation (generate, stream, chat)")
        unknown = sorted(settings.keys() - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"submit() got an unexpected keyword argument {unknown[0]!r}")
        checked = GenerationOptions.of(options, **settings)
        ids, row_settings = self._row(prompt, checked, logits_processors, self._compile(response_format), stream_text)
        return self._submit_rows([(ids, row_settings, None)])[0]

    def _row(
        self,
        prompt: str | Sequence[int],
        options: GenerationOptions,
        processors: Sequence[LogitsProcessor],
        constraint: Constraint | None,
        stream_text: bool,
        name: str = "prompt",
    ) -> tuple[list[int], GenerationSettings]:
        """One row's prompt ids and settings, checked as `stream` checks them (before anything runs)."""
        if options.speculative is not None:
            raise CapabilityError(
                "speculative decoding runs one sequence at a time; batched calls (generate_batch, chat_batch, "
                "submit, the batcher) decode one token per row and step. Fix: drop speculative= here, or call "
                "generate()/stream() per prompt to speculate."
            )
        if not isinstance(processors, Sequence) or not all(callable(p) for p in processors):
            raise InvalidArgument(
                "logits_processors",
                "logits_processors must be a list of callables (logits, history) -> logits. Fix: pass e.g. [fn].",
            )
        settings = self._settings(options, processors=processors, constraint=constraint, stream_text=stream_text)
        ids = self._prompt_ids(prompt, name)
        if not ids:
            raise GenerationError(f"{name} is empty after tokenization. Fix: pass some text.")
        if len(ids) >= self.context_length:
            raise PromptTooLong(
                f"{name} has {len(ids)} tokens but the model's context is {self.context_length}, leaving no "
                "room to generate. Fix: shorten the prompt (or the chat history)."
            )
        return ids, settings

    def generate_batch(
        self,
        prompts: Sequence[str | Sequence[int]],
        *,
        batch_size: int | None = None,
        response_format: ResponseFormat | None = None,
        options: GenerationOptions | None = None,
        logits_processors: Sequence[LogitsProcessor] = (),
        on_result: Callable[[int, Completion], None] | None = None,
        **settings: Any,
    ) -> list[Completion]:
        """`generate` for many prompts at once: the completions in the order of `prompts`.

        Up to `batch_size` rows (default `DEFAULT_BATCH_SIZE`) are decoded together in one forward pass per
        token, and a finished row's slot goes to the next prompt at once (continuous batching). While the model's
        batcher already runs rows (a server, `submit`), these join them at its current size. The settings
        (those of `generate`, as keywords or `options=`) apply to every row; each row has its own sampler, so
        with a `seed` every row samples as `generate(prompt, seed=...)` alone would, and each row yields exactly
        the tokens `generate` gives it. `on_result(index, completion)` is called as each row finishes (in
        finishing order, from this thread), e.g. for a progress bar.

        On a backend that does not declare rows (`batches_rows` is False: e.g. Core ML, or a longrope model
        whose rotary table switches within the context) the rows run one after another through the same loop:
        the same completions, without the speed-up.

        Everything is checked before any row runs (a bad prompt names its index). With `response_format`,
        a row cut by `max_new_tokens` before its output was complete raises `ConstraintError`, as `generate`.
        `logits_processors` are shared by every row: pass stateless ones.
        """
        self._need("decoder", "text generation (generate_batch, chat_batch)")
        unknown = sorted(settings.keys() - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"generate_batch() got an unexpected keyword argument {unknown[0]!r}")
        if isinstance(prompts, str | bytes) or not isinstance(prompts, Sequence):
            raise InvalidArgument(
                "prompts",
                f"prompts must be a list of prompts (texts or token-id lists), got {type(prompts).__name__}. "
                "Fix: pass e.g. ['Hello', 'Hi there'] (one prompt: use generate()).",
            )
        if batch_size is not None:
            batch_size = arguments.positive_int(batch_size, "batch_size", example="batch_size=8")
        if on_result is not None and not callable(on_result):
            raise InvalidArgument("on_result", "on_result must be callable (index, completion). Fix: pass a function.")
        checked = GenerationOptions.of(options, **settings)
        constraint = self._compile(response_format)
        rows = [
            self._row(p, checked, logits_processors, constraint, stream_text=False, name=f"prompts[{i}]")
            for i, p in enumerate(prompts)
        ]
        if not rows:
            return []
        finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        streams = self._submit_rows(
            [(ids, row_settings, functools.partial(finished.put, i)) for i, (ids, row_settings) in enumerate(rows)],
            max_rows=batch_size or DEFAULT_BATCH_SIZE,
            bounded=False,
        )
        results: list[Completion | None] = [None] * len(streams)
        try:
            for _ in streams:
                i = finished.get()
                done = join_chunks(streams[i])
                if constraint is not None:
                    done = self._parsed(done, constraint, f"prompts[{i}]")
                results[i] = done
                if on_result is not None:
                    on_result(i, done)
        finally:
            for stream in streams:
                stream.close()  # rows still running when this raised: cancelled, their slots freed
        return [r for r in results if r is not None]

    def chat_batch(self, conversations: Sequence[Sequence[dict[str, Any]]], **options: Any) -> list[Completion]:
        """`chat` for many conversations at once: `generate_batch` of their prompts (the same keywords)."""
        self._need("decoder", "text generation (generate_batch, chat_batch)")
        if isinstance(conversations, str | bytes) or not isinstance(conversations, Sequence):
            raise InvalidArgument(
                "conversations",
                "conversations must be a list of message lists. Fix: pass e.g. [[{'role': 'user', 'content': 'Hi'}]].",
            )
        return self.generate_batch([self.chat_ids(c) for c in conversations], **options)

    # scoring and embeddings -----------------------------------------------------------------

    def logits(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Next-token logits (T, V) float32 at every position of `token_ids` (a fresh sequence)."""
        self._need("decoder", "logits()")
        if isinstance(token_ids, str):
            raise GenerationError("logits() takes token ids. Fix: pass model.tokenizer.encode(text).")
        ids = np.asarray(self._prompt_ids(token_ids, "token_ids"), dtype=np.int64).reshape(1, -1)  # (1, T)
        if ids.size == 0 or ids.size > self.context_length:
            raise GenerationError(
                f"logits() needs 1..{self.context_length} token ids, got {ids.size}. Fix: pass a shorter sequence."
            )
        self._not_inside_own_generation("logits()")
        with self._lock:
            session = self._live()
            session.reset()
            return session.forward(ids, all_positions=True)[0]

    def embed(self, texts: str | Sequence[str], *, normalize: bool = True, batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings (N, H) float32, pooled as the model's sentence-transformers config says.

        A single string gives shape (H,).
        """
        self._need("encoder", "embed()")
        items, single = arguments.texts(texts)
        normalize = arguments.flag(normalize, "normalize")
        batch_size = arguments.positive_int(batch_size, "batch_size", example="batch_size=32")
        pooling = self.spec.pooling
        out: list[np.ndarray] = []
        # texts of similar lengths batched together, as sentence-transformers does: each batch is padded to its
        # longest text, so a list of mixed lengths in its own order pays for padding it does not need
        all_ids, all_types = self.tokenizer.encode_batch(items) if items else ([], [])
        order = sorted(range(len(items)), key=lambda i: len(all_ids[i]))
        with self._lock:
            session = self._live()
            for start in range(0, len(items), batch_size):
                batch = order[start : start + batch_size]
                ids, types = [all_ids[i] for i in batch], [all_types[i] for i in batch]
                width = max(len(x) for x in ids)
                pad = self.spec.pad_token_id or 0
                tokens = np.full((len(ids), width), pad, dtype=np.int64)  # (B, T)
                mask = np.zeros((len(ids), width), dtype=np.int64)
                type_ids = np.zeros((len(ids), width), dtype=np.int64)
                for i, (row, trow) in enumerate(zip(ids, types)):
                    tokens[i, : len(row)], mask[i, : len(row)], type_ids[i, : len(row)] = row, 1, trow
                hidden = session.embed(tokens, mask, type_ids)  # (B, T, H)
                out.append(pool(hidden, mask, pooling.mode if pooling else "mean"))
        vectors = np.concatenate(out, axis=0) if out else np.zeros((0, self.spec.hidden_size), np.float32)
        vectors = vectors[np.argsort(order)] if out else vectors  # back in the texts' order
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        vectors = vectors.astype(np.float32)
        return vectors[0] if single else vectors


def _a(word: str) -> str:
    """`word` with its indefinite article: "an encoder", "a decoder"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states (B, T, H) with the attention mask (B, T) into sentence vectors (B, H)."""
    m = mask[..., None].astype(hidden.dtype)  # (B, T, 1)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)
    if mode == "last":
        last = mask.sum(axis=1) - 1  # (B,)
        return hidden[np.arange(hidden.shape[0]), last]
    return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
