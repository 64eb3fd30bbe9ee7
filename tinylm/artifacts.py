"""The artifact cache: converted models under `TINYLM_HOME`, content-keyed, written atomically.

Key: sha256 over the weights' and config's digests, the spec, the backend name and version, the
precision and the options that shape the artifact (`ConvertOptions.key`: an option given at its
default, or one that only changes how the artifact is opened, does not build a second artifact).
An entry is a folder `artifacts/<backend>/<key>/` holding what the backend's `prepare` wrote plus
`tinylm-artifact.json` (metadata, including the parity the core measured: `tinylm.conversion`). It is built
in a temporary folder beside it and renamed into place, under a file lock, so concurrent loaders build it once
and a killed conversion leaves nothing a later load trusts; the next conversion of the same key removes what
it left.

Every file of an entry is recorded (`tinylm.integrity`): a load checks sizes, times and sampled blocks of
the contents; `verify` (`tinylm cache verify`) re-hashes everything, compiled copies included.
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

from . import integrity, settings
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
    "verify",
    "list_partial",
    "Partial",
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


def _cannot_write(path: Path, error: OSError) -> ArtifactError:
    return ArtifactError(
        f"cannot write the converted model under {path} ({error.strerror or error}); nothing was kept. "
        "Fix: make that folder writable, or set TINYLM_HOME (or --out) to a writable folder."
    )


@contextlib.contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the lock file `path` (yields False when `blocking=False` and another process holds it).

    `prune` may delete a lock file nobody holds; a process that opened it just before then would lock a
    deleted file, so after locking, the file is checked to still be the one at `path`, else taken again."""
    while True:
        try:
            f = path.open("a")
        except OSError as e:
            raise _cannot_write(path.parent, e) from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
            return


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
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=parent))
    except OSError as e:
        raise _cannot_write(parent, e) from None
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
    """The content record (`tinylm.integrity.record`: size, modification time, sha256, block digests) of
    every file of an artifact (the marker excluded)."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER)
    return {str(path.relative_to(folder)): integrity.record(path) for path in paths}


def _problem(folder: Path, meta: dict[str, Any], *, full: bool) -> str | None:
    recorded = meta.get("files")
    if not isinstance(recorded, dict):
        return "it records no files"
    for name, info in recorded.items():
        if not isinstance(info, dict) or Path(name).is_absolute() or ".." in Path(name).parts:
            return f"{name!r}: malformed record"
        problem = integrity.check(folder / name, info, full=full)
        if problem:
            return problem
    return None


def intact(folder: Path, meta: dict[str, Any]) -> bool:
    """Whether the artifact's files are the ones written: same names, sizes and modification times, and
    the first, last and some randomly sampled 1 MiB blocks of each file match their recorded digests
    (`tinylm.integrity.check`; a record without block digests is re-hashed whole)."""
    return _problem(folder, meta, full=False) is None


def verify_digests(folder: Path, meta: dict[str, Any]) -> list[str]:
    """The files whose sha256 differs from the one recorded at build time (reads every file)."""
    recorded = meta.get("files") or {}
    return [n for n, info in recorded.items() if integrity.check(folder / n, info, full=True) is not None]


def verify(entry: Path) -> list[str]:
    """Every problem of a cache entry or exported folder, reading every byte: its own files against the
    marker's records, and each recorded sub-folder (`tinylm.integrity.DIGESTS`, e.g. a compiled copy)."""
    meta = read_marker(entry)
    if meta is None:
        return [f"{entry}: no {MARKER} (an incomplete conversion)"]
    problems = []
    problem = _problem(entry, meta, full=True)
    if problem:
        problems.append(f"{entry}: {problem}")
    for record in sorted(entry.rglob(integrity.DIGESTS)):
        problem = integrity.check_folder(record.parent, full=True)
        if problem:
            problems.append(f"{record.parent}: {problem}")
    return problems


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
    except OSError as e:
        raise ArtifactError(
            f"cannot create the folder {path} ({e.strerror or e}). "
            "Fix: make it (or its parent) a writable folder, or set TINYLM_HOME (or --out) to a writable folder."
        ) from None


def _trusted(entry: Path) -> dict[str, Any] | None:
    """The entry's metadata when it is complete and its files are the ones written, else None."""
    meta = read_marker(entry) if (entry / MARKER).is_file() else None
    if meta is None or not isinstance(meta.get("files"), dict):
        return None
    if not all(isinstance(info, dict) and "blocks" in info for info in meta["files"].values()):
        return None  # recorded by an older tinylm, without block digests: rebuilt once rather than re-hashed each load
    return meta if intact(entry, meta) else None


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
            for orphan in _temporaries(parent, key):  # left by a killed conversion of this key (we hold its lock)
                log.warning("removing %s, left by a conversion that did not finish", orphan)
                shutil.rmtree(orphan, ignore_errors=True)
            if final.exists():  # no marker, or files changed since it was built: never trusted
                log.warning("rebuilding cache entry %s: it is incomplete or its files changed", final)
                shutil.rmtree(final, ignore_errors=True)
            meta = _build(backend, request, parent, final, copy_model_files=False, tokenizer=tokenizer)
    return replace(request, artifact=final, meta=meta)


def export_artifact(backend: Backend, request: OpenRequest, out: Path, *, tokenizer: Tokenizer | None = None) -> Path:
    """Write a self-contained artifact folder at `out` (model files + converted model + metadata),
    loadable by `tinylm.load(out)` where only tinylm and that backend are installed."""
    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
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


@dataclass(frozen=True, kw_only=True)
class Partial:
    """What a conversion left that is not a complete entry: its temporary folder (`.KEY.xxxx`) or an entry
    folder without its marker. `busy`: a conversion of that key runs now (its lock is held)."""

    path: Path
    backend: str
    key: str
    size: int
    busy: bool


def _temporaries(parent: Path, key: str) -> list[Path]:
    return [p for p in parent.glob(f".{key}.*") if p.is_dir()]


def _key_of(entry: Path) -> str:
    return entry.name[1:].split(".", 1)[0] if entry.name.startswith(".") else entry.name


def _busy(parent: Path, key: str) -> bool:
    lock = parent / f"{key}.lock"
    if not lock.exists():
        return False
    try:
        with _locked(lock, blocking=False) as acquired:
            return not acquired
    except ArtifactError:
        return False


def list_partial() -> list[Partial]:
    """Temporary folders and incomplete entries under the cache (`tinylm cache ls` shows them)."""
    root = settings.home() / "artifacts"
    found = []
    for entry in sorted(root.glob("*/*")):
        if not entry.is_dir() or (entry / MARKER).is_file():
            continue
        key = _key_of(entry)
        found.append(
            Partial(path=entry, backend=entry.parent.name, key=key, size=_size(entry), busy=_busy(entry.parent, key))
        )
    return found


def prune(*, backend: str | None = None, older_than_days: float | None = None, everything: bool = False) -> list[Path]:
    """Remove cache entries and what killed conversions left; returns what was removed.

    Always removed: temporary folders and incomplete entries of conversions no longer running, and lock
    files nobody holds. Complete entries are removed only when asked: `everything=True` (all of them),
    `backend=` (that backend's), `older_than_days=` (those older than N days); `backend` and
    `older_than_days` combine. With none of the three, complete entries are kept."""
    root = settings.home() / "artifacts"
    removed: list[Path] = []
    now = time.time()
    select = everything or backend is not None or older_than_days is not None
    for entry in sorted(root.glob("*/*")):
        if backend and entry.parent.name != backend:
            continue
        if entry.is_file() and entry.suffix == ".lock":
            with contextlib.suppress(OSError, ArtifactError), _locked(entry, blocking=False) as acquired:
                if acquired:  # nobody converts this key now: the lock file is stale
                    entry.unlink()
                    removed.append(entry)
            continue
        if not entry.is_dir():
            continue
        if (entry / MARKER).is_file():
            if not select:
                continue
            if older_than_days is not None and now - entry.stat().st_mtime < older_than_days * 86400:
                continue
        elif _busy(entry.parent, _key_of(entry)):
            continue  # a conversion is writing it now
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
