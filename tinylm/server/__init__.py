"""`tinylm serve`: an OpenAI-compatible HTTP server over loaded models (extra `tinylm[serve]`).

    from tinylm.server import create_app
    app = create_app({"support": tinylm.load("support-assistant")}, api_key="secret")

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings,
GET /health. Errors use OpenAI's JSON shape. FastAPI/uvicorn are imported only here.
"""

from .app import DEFAULT_PARALLEL, ServerConfig, create_app, serve

__all__ = ["ServerConfig", "create_app", "serve", "DEFAULT_PARALLEL"]
