"""The FastAPI application: OpenAI's routes over tinylm models."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CapabilityError, ChatTemplateError, GenerationError, TinyLMError
from ..generation import Chunk
from ..model import Model
from .errors import APIError, error_response
from .schemas import ChatRequest, CompletionRequest, EmbeddingRequest, SamplingFields
from .slots import Slots, run_blocking, stream_blocking

__all__ = ["ServerConfig", "create_app", "serve"]


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Server limits and security settings.

    Attributes:
        api_key: when set, every route but /health needs `Authorization: Bearer <api_key>`.
        max_queue: requests allowed to wait per model before answering 429.
        max_body_bytes: largest accepted request body (413 beyond).
        default_max_tokens: completion length when the request names none.
    """

    api_key: str | None = None
    max_queue: int = 32
    max_body_bytes: int = 1_000_000
    default_max_tokens: int = 256


class _BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413 (declared or streamed)."""

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
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_big
            return message

        try:
            await self.app(scope, limited, send)
        except APIError as e:
            await error_response(e)(scope, receive, send)


def _sse(payload: Mapping[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def create_app(models: Mapping[str, Model], config: ServerConfig | None = None) -> FastAPI:
    """An ASGI app serving `models` (id -> loaded Model)."""
    config = config or ServerConfig()
    app = FastAPI(title="tinylm", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    slots = {name: Slots(max_queue=config.max_queue) for name in models}
    executor = ThreadPoolExecutor(max_workers=max(1, len(models)), thread_name_prefix="tinylm-serve")
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
            message = "the request body is not valid JSON: send a JSON object with Content-Type: application/json"
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
        bad_input = isinstance(exc, GenerationError | ChatTemplateError | CapabilityError)
        status = 400 if bad_input else 500
        return error_response(APIError(status, str(exc), type="invalid_request_error" if bad_input else "server_error"))

    # helpers -------------------------------------------------------------------------------------

    async def authorized(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), config.api_key):
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

    def options(model: Model, req: SamplingFields) -> dict[str, Any]:
        """Generation options; a response_format is compiled here, so a bad one is a 400 before streaming."""
        fmt = req.response_format
        constrained = fmt is not None and fmt.get("type", "text") != "text"
        return {
            "max_new_tokens": req.limit() or config.default_max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "stop": req.stop,
            "response_format": model.constraint(fmt) if constrained else None,
        }

    async def chunks(model: Model, slot: Slots, ids: list[int], req: SamplingFields) -> AsyncIterator[Chunk]:
        settings = options(model, req)
        async for chunk in stream_blocking(slot, executor, lambda: model.stream(ids, **settings)):
            yield chunk

    def usage(chunk: Chunk) -> dict[str, int]:
        assert chunk.usage is not None
        u = chunk.usage
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
        }

    async def complete(
        model: Model, slot: Slots, ids: list[int], req: SamplingFields
    ) -> tuple[str, str, dict[str, int]]:
        text: list[str] = []
        async for chunk in chunks(model, slot, ids, req):
            text.append(chunk.text)
            if chunk.finish_reason is not None:
                return "".join(text), chunk.finish_reason, usage(chunk)
        raise APIError(500, "generation ended without a finish reason", type="server_error")

    def stream_response(events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

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
    async def chat_completions(req: ChatRequest) -> Any:
        model, slot = pick(req.model, "decoder")
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        ids = prompt_ids(model, model.chat_ids(messages))  # message content is text: no forged turns
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "created": now, "model": req.model}
        if not req.stream:
            text, finish, used = await complete(model, slot, ids, req)
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            return {**head, "object": "chat.completion", "choices": [choice], "usage": used}
        include_usage = bool((req.stream_options or {}).get("include_usage"))

        async def events() -> AsyncIterator[str]:
            base = {**head, "object": "chat.completion.chunk"}
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            yield _sse({**base, "choices": [first]})
            async for chunk in chunks(model, slot, ids, req):
                if chunk.text:
                    delta = {"index": 0, "delta": {"content": chunk.text}, "finish_reason": None}
                    yield _sse({**base, "choices": [delta]})
                if chunk.finish_reason is not None:
                    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": chunk.finish_reason}]})
                    if include_usage:
                        yield _sse({**base, "choices": [], "usage": usage(chunk)})
            yield _sse("[DONE]")

        return stream_response(events())

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(req: CompletionRequest) -> Any:
        model, slot = pick(req.model, "decoder")
        ids = prompt_ids(model, model.tokenizer.encode(req.prompt))
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": rid, "object": "text_completion", "created": now, "model": req.model}
        if not req.stream:
            text, finish, used = await complete(model, slot, ids, req)
            choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            return {**head, "choices": [choice], "usage": used}

        async def events() -> AsyncIterator[str]:
            async for chunk in chunks(model, slot, ids, req):
                if chunk.text or chunk.finish_reason is not None:
                    choice = {"index": 0, "text": chunk.text, "finish_reason": chunk.finish_reason, "logprobs": None}
                    yield _sse({**head, "choices": [choice]})
            yield _sse("[DONE]")

        return stream_response(events())

    @app.post("/v1/embeddings", dependencies=[Depends(authorized)])
    async def embeddings(req: EmbeddingRequest) -> Any:
        model, slot = pick(req.model, "encoder")
        texts = [req.input] if isinstance(req.input, str) else req.input
        vectors = await run_blocking(slot, executor, lambda: model.embed(texts))
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


def serve(
    models: Mapping[str, Model], *, host: str = "127.0.0.1", port: int = 8000, config: ServerConfig | None = None
) -> None:
    """Run the server with uvicorn until interrupted (binds to loopback unless told otherwise)."""
    import uvicorn

    uvicorn.run(create_app(models, config), host=host, port=port, log_level="info")
