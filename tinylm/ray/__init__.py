"""tinylm on Ray (extra `tinylm[ray]`): Ray Data for batch jobs, Ray Serve for the OpenAI-compatible server.

    import ray, tinylm.ray
    ds = ray.data.read_json("tickets.jsonl")
    ds = tinylm.ray.map_batches(ds, "support-embedder", task="embed", workers=2)   # adds an "embedding" column

Only this package imports Ray; `import tinylm`, `tinylm.batch` and `tinylm batch` without `--ray` never do.
"""

from __future__ import annotations

import importlib.util

from ..errors import RayUnavailable

_spec = importlib.util.find_spec("ray")
if _spec is None or _spec.origin is None:  # None: a stray folder named ray (Ray's /tmp/ray), not the package
    from ..install import install_command

    raise RayUnavailable(
        f"Ray is not installed. Fix: {install_command('ray')} (or run without --ray, in this process)."
    )

from .data import TinyLMPredictor, map_batches  # noqa: E402 - after the check that says how to install Ray
from .job import run_on_ray  # noqa: E402
from .serve import ModelRef, deployment, serve_on_ray  # noqa: E402

__all__ = ["TinyLMPredictor", "map_batches", "run_on_ray", "ModelRef", "deployment", "serve_on_ray"]
