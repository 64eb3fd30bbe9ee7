"""The artifact cache: converted models under `TINYLM_HOME`, content-keyed, written atomically.

Key: sha256 over the weights' and config's digests, the spec, the backend name and version, the
precision and the options that shape the artifact (`ConvertOptions.key`: an option given at its
default, or one that only changes how the artifact is opened, does not build a second artifact).
An entry is a folder `artifacts/<backend>/<key>/` holding what the backend's `prepare` wrote plus
`tinylm-artifact.json` (metadata, including the parity the core measured: `tinylm.conversion`).
It is built in a temporary folder beside it and renamed into place, under a file lock, so concurrent loaders
build it once and a killed conversion leaves nothing a later load trusts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import settings
from .backend import Backend, OpenRequest
from .conversion import convert_into
from .errors import ArtifactError, TinyLMError
from .weights import weight_files

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = [
    "ensure_artifact",
    "export_artifact",
    "read_marker",
    "list_artifacts",
    "prune",
    "Artifact",
    "MARKER",
    "folder_digest",
    "intact",
    "verify_digests",
]

log = logging.getLogger("tinylm.artifacts")

MARKER = "tinylm-artifact.json"
#: Files copied from the model folder into an exported artifact, so it loads on its own.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "README.md",
)
_CHUNK = 1 << 22


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One cache entry."""

    path: Path
    backend: str
    key: str
    size: int
    meta: dict[str, Any]


def _file_digest(path: Path, memo_dir: Path) -> str:
    """sha256 of a file, memoised by (device, inode, size, mtime) so warm loads read nothing."""
    st = path.stat()
    stat_key = hashlib.sha256(
        f"{path.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}".encode()
    ).hexdigest()
    memo = memo_dir / stat_key
    with contextlib.suppress(OSError):
        return memo.read_text().strip()
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    digest = h.hexdigest()
    with contextlib.suppress(OSError):
        memo_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    return digest


def folder_digest(folder: Path) -> str:
    """Digest of the files that define a model: weights, config and tokenizer files."""
    memo_dir = settings.home() / "digests"
    names = [p for p in weight_files(folder)]
    names += [folder / n for n in ("config.json", "tokenizer.json", "tokenizer_config.json") if (folder / n).is_file()]
    h = hashlib.sha256()
    for p in names:
        h.update(p.name.encode() + b"\0" + _file_digest(p, memo_dir).encode() + b"\n")
    return h.hexdigest()


def _key(backend: Backend, request: OpenRequest) -> str:
    payload = {
        "weights": folder_digest(request.folder),
        "spec": request.spec.to_dict(),
        "backend": backend.name,
        "version": backend.version,
        "precision": request.precision,
        "options": {k: repr(v) for k, v in sorted(request.options.key().items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(
    backend: Backend,
    request: OpenRequest,
    parent: Path,
    final: Path,
    *,
    copy_model_files: bool,
    tokenizer: Tokenizer | None,
) -> dict[str, Any]:
    """Convert into a temporary folder in `parent` (`tinylm.conversion`), write the marker, then rename the
    folder to `final` (atomic); returns the marker's record."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=parent))
    try:
        started = time.perf_counter()
        meta = convert_into(backend, request, tmp, tokenizer=tokenizer)
        if copy_model_files:
            for name in MODEL_FILES:
                src = request.folder / name
                if src.is_file():
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, tmp / name)
        record = {
            "files": _inventory(tmp),
            "backend": backend.name,
            "backend_version": backend.version,
            "precision": request.precision,
            "source": str(request.folder),
            "family": request.spec.family,
            "created": time.time(),
            "build_seconds": time.perf_counter() - started,
            **meta,
        }
        text = json.dumps(record, indent=2, default=str)
        (tmp / MARKER).write_text(text)
        os.replace(tmp, final)
        return json.loads(text)  # as a later load reads it
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = _write_failure(e, parent, request.folder)
        if reason is not None:
            raise ArtifactError(
                f"cannot write the converted model under {parent} ({reason}); nothing was kept. "
                "Fix: free disk space, or set TINYLM_HOME (or --out) to a writable disk with room."
            ) from (None if isinstance(e, OSError) else e)
        raise


_WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EROFS)


def _write_failure(error: BaseException, parent: Path, source: Path) -> str | None:
    """Why a conversion could not write its files, when that is why it failed; else None.

    Python writers raise an OSError that says so. A backend's native writer reports a full disk as an error of
    its own (OpenVINO's `save_model`: "basic_ios::clear: iostream error"), so after any other exception the
    folder is asked for the size of the `source` weights (an artifact holds at most about that): if it cannot
    have it, that is the reason.
    """
    if isinstance(error, OSError):
        return _disk_reason(error)
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
        return None
    try:
        size = sum(p.stat().st_size for p in weight_files(source))
        fd, probe = tempfile.mkstemp(prefix=".room.", dir=parent)
        try:
            _reserve(fd, size)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        return _disk_reason(e)
    return None


def _disk_reason(error: OSError) -> str | None:
    return error.strerror if error.errno in _WRITE_ERRNOS else None


def _reserve(fd: int, size: int) -> None:
    """Allocate `size` bytes to the open file `fd` (raises OSError, e.g. ENOSPC, when the disk lacks them)."""
    if hasattr(os, "posix_fallocate"):  # Linux; macOS has no posix_fallocate
        os.posix_fallocate(fd, 0, max(size, 1))
        return
    block = bytes(_CHUNK)
    for start in range(0, size, _CHUNK):
        os.write(fd, block[: min(_CHUNK, size - start)])
    os.fsync(fd)


def _inventory(folder: Path) -> dict[str, dict[str, Any]]:
    """Size, modification time and sha256 of every file of an artifact (the marker excluded)."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        st = path.stat()
        h = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                h.update(block)
        files[str(path.relative_to(folder))] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
    return files


def intact(folder: Path, meta: dict[str, Any]) -> bool:
    """Whether the artifact's files are the ones written (same names, sizes and modification times;
    a file rewritten in any way changes its mtime). Cheap: reads no file contents."""
    recorded = meta.get("files")
    if not isinstance(recorded, dict):
        return False
    for name, info in recorded.items():
        try:
            st = (folder / name).stat()
        except OSError:
            return False
        if st.st_size != info.get("size") or st.st_mtime_ns != info.get("mtime_ns"):
            return False
    return True


def verify_digests(folder: Path, meta: dict[str, Any]) -> list[str]:
    """The files whose sha256 differs from the one recorded at build time (reads every file)."""
    recorded = meta.get("files") or {}
    current = _inventory(folder)
    return [n for n, info in recorded.items() if current.get(n, {}).get("sha256") != info.get("sha256")]


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TinyLMError(f"cannot create the folder {path} ({e.strerror}). Fix: choose a writable location.") from None


def _trusted(entry: Path) -> dict[str, Any] | None:
    """The entry's metadata when it is complete and its files are the ones written, else None."""
    meta = read_marker(entry) if (entry / MARKER).is_file() else None
    return meta if meta is not None and intact(entry, meta) else None


def ensure_artifact(backend: Backend, request: OpenRequest, *, tokenizer: Tokenizer | None = None) -> OpenRequest:
    """Return `request` with `artifact` and `meta` set, converting the model (`tinylm.conversion`) if needed.

    `tokenizer`: the model's, when the caller has it loaded (a conversion's parity text is tokenized with it)."""
    key = _key(backend, request)
    parent = settings.home() / "artifacts" / backend.name
    final = parent / key
    meta = _trusted(final)
    if meta is not None:
        return replace(request, artifact=final, meta=meta)
    _mkdir(parent)
    with _locked(parent / f"{key}.lock"):
        meta = _trusted(final)
        if meta is None:  # else another process built it while we waited
            if final.exists():  # no marker, or files changed since it was built: never trusted
                log.warning("rebuilding cache entry %s: it is incomplete or its files changed", final)
                shutil.rmtree(final, ignore_errors=True)
            meta = _build(backend, request, parent, final, copy_model_files=False, tokenizer=tokenizer)
    return replace(request, artifact=final, meta=meta)


def export_artifact(backend: Backend, request: OpenRequest, out: Path, *, tokenizer: Tokenizer | None = None) -> Path:
    """Write a self-contained artifact folder at `out` (model files + converted model + metadata),
    loadable by `tinylm.load(out)` where only tinylm and that backend are installed."""
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise TinyLMError(f"{out} already exists and is not empty. Fix: choose a new --out folder or remove it.")
    _mkdir(out.parent)
    if out.exists():
        out.rmdir()
    _build(backend, request, out.parent, out, copy_model_files=True, tokenizer=tokenizer)
    return out


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The metadata of an artifact folder, or None when `folder` is not one."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        raise TinyLMError(f"{marker}: unreadable ({e}). Fix: convert the model again.") from None
    return meta if isinstance(meta, dict) else None


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_artifacts() -> list[Artifact]:
    """Every complete cache entry."""
    root = settings.home() / "artifacts"
    found = []
    for marker in sorted(root.glob(f"*/*/{MARKER}")):
        try:
            meta = json.loads(marker.read_text())
        except (OSError, ValueError):
            meta = {}
        entry = marker.parent
        found.append(Artifact(path=entry, backend=entry.parent.name, key=entry.name, size=_size(entry), meta=meta))
    return found


def prune(*, backend: str | None = None, older_than_days: float | None = None) -> list[Path]:
    """Remove cache entries (all, one backend's, or those older than N days) and any partial ones."""
    root = settings.home() / "artifacts"
    removed: list[Path] = []
    now = time.time()
    for entry in sorted(root.glob("*/*")):
        if not entry.is_dir() or (backend and entry.parent.name != backend):
            continue
        complete = (entry / MARKER).is_file()
        if complete and older_than_days is not None and now - entry.stat().st_mtime < older_than_days * 86400:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
