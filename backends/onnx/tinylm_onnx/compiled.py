"""This machine's optimized, pre-packed copy of an artifact (`compiled_cache=True`, the default).

Most of creating an ONNX Runtime session is optimizing the graph and pre-packing every weight into the CPU
kernels' own layout. The first open of an artifact saves both (the optimized graph, the packed weights in its
data file: ONNX Runtime's `session.save_external_prepacked_constant_initializers`) and later opens map them:

    compiled/<key>/model.onnx         the optimized graph (opened without optimizing again)
    compiled/<key>/model.onnx.data    its weights and their packed copies, memory-mapped
    compiled/<key>/tinylm-digests.json  the two files' content records (`tinylm.integrity`), written last

The packed layout depends on the CPU and on onnxruntime's version, so <key> hashes both, with the sizes and
times of the artifact's own files: a folder copied to another machine, an upgraded onnxruntime or a rewritten
artifact makes a new copy rather than reading a wrong one, and the old one is removed then. The copy is not
part of the artifact's inventory (the files a load checks before trusting it), so `tinylm convert --out`
exports stay portable. Each open checks the copy against its record (sizes, times, the first, last and some
randomly sampled blocks of each file: bytes rewritten in place, size and time kept, are caught there or by
`tinylm cache verify`, which re-hashes everything). A copy whose files changed, or that fails to open, is
removed and made again; an artifact folder that cannot be written is opened as before, without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tinylm import integrity

from .runtime import DATA_FILE, MODEL_FILE, inference_session

__all__ = ["FOLDER", "machine_key", "open_compiled"]

log = logging.getLogger("tinylm.onnx")

FOLDER = "compiled"
RECORD = integrity.DIGESTS
_STALE_SECONDS = 3600  # a temporary folder this old belongs to a process that died while writing it
# /proc/cpuinfo fields that name the CPU and its instruction sets (the same on every core)
_CPU_FIELDS = (
    "vendor_id",
    "cpu family",
    "model",
    "model name",
    "stepping",
    "flags",
    "Features",
    "CPU implementer",
    "CPU architecture",
    "CPU variant",
    "CPU part",
    "isa",
    "uarch",
)


def _cpu() -> str:
    """The CPU's identity: its /proc/cpuinfo description on Linux, else the host's name and platform."""
    try:
        with open("/proc/cpuinfo") as f:
            first = []
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                name, _, value = line.partition(":")
                if name.strip() in _CPU_FIELDS:
                    first.append(f"{name.strip()}={value.strip()}")
        if first:
            return "\n".join(first)
    except OSError:
        pass
    return "\n".join((platform.node(), *platform.uname()))


def _stats(folder: Path, names: tuple[str, ...]) -> dict[str, list[int]]:
    out = {}
    for name in names:
        if (folder / name).is_file():
            st = (folder / name).stat()
            out[name] = [st.st_size, st.st_mtime_ns]
    return out


def machine_key(folder: Path) -> str:
    """The name of `folder`'s copy for this CPU, this onnxruntime and the artifact's files as they are now."""
    import onnxruntime as ort

    text = json.dumps([ort.__version__, _cpu(), _stats(folder, (MODEL_FILE, DATA_FILE))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _damage(copy: Path) -> str | None:
    """Why the copy cannot be trusted (None: complete, and its files match their record as far as sampled)."""
    if not (copy / RECORD).is_file():
        return "it was not written completely"
    return integrity.check_folder(copy)


def _remove_others(compiled: Path, keep: str) -> None:
    """Older copies (another CPU, onnxruntime or artifact revision) and temporary folders left by dead writers."""
    for entry in compiled.iterdir():
        if entry.name == keep:
            continue
        if entry.name.startswith("."):
            try:
                if time.time() - entry.stat().st_mtime < _STALE_SECONDS:
                    continue  # maybe another process writing its copy now
            except OSError:
                continue
        shutil.rmtree(entry, ignore_errors=True)


def _write(folder: Path, key: str, num_threads: int, spin: bool) -> Any:
    """Open the artifact while ONNX Runtime saves the optimized, packed copy; keep it as compiled/<key>."""
    compiled = folder / FOLDER
    compiled.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=compiled))
    try:
        session = inference_session(folder / MODEL_FILE, num_threads, spin=spin, save_to=tmp)
        integrity.write_folder_record(tmp, [MODEL_FILE, DATA_FILE])
        try:
            os.replace(tmp, compiled / key)
        except OSError:  # another process kept its copy first: the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_others(compiled, key)
        return session
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_compiled(folder: Path, num_threads: int, *, spin: bool = False) -> Any:
    """An `InferenceSession` on the artifact in `folder`, through this machine's optimized copy of it
    (opening it, or writing it on the first open); `spin` as in `runtime.session_options`."""
    key = machine_key(folder)
    copy = folder / FOLDER / key
    damage = _damage(copy) if copy.exists() else None
    if copy.exists() and damage is None:
        try:
            return inference_session(copy / MODEL_FILE, num_threads, spin=spin, optimized=True)
        except Exception as e:  # onnxruntime's own exception types: a damaged copy
            log.warning("%s: the optimized copy does not open (%s); making it again", copy, e)
            shutil.rmtree(copy, ignore_errors=True)
    elif copy.exists():  # renamed into place complete, so its files changed since: never trusted, replaced
        log.warning("%s: the optimized copy's files changed since it was written (%s); making it again", copy, damage)
        shutil.rmtree(copy, ignore_errors=True)
    if not _writable(folder):
        return inference_session(folder / MODEL_FILE, num_threads, spin=spin)
    try:
        return _write(folder, key, num_threads, spin)
    except Exception as e:  # no room, or a file system ONNX Runtime cannot save to: the artifact itself still opens
        log.warning("%s: could not save an optimized copy (%s); opening the artifact without one", folder, e)
        return inference_session(folder / MODEL_FILE, num_threads, spin=spin)
