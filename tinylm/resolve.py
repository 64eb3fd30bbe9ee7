"""Turning what the user typed into a model folder.

Order: an existing local folder; a name registered by a plugin (bundled models); a Hugging Face
hub id found in the local Hugging Face cache (offline); a hub id downloaded on demand (only
when online and `huggingface_hub` is installed; `HF_HUB_OFFLINE=1` forbids it). Only
safetensors, JSON and tokenizer files are ever downloaded: no pickle, no remote code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidModelName, ModelNotFound
from .plugins import PluginManager

__all__ = ["resolve_model", "valid_hub_id", "DOWNLOAD_PATTERNS"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DOWNLOAD_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.jinja",
    "1_Pooling/*",
    "README.md",
]


def valid_hub_id(name: str) -> bool:
    """`owner/name` with safe characters and no `..` component."""
    return (
        bool(_HUB_ID.match(name)) and ".." not in name.split("/") and not any(p in (".", "..") for p in name.split("/"))
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_hub(name: str) -> Path:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelNotFound(
            f"{name!r} is not a local folder or a bundled model, and looks like a Hugging Face hub id, "
            "but huggingface_hub is not installed. Fix: `pip install huggingface_hub`, or pass a local folder."
        ) from None
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(huggingface_hub.snapshot_download(name, allow_patterns=DOWNLOAD_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        pass
    if _offline():
        raise ModelNotFound(
            f"{name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
            "Fix: download it once while online (`tinylm info " + name + "` does), or unset HF_HUB_OFFLINE."
        )
    try:
        return Path(huggingface_hub.snapshot_download(name, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception as e:  # network errors, 404, gated repos: all end the same way for users
        raise ModelNotFound(
            f"could not download {name!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            "Fix: check the id and your network, log in for gated models (`hf auth login`), or pass a local folder."
        ) from None


def resolve_model(model: str | os.PathLike[str], manager: PluginManager) -> Path:
    """The model folder for `model` (a path, a registered name, or a hub id)."""
    text = os.fspath(model)
    if not text.strip():
        raise InvalidModelName("the model name is empty. Fix: pass a folder, a bundled name or a hub id.")
    try:
        path = Path(text).expanduser()
        if path.is_dir():
            return path.resolve(strict=True)
        exists = path.exists()
    except (OSError, RuntimeError) as e:  # a name too long, a symlink loop, `~user` with no such user
        shown = text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
        raise ModelNotFound(
            f"cannot use {shown!r} as a model folder ({getattr(e, 'strerror', None) or e}). Fix: check the path."
        ) from None
    if exists:
        raise ModelNotFound(
            f"{path} is not a folder; tinylm loads a model folder. Fix: pass the folder that holds the model."
        )
    registered = manager.models()
    if text in registered:
        return registered[text].path
    if valid_hub_id(text):
        return _from_hub(text)
    shown = text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
    if "/" in text or os.sep in text or text.startswith("."):
        raise ModelNotFound(f"no folder at {shown!r}, and it is not a valid hub id (owner/name). Fix: check the path.")
    names = ", ".join(sorted(registered)) or "none installed"
    raise ModelNotFound(
        f"unknown model {shown!r}. Bundled/registered models: {names}. "
        "Fix: pass one of those, a local folder, or a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct."
    )
