"""Ray Serve: the OpenAI-compatible app of `tinylm.server`, one model set per replica, N replicas behind Serve's
router (`tinylm serve --ray-replicas N`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray import serve

from ..server import ServerConfig, create_app
from .cluster import connected

__all__ = ["ModelRef", "TinyLMServer", "deployment", "serve_on_ray"]


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A model to serve: `model` is what `tinylm.load` takes (on every node), `name` its id in the API (default:
    the reference itself, or its folder's name for a path)."""

    model: str
    name: str = ""


@serve.ingress()  # the app is built in each replica, after its models are loaded (__serve_build_asgi_app__)
class TinyLMServer:
    """One replica: loads the models once, serves `tinylm.server.create_app` over them."""

    def __init__(
        self,
        models: Sequence[ModelRef],
        *,
        config: ServerConfig,
        backend: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        threads: int = 1,
    ) -> None:
        os.environ["TINYLM_NUM_THREADS"] = str(threads)
        from ..model import load

        self._models = {}
        for ref in models:
            model = load(ref.model, backend=backend, device=device, precision=precision)
            self._models[ref.name or (ref.model if "/" not in ref.model else model.path.name)] = model
        self._config = config

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self._models, self._config)


def deployment(
    models: Sequence[ModelRef],
    *,
    replicas: int = 1,
    threads: int = 1,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    config: ServerConfig | None = None,
) -> Any:
    """A bound Ray Serve application: `replicas` copies of the server, `threads` CPUs each. Run it with
    `serve.run(app, route_prefix="/")`, or put it in a Serve config file."""
    config = config or ServerConfig()
    # A replica takes a request per model at a time (tinylm.server queues the rest, answering 429 beyond
    # max_queue), so the router may send it that many plus its queue.
    ongoing = max(1, len(models)) * (config.max_queue + 1)
    server = serve.deployment(
        TinyLMServer,
        name="tinylm",
        num_replicas=replicas,
        max_ongoing_requests=ongoing,
        ray_actor_options={"num_cpus": threads},
    )
    return server.bind(
        list(models), config=config, backend=backend, device=device, precision=precision, threads=threads
    )


def serve_on_ray(
    models: Sequence[ModelRef],
    *,
    replicas: int,
    threads: int = 1,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    api_key: str | None = None,
    max_queue: int = 32,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
) -> None:
    """`tinylm serve --ray-replicas N`: serve on the cluster at `address` (default `RAY_ADDRESS`, else a local
    one started here) until interrupted; Serve's HTTP proxy listens on host:port."""
    config = ServerConfig(api_key=api_key, max_queue=max_queue)
    app = deployment(
        models, replicas=replicas, threads=threads, backend=backend, device=device, precision=precision, config=config
    )
    with connected(address or os.environ.get("RAY_ADDRESS"), cpus=replicas * threads):
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name="tinylm", route_prefix="/")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            serve.shutdown()
