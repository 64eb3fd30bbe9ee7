"""How to install more of tinylm, said the way tinylm itself was installed.

From a clone (an editable install, or the source tree on `sys.path`) the backends are the folders under
`backends/`, which are not on any package index: `pip install tinylm[torch]` fails there, and
`pip install -c constraints.txt -e backends/torch` works. From a wheel the extras are the way.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["install_command", "source_checkout"]


@lru_cache(maxsize=1)
def source_checkout() -> tuple[Path, bool] | None:
    """The root of the clone tinylm was installed from and whether the install is editable, else None
    (installed from an index or a wheel)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        raw = distribution("tinylm").read_text("direct_url.json")
    except PackageNotFoundError:
        raw = None
    if raw:
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        url = urlparse(str(info.get("url", "")))
        root = Path(unquote(url.path))
        if url.scheme == "file" and "dir_info" in info and (root / "backends").is_dir():
            return root, bool(info["dir_info"].get("editable"))
        return None
    # not installed by pip at all: the source tree on sys.path
    root = Path(__file__).resolve().parent.parent
    return (root, True) if (root / "pyproject.toml").is_file() and (root / "backends").is_dir() else None


def install_command(extra: str) -> str:
    """The pip command that installs tinylm's `extra` (a backend such as "onnx", or "serve", ...) here."""
    found = source_checkout()
    if found is None:
        return f"pip install 'tinylm[{extra}]'"
    root, editable = found
    constraints = root / "constraints.txt"
    options = (f"-c {constraints} " if constraints.is_file() else "") + ("-e " if editable else "")
    backend = root / "backends" / extra
    if backend.is_dir():
        return f"pip install {options}{backend}"
    return f"pip install {options}'{root}[{extra}]'"
