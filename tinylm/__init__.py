"""tinylm: small language models on edge hardware, one API over many backends.

    import tinylm
    m = tinylm.load("support-assistant")
    print(m.generate("My parcel never arrived.", max_new_tokens=64).text)

`import tinylm` is light: it imports no ML runtime, writes nothing and starts nothing; the
public names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The errors are plain Python (no dependencies), so they load eagerly: `except tinylm.TinyLMError`.
from . import errors as _errors
from .errors import *  # noqa: F403 -- exactly the names in errors.__all__, re-exported below

__version__ = "0.1.0"

#: Public names loaded on first use (their modules import numpy, tokenizers, pluggy, ...).
_LAZY = {
    "load": "model",
    "convert": "model",
    "Model": "model",
    "Completion": "generation",
    "Chunk": "generation",
    "Usage": "generation",
    "ModelSpec": "arch.spec",
    "Availability": "backend",
    "Capabilities": "backend",
    "OpenRequest": "backend",
    "Backend": "backend",
    "Session": "backend",
    "hookimpl": "hookspecs",
    "SamplingParams": "sampling",
    "GenerationOptions": "options",
}

# The lazy names (the keys of _LAZY), then every error (their list lives once, in `errors.__all__`).
__all__ = ["__version__", "load", "convert", "Model", "Completion", "Chunk", "Usage", "ModelSpec", "Availability"]
__all__ += ["Capabilities", "OpenRequest", "Backend", "Session", "hookimpl", "SamplingParams", "GenerationOptions"]
__all__ += _errors.__all__

if TYPE_CHECKING:  # pragma: no cover
    from .arch.spec import ModelSpec
    from .backend import Availability, Backend, Capabilities, OpenRequest, Session
    from .generation import Chunk, Completion, Usage
    from .hookspecs import hookimpl
    from .model import Model, convert, load
    from .options import GenerationOptions
    from .sampling import SamplingParams


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tinylm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
