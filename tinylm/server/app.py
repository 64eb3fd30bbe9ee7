"""The FastAPI application: OpenAI's routes over tinylm models."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import arguments
from ..choices import check_n, row_seed, stream_choices
from ..errors import CapabilityError, ChatTemplateError, GenerationError, InvalidArgument, TinyLMError
from ..generation import Chunk
from ..model import Model
from ..tools import CallStream, ToolPlan
from .errors import APIError, error_response
from .loop_rows import BatchedRows
from .schemas import OPENAI_NAMES, ChatRequest, CompletionRequest, EmbeddingRequest, SamplingFields
from .shapes import Choice, chat_logprobs, text_logprobs, tool_call_deltas, usage
from .slots import Lease, Slots, stream_blocking

__all__ = ["ServerConfig", "create_app", "serve", "DEFAULT_PARALLEL"]

log = logging.getLogger("tinylm.server")

#: Requests decoded at once per model by default (`tinylm serve --parallel`): on a CPU a decode step of 4 rows
#: costs little more than one (each weight is read once per step), while each row holds its own KV cache and a
#: long prompt's prefill holds up the others' next token; docs/server-load.md has the measurements.
DEFAULT_PARALLEL = 4


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Server limits and security settings.

    Attributes:
        api_key: when set, every route but /health needs `Authorization: Bearer <api_key>`.
        parallel: requests decoded at once per model, in one continuous batch (`Model.batcher`): a finished
            request's row goes to the next waiting one between two decode steps. 1 runs one request at a time on
            the model's own session (the server before batching). Concurrent embedding requests are embedded
            together in one call. On a backend without rows the batch runs its rows one after another.
        max_queue: requests allowed to wait per model (beyond the `parallel` running) before answering 429.
        max_body_bytes: largest accepted request body (413 beyond).
        default_max_tokens: completion length when the request names none.
    """

    api_key: str | None = None
    parallel: int = DEFAULT_PARALLEL
    max_queue: int = 32
    max_body_bytes: int = 1_000_000
    default_max_tokens: int = 256


class _BodyLimit:
    """ASGI middleware: read the request body (declared or chunked) up to `limit` bytes, 413 beyond.

    The body is read here, before the app sees it, so an oversized chunked upload is refused as such (not as a
    body the app could not parse); the app then gets it as one message, and later messages (the client's
    disconnect) pass through.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = APIError(413, f"the request body exceeds {self.limit} bytes. Fix: send a shorter request.")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await error_response(too_big)(scope, receive, send)
            return
        parts: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away while sending
                return
            parts.append(message.get("body", b""))
            seen += len(parts[-1])
            if seen > self.limit:
                await error_response(too_big)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class _LeasedStream(StreamingResponse):
    """A server-sent event stream that holds a model slot: released here if the stream never started."""

    def __init__(self, events: AsyncIterator[str], lease: Lease) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:  # a client that went away: stop the generation now, not at garbage collection
                await close()
            if not self.lease.handed_over:
                self.lease.release()


def _sse(payload: Mapping[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def api_error(exc: Exception) -> APIError:
    """The HTTP error for an exception: a caller's mistake is a 400 naming the field, anything else a 500."""
    if isinstance(exc, GenerationError | ChatTemplateError | CapabilityError):
        param = None
        if isinstance(exc, InvalidArgument):  # e.g. "messages[0]['content']" -> "messages"
            name = exc.argument.split("[", 1)[0]
            param = OPENAI_NAMES.get(name, name)
        return APIError(400, str(exc), param=param)
    return APIError(500, f"{exc}" if isinstance(exc, TinyLMError) else "internal error", type="server_error")


async def disconnected(request: Request) -> None:
    """Return once the client has gone away (the request's body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)  # a transport that answers at once must not spin the event loop


def create_app(models: Mapping[str, Model], config: ServerConfig | None = None) -> FastAPI:
    """An ASGI app serving `models` (id -> loaded Model)."""
    config = config or ServerConfig()
    app = FastAPI(title="tinylm", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    parallel = arguments.positive_int(config.parallel, "parallel", example="parallel=4")
    slots = {name: Slots(parallel=parallel, max_queue=config.max_queue) for name in models}
    # a thread per running request (it waits on its row's stream) and one per model for embeddings
    executor = ThreadPoolExecutor(max_workers=max(1, len(models) * (parallel + 1)), thread_name_prefix="tinylm-serve")
    embedders = {name: _Embedder(model, executor) for name, model in models.items() if model.spec.kind == "encoder"}
    created = int(time.time())

    # errors ------------------------------------------------------------------------------------

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        kind = first.get("type", "")
        if kind == "json_invalid" or (not where and kind in ("model_attributes_type", "dict_type")):
            # the location of invalid JSON is a character offset, not a field: no param
            message = "the request body is not valid JSON: send a JSON object with Content-Type: application/json"
            where = ""
        elif kind == "extra_forbidden":
            message = f"unsupported field {where!r}: tinylm does not implement it (remove it from the request)"
        else:
            message = f"{where or 'body'}: {first.get('msg', 'invalid value')}"
        return error_response(APIError(400, message, param=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(APIError(exc.status_code, str(exc.detail), code=str(exc.status_code)))

    @app.exception_handler(TinyLMError)
    async def _tinylm(request: Request, exc: TinyLMError) -> JSONResponse:
        return error_response(api_error(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return error_response(api_error(exc))  # a 500 in OpenAI's shape; the fuzz tests keep this path unused

    # helpers -------------------------------------------------------------------------------------

    async def authorized(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        # headers arrive as latin-1 text: compare bytes, so a non-ASCII header is a wrong key, not a TypeError
        given = token.strip().encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, config.api_key.encode("utf-8")):
            raise APIError(
                401, "missing or wrong API key. Fix: send 'Authorization: Bearer <key>'.", code="invalid_api_key"
            )

    def pick(name: str, kind: str) -> tuple[Model, Slots]:
        if name not in models:
            raise APIError(
                404,
                f"model {name!r} is not served here; served: {', '.join(sorted(models))}",
                param="model",
                code="model_not_found",
            )
        model = models[name]
        if model.spec.kind != kind:
            use = "/v1/embeddings" if model.spec.kind == "encoder" else "/v1/chat/completions or /v1/completions"
            article = "an" if model.spec.kind == "encoder" else "a"
            raise APIError(
                400,
                f"model {name!r} is {article} {model.spec.kind} model, which this route cannot serve. "
                f"Fix: send this request to {use}, or name {'a decoder' if kind == 'decoder' else 'an encoder'} model.",
                param="model",
            )
        return model, slots[name]

    def prompt_ids(model: Model, ids: list[int]) -> list[int]:
        if len(ids) >= model.context_length:
            raise APIError(
                400,
                f"the prompt has {len(ids)} tokens; this model's context is {model.context_length}. "
                "Fix: shorten the prompt or the conversation.",
                param="messages",
                code="context_length_exceeded",
            )
        return ids

    # (choice index, chunk) of the request's n choices: a blocking iterator (run in a worker thread) or rows of
    # the model's continuous batch (delivered to the loop by the scheduler)
    Rows = Iterator[tuple[int, Chunk]] | BatchedRows

    def generation(model: Model, ids: list[int], req: SamplingFields, plan: ToolPlan | None = None) -> Rows:
        """The request's n choices, with everything that can refuse them checked now (a 400 before any byte):
        the settings, the response_format or the tool call's grammar (compiled here), their combinations."""
        fmt = req.constrained()
        options = req.options(default_max_tokens=config.default_max_tokens)
        constraint = model.constraint(fmt) if fmt else None
        if plan is not None and plan.constrained:
            if constraint is not None:
                raise APIError(
                    400,
                    f"tool_choice {plan.choice!r} constrains the reply to a tool call; it cannot also follow "
                    "response_format. Fix: drop one of them (tool_choice 'auto' leaves the reply free).",
                    param="tool_choice",
                )
            constraint = model.tool_constraint(plan)
        if parallel == 1:
            rows = stream_choices(model, ids, n=req.n, options=options, response_format=constraint)
        else:  # each choice a row of the model's continuous batch, checked now (refused before the 200)
            choices = [
                model._row(ids, dataclasses.replace(options, seed=row_seed(options.seed, i)), (), constraint, True)
                for i in range(check_n(req.n))
            ]
            rows = BatchedRows(model, parallel, choices)
        if plan is None:
            return rows
        calls = [CallStream(plan) for _ in range(req.n)]
        if isinstance(rows, BatchedRows):
            rows.calls = calls
            return rows
        return with_calls(rows, calls)

    def opened(lease: Lease, rows: Rows) -> AsyncIterator[tuple[int, Chunk]]:
        """The rows' chunks in the loop; from the first, the lease is theirs to release."""
        return rows.open(lease) if isinstance(rows, BatchedRows) else stream_blocking(lease, executor, rows)

    def with_calls(rows: Iterator[tuple[int, Chunk]], calls: list[CallStream]) -> Iterator[tuple[int, Chunk]]:
        """The rows with each choice's calls parsed by its own parser (rows may come interleaved)."""
        try:
            for i, chunk in rows:
                yield i, calls[i].feed(chunk)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:  # a client that went away: stop the generations here, in the worker thread
                close()

    async def complete(request: Request, slot: Slots, rows: Rows, n: int) -> list[Choice]:
        """Run the generations to their end, or until the client goes away (then they stop at the next token)."""
        lease = await slot.acquire()
        gone = asyncio.ensure_future(disconnected(request))
        choices = [Choice() for _ in range(n)]
        try:
            async with aclosing(opened(lease, rows)) as items:
                async for index, chunk in items:
                    if gone.done():
                        raise APIError(499, "the client closed the request", code="client_closed_request")
                    choices[index].add(chunk)
        finally:
            gone.cancel()
            if gone.done() and not gone.cancelled():
                gone.exception()  # retrieved: a receive that failed means the client is gone too
            if not lease.handed_over:
                lease.release()
        if any(c.finish_reason is None for c in choices):
            raise APIError(500, "generation ended without a finish reason", type="server_error")
        return choices

    def total(choices: list[Choice]) -> dict[str, int]:
        return usage(choices[0].prompt_tokens, sum(c.completion_tokens for c in choices))

    async def stream_events(slot: Slots, events: Callable[[Lease], AsyncIterator[str]]) -> StreamingResponse:
        """Admit the request (429 when the queue is full) before the 200, then stream its events."""
        lease = await slot.acquire()
        return _LeasedStream(events(lease), lease)

    async def guarded(chunks: AsyncIterator[tuple[int, Chunk]]) -> AsyncIterator[tuple[int, Chunk] | str]:
        """The chunks; a failure after the 200 (nothing known can fail there) ends the stream with an error
        event in OpenAI's shape instead of a cut connection."""
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as e:
            if not isinstance(e, TinyLMError | APIError):
                log.exception("generation failed after the response started")
            error = e if isinstance(e, APIError) else api_error(e)
            yield _sse(error.body())

    async def relay(lease: Lease, chunks: Rows) -> AsyncIterator[tuple[int, Chunk]]:
        async with aclosing(opened(lease, chunks)) as items:
            async for chunk in items:
                yield chunk

    # routes --------------------------------------------------------------------------------------

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": sorted(models)}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": f"tinylm/{m.backend}"}
                for name, m in sorted(models.items())
            ],
        }

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
        model, slot = pick(req.model, "decoder")
        plan = None
        if req.tools is not None:
            parallel = req.parallel_tool_calls is not False
            plan = model.plan_tools(req.tools, req.tool_choice, parallel_tool_calls=parallel)
        elif req.tool_choice is not None:
            fix = "tool_choice needs tools. Fix: send tools too, or drop tool_choice."
            raise APIError(400, fix, param="tool_choice")
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        ids = prompt_ids(model, model.chat_ids(messages, tools=plan))  # message content is text: no forged turns
        rows = generation(model, ids, req, plan)
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "created": now, "model": req.model}
        tokens = model.tokenizer
        if not req.stream:
            done = await complete(request, slot, rows, req.n)
            choices = []
            for i, c in enumerate(done):
                message: dict[str, Any] = {"role": "assistant", "content": c.text}
                if c.tool_calls:  # OpenAI's content is null when the reply only calls tools
                    message.update(content=c.text or None, tool_calls=[call.to_openai() for call in c.tool_calls])
                logprobs = chat_logprobs(tokens, c.logprobs) if req.logprobs else None
                choices.append({"index": i, "message": message, "finish_reason": c.finish_reason, "logprobs": logprobs})
            return {**head, "object": "chat.completion", "choices": choices, "usage": total(done)}
        include_usage = req.stream_options is not None and req.stream_options.include_usage

        async def events(lease: Lease) -> AsyncIterator[str]:
            base = {**head, "object": "chat.completion.chunk"}
            for i in range(req.n):
                first = {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                yield _sse({**base, "choices": [first]})
            done = [Choice() for _ in range(req.n)]
            async for item in guarded(relay(lease, rows)):
                if isinstance(item, str):  # an error event
                    yield item
                    continue
                i, chunk = item
                done[i].add(chunk)
                logprobs = chat_logprobs(tokens, chunk.logprobs) if req.logprobs else None
                if chunk.text or (logprobs and chunk.logprobs):
                    delta = {"index": i, "delta": {"content": chunk.text}, "finish_reason": None, "logprobs": logprobs}
                    yield _sse({**base, "choices": [delta]})
                for call_delta in tool_call_deltas(chunk.tool_calls):
                    yield _sse({**base, "choices": [{"index": i, "delta": call_delta, "finish_reason": None}]})
                if chunk.finish_reason is not None:
                    yield _sse({**base, "choices": [{"index": i, "delta": {}, "finish_reason": chunk.finish_reason}]})
            if include_usage and all(c.finish_reason is not None for c in done):
                yield _sse({**base, "choices": [], "usage": total(done)})
            yield _sse("[DONE]")

        return await stream_events(slot, events)

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(req: CompletionRequest, request: Request) -> Any:
        model, slot = pick(req.model, "decoder")
        ids = prompt_ids(model, model.tokenizer.encode(arguments.text(req.prompt, "prompt")))
        rows = generation(model, ids, req)
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "text_completion", "created": now, "model": req.model}
        tokens = model.tokenizer
        wanted = req.logprobs is not None
        if not req.stream:
            done = await complete(request, slot, rows, req.n)
            choices = [
                {
                    "index": i,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "logprobs": text_logprobs(tokens, c.logprobs) if wanted else None,
                }
                for i, c in enumerate(done)
            ]
            return {**head, "choices": choices, "usage": total(done)}
        include_usage = req.stream_options is not None and req.stream_options.include_usage

        async def events(lease: Lease) -> AsyncIterator[str]:
            done = [Choice() for _ in range(req.n)]
            async for item in guarded(relay(lease, rows)):
                if isinstance(item, str):  # an error event
                    yield item
                    continue
                i, chunk = item
                offset = len(done[i].text)
                done[i].add(chunk)
                if chunk.text or chunk.finish_reason is not None or (wanted and chunk.logprobs):
                    logprobs = text_logprobs(tokens, chunk.logprobs, offset=offset) if wanted else None
                    choice = {"index": i, "text": chunk.text, "finish_reason": chunk.finish_reason}
                    yield _sse({**head, "choices": [{**choice, "logprobs": logprobs}]})
            if include_usage and all(c.finish_reason is not None for c in done):
                yield _sse({**head, "choices": [], "usage": total(done)})
            yield _sse("[DONE]")

        return await stream_events(slot, events)

    @app.post("/v1/embeddings", dependencies=[Depends(authorized)])
    async def embeddings(req: EmbeddingRequest) -> Any:
        model, slot = pick(req.model, "encoder")
        texts, _ = arguments.texts(req.input)
        lease = await slot.acquire()
        try:
            vectors = await embedders[req.model].embed(texts)
        finally:
            lease.release()
        tokens = sum(len(ids) for ids in model.tokenizer.encode_batch(texts)[0])
        if req.encoding_format == "base64":  # little-endian float32, as OpenAI sends it
            encoded: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            encoded = [v.tolist() for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
        return {
            "object": "list",
            "data": data,
            "model": req.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app


class _Embedder:
    """Concurrent embedding requests to one model, embedded together: the texts of every request that arrives
    while a call runs go into the next call (one `Model.embed` over all of them), each request gets its rows."""

    def __init__(self, model: Model, executor: ThreadPoolExecutor) -> None:
        self.model, self.executor = model, executor
        self.pending: list[tuple[list[str], asyncio.Future[Any]]] = []
        self.running = False
        self.task: asyncio.Future[None] | None = None  # the drain running now (kept: the loop holds tasks weakly)

    async def embed(self, texts: list[str]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((texts, future))
        if not self.running:
            self.running = True
            self.task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                texts = [t for request, _ in batch for t in request]
                try:
                    vectors = await loop.run_in_executor(self.executor, self.model.embed, texts)
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                start = 0
                for request, future in batch:
                    if not future.done():  # a request whose client went away is cancelled
                        future.set_result(vectors[start : start + len(request)])
                    start += len(request)
        finally:
            self.running = False


def serve(
    models: Mapping[str, Model], *, host: str = "127.0.0.1", port: int = 8000, config: ServerConfig | None = None
) -> None:
    """Run the server with uvicorn until interrupted (binds to loopback unless told otherwise)."""
    import uvicorn

    uvicorn.run(create_app(models, config), host=host, port=port, log_level="info")
