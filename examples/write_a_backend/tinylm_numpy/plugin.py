"""The numpy backend as a tinylm plugin: the object tinylm finds through the `tinylm` entry-point group.

tinylm imports this module lazily (the first time it needs its backend registry) and calls
`register_backends`. Keep it cheap: the model code is imported only when a model is opened.
"""

from __future__ import annotations

from collections.abc import Callable

from tinylm import hookimpl
from tinylm.backend import Availability, Backend, Capabilities, OpenRequest, Session, installed_version

__all__ = ["NumpyBackend", "register_backends"]


class NumpyBackend:
    """Every tinylm family's forward pass in plain numpy: fp32 on the CPU, no runtime to install.

    Slow next to the real backends, so its priority is below theirs: automatic choice takes it only
    when nothing else can run the model. Ask for it by name (`backend="numpy"`, `TINYLM_BACKEND=numpy`).
    """

    name = "numpy"
    capabilities = Capabilities(
        precisions=("fp32",),
        default_precision="fp32",
        kinds=("decoder", "encoder"),
        batch=True,
        priority=-10,  # built-in backends use 10..30 and the default is 0: never preferred over them
        converts=False,  # runs the checkpoint's weights directly; nothing for the core to cache
        reference=False,
        step=True,  # its sessions define step(token_id), the decode path the generation loop then uses
        states=("kv", "conv"),  # the per-layer states its cache keeps: attention's keys and values, LFM2's convs
        rows=True,  # opened with OpenRequest(rows=N), its sessions hold N sequences (add_rows/step_rows/drop_row)
        row_states=("kv", "conv"),  # each row has its own batch-1 cache, conv states included
        rollback=True,  # Session.truncate (from tinylm.inputs.SlotSession): KV-only models drop tokens past a length
        # options: not declared, so the backend takes none (tinylm.load(..., anything=1) is a ConfigError);
        # a backend with options names a frozen dataclass derived from tinylm.backend.BackendOptions here
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-numpy-example")

    def availability(self) -> Availability:
        # numpy is a dependency of tinylm itself, so there is nothing to check. A backend with its own
        # runtime would return `requires_runtimes({"myruntime": "myruntime"}, ...)` here (never an import).
        return Availability(ok=True)

    def devices(self) -> list[str]:
        return ["cpu"]

    def open(self, request: OpenRequest) -> Session:
        from .session import open_session

        return open_session(request)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(NumpyBackend())
