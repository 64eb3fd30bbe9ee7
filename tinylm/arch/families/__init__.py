"""The model families tinylm describes, looked up by `config.json`'s `model_type`.

Adding a family: write a module here with a `Family` (a config reader and a `sanitize` that maps
the checkpoint to the canonical names of `tinylm.arch.layout`, plus their inverses `to_config` and
`to_checkpoint`, which write trained or pruned models back out), and list it in `FAMILIES`.
No backend changes: backends lower `ModelSpec`, not families.
"""

from __future__ import annotations

from typing import Any

from ...errors import UnsupportedArchitecture
from ._base import Family
from .bert import BERT
from .gemma import GEMMA
from .gemma2 import GEMMA2
from .gemma3 import GEMMA3
from .gemma3_multimodal import GEMMA3_MULTIMODAL
from .gpt2 import GPT2
from .granite import GRANITE
from .lfm2 import LFM2
from .llama import LLAMA
from .modernbert import MODERNBERT
from .olmo2 import OLMO2
from .phi3 import PHI3
from .qwen2 import QWEN2
from .qwen3 import QWEN3
from .roberta import ROBERTA
from .smollm3 import SMOLLM3

__all__ = ["Family", "FAMILIES", "family_for"]

FAMILIES: tuple[Family, ...] = (
    LLAMA,
    QWEN2,
    QWEN3,
    PHI3,
    GEMMA,
    GPT2,
    BERT,
    GRANITE,
    OLMO2,
    SMOLLM3,
    GEMMA2,
    GEMMA3,
    LFM2,
    ROBERTA,
    MODERNBERT,
    GEMMA3_MULTIMODAL,
)
_BY_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}


def family_for(config: dict[str, Any], *, where: str = "config.json") -> Family:
    """The family that reads this config, or `UnsupportedArchitecture` naming the supported ones."""
    model_type = config.get("model_type")
    try:
        return _BY_TYPE[str(model_type)]
    except KeyError:
        supported = ", ".join(sorted(_BY_TYPE))
        raise UnsupportedArchitecture(
            f"{where}: model_type {model_type!r} is not a family tinylm supports "
            f"(supported model_type values: {supported}). Fix: use a model of one of these families, "
            "or add the family in tinylm/arch/families/ (see docs/plugins.md)."
        ) from None
