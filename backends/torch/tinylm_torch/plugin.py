"""The torch backend as a tinylm plugin. Importing this module does not import torch."""

from __future__ import annotations

import sys

from tinylm.backend import Availability, Capabilities, OpenRequest, Session, installed_version, runtime_available
from tinylm.hookspecs import hookimpl

from .options import TorchOptions

__all__ = ["TorchBackend", "register_backends", "register_models", "register_commands"]


class TorchBackend:
    """PyTorch eager on CPU: the reference backend (fp32, bf16, int8 weight-only)."""

    name = "torch"
    capabilities = Capabilities(
        precisions=("fp32", "bf16", "int8"),
        default_precision="fp32",
        kinds=("decoder", "encoder"),
        batch=True,
        priority=10,
        converts=False,
        reference=True,
        options=TorchOptions,
        states=("kv", "conv"),  # KV cache, LFM2's conv states (cache.py)
        rows=True,  # sessions opened with OpenRequest(rows=N) decode N sequences at once (RowSession)
        rollback=True,  # Session.truncate: the static KV cache only moves its length (KV-only models)
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-torch")

    def availability(self) -> Availability:
        if runtime_available("torch"):
            return Availability(ok=True)
        from tinylm.install import install_command

        return Availability(ok=False, reason="PyTorch is not installed.", hint=install_command("torch"))

    def devices(self) -> list[str]:
        devices = ["cpu"]
        torch = sys.modules.get("torch")  # only when already imported: listing devices must stay cheap
        if torch is not None and torch.cuda.is_available():
            devices.append("cuda")
        return devices

    def open(self, request: OpenRequest) -> Session:
        from .session import open_session

        return open_session(request)


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(TorchBackend())


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    """The models the toolchain knows by name (installed PyPI packages; see `toolchain.known`)."""
    from .toolchain.known import installed_models

    for name, folder in installed_models().items():
        register(name, folder, description="shipped in a PyPI package, verified by hash before training on it")


@hookimpl
def register_commands(subparsers, add_common) -> None:  # type: ignore[no-untyped-def]
    """train, finetune, distill, prune, eval (the toolchain; torch is imported when one runs)."""
    from .toolchain.cli import add_commands

    add_commands(subparsers, add_common)
