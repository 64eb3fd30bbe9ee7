"""Connecting to a Ray cluster, or starting a local one for the length of a job."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ray

from ..errors import RayUnavailable
from ..settings import physical_cores

__all__ = ["connected"]


@contextlib.contextmanager
def connected(address: str | None, *, cpus: int) -> Iterator[None]:
    """Use the Ray cluster this process is connected to, else the one at `address`, else start a local one
    with `cpus` CPUs (at least this machine's cores) and no dashboard; shut down what this call started."""
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:  # "local": a new cluster, never one that happens to be running on this machine
            ray.init(address="local", num_cpus=max(cpus, physical_cores()), include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayUnavailable(
            f"cannot connect to the Ray cluster at {address!r}: {e}. "
            "Fix: start it (ray start --head) and pass its address, or leave the address out to start a local one."
        ) from None
    try:
        yield
    finally:
        ray.shutdown()
