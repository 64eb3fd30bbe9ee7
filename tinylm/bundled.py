"""The core's own plugin: model folders shipped inside the `tinylm` distribution (`tinylm/models/`).

Each subfolder holding a `config.json` is registered under its folder name, so
`tinylm.load("<name>")` works offline right after installing tinylm.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .hookspecs import hookimpl

MODELS_DIR = Path(__file__).parent / "models"


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    """Register every bundled model folder."""
    if not MODELS_DIR.is_dir():
        return
    for config in sorted(MODELS_DIR.glob("*/config.json")):
        card = config.parent / "README.md"
        description = _title(card.read_text(encoding="utf-8")) if card.is_file() else ""
        register(config.parent.name, config.parent, description=description)


def _title(card: str) -> str:
    """The first Markdown heading of a model card (after its YAML front matter, if any)."""
    for line in card.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""
