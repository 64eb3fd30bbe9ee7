"""Registers the `coreml` backend. Importing this module imports no runtime (coremltools loads lazily).

Converting works wherever coremltools installs (Linux and Windows build machines included): there the
backend reports itself "convert-only". Running needs macOS, where predictions go through `MLModel`.
"""

from __future__ import annotations

import platform

from tinylm.backend import Availability, Capabilities, deferred, installed_version, requires_runtimes
from tinylm.hookspecs import hookimpl

from .options import CoreMLOptions

__all__ = ["CoreMLBackend", "register_backends", "CONVERT_HINT"]

#: How to get a Core ML package on a machine that cannot run it.
CONVERT_HINT = (
    "convert here with `tinylm convert MODEL --backend coreml --out DIR` (or tinylm.convert(MODEL, "
    "backend='coreml', out=DIR)): DIR/model.mlpackage is the Core ML model, for an app or for "
    "tinylm.load(DIR) on a Mac (macOS 15 / iOS 18; pass stateful=False for macOS 13 / iOS 16)."
)


class CoreMLBackend:
    """Core ML: an ML Program built with coremltools' MIL builder, KV cache as Core ML state."""

    name = "coreml"
    capabilities = Capabilities(
        precisions=("fp16", "int8", "int4"),
        default_precision="fp16",
        kinds=("decoder", "encoder"),
        batch=False,  # decoders: one sequence per state (encoders take a padded batch in embed)
        priority=30,  # first on macOS (docs/choosing-a-backend.md); off macOS it is never available to run
        converts=True,
        options=CoreMLOptions,
        states=("kv", "conv"),  # Core ML states; conv only in the stateful program (program.py)
    )

    def __init__(self) -> None:
        self.version = installed_version("tinylm-coreml")

    def availability(self) -> Availability:
        missing = requires_runtimes({"coremltools": "coremltools"}, extra="coreml")
        if missing is not None:
            return missing
        system = platform.system()
        if system != "Darwin":
            return Availability(
                ok=False,
                convert_only=True,
                reason=f"Core ML runs only on macOS (this is {system}); converting works here.",
                hint=CONVERT_HINT,
            )
        return Availability(ok=True)

    def devices(self) -> list[str]:
        from .devices import DEVICES

        return list(DEVICES)

    #: build and save the artifact (`prepare(request, options, out_dir) -> metadata`; the core does the rest)
    prepare = deferred("tinylm_coreml.package:prepare")
    #: the artifact -> a `Session` (imports the runtime)
    open = deferred("tinylm_coreml.session:open_session")


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(CoreMLBackend())
