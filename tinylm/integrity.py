"""Content records of written files: a full sha256 plus one digest per block, so a load can check the
contents cheaply (a few sampled blocks) and `tinylm cache verify` can check them fully.

A record is written while the file is still in the page cache (right after it was written), in one pass:

    {"size": ..., "mtime_ns": ..., "sha256": <hex>, "block": 1048576, "blocks": [<16 hex digits>, ...]}

`check(path, record)` compares size and modification time (no reads), then the first and last blocks
(headers and trailers: where a format says what the rest means) and `SAMPLES` blocks chosen at random on
each call, so repeated loads cover the whole file and no fixed set of unread bytes exists. A file of at most
`SAMPLES + 2` blocks is read whole. `check(..., full=True)` re-hashes every byte.

Folders of files written together (e.g. a backend's compiled copy of an artifact) keep their records in one
`DIGESTS` file beside them (`write_folder_record` / `check_folder`); `tinylm cache verify` finds every such
file under the cache and checks it fully.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

__all__ = ["BLOCK", "SAMPLES", "DIGESTS", "record", "check", "write_folder_record", "check_folder"]

BLOCK = 1 << 20
SAMPLES = 8
#: The name of a folder's record file (one JSON object: {"files": {relative name: record}}).
DIGESTS = "tinylm-digests.json"


def _block_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def record(path: Path, *, block: int = BLOCK) -> dict[str, Any]:
    """The record of `path` as it is now (reads it once)."""
    full = hashlib.sha256()
    blocks = []
    with path.open("rb") as f:
        while data := f.read(block):
            full.update(data)
            blocks.append(_block_digest(data))
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": full.hexdigest(),
        "block": block,
        "blocks": blocks,
    }


def _full_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(BLOCK):
            h.update(data)
    return h.hexdigest()


def check(path: Path, rec: dict[str, Any], *, full: bool = False, samples: int = SAMPLES) -> str | None:
    """Why `path` is not the file `rec` describes, or None when it is (as far as this check reads)."""
    try:
        st = path.stat()
        if st.st_size != rec.get("size"):
            return f"{path.name}: size {st.st_size}, recorded {rec.get('size')}"
        if st.st_mtime_ns != rec.get("mtime_ns"):
            return f"{path.name}: modified since it was recorded"
        blocks, block = rec.get("blocks"), rec.get("block")
        if full or not isinstance(blocks, list) or not isinstance(block, int) or block < 1:
            # a full check, or a record without block digests (written by an older tinylm): hash it all
            if _full_sha256(path) != rec.get("sha256"):
                return f"{path.name}: contents differ from the recorded sha256"
            return None
        count = len(blocks)
        if count <= samples + 2:
            chosen = range(count)
        else:
            chosen = sorted({0, count - 1, *random.sample(range(1, count - 1), samples)})
        with path.open("rb") as f:
            for i in chosen:
                f.seek(i * block)
                if _block_digest(f.read(block)) != blocks[i]:
                    return f"{path.name}: block {i} (bytes {i * block}-{(i + 1) * block}) differs from its record"
    except OSError as e:
        return f"{path.name}: cannot be read ({e.strerror})"
    return None


def write_folder_record(folder: Path, names: list[str]) -> None:
    """Record the files `names` (relative to `folder`) in `folder/DIGESTS` (written last, atomically)."""
    files = {name: record(folder / name) for name in names if (folder / name).is_file()}
    tmp = folder / f".{DIGESTS}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"files": files}))
    os.replace(tmp, folder / DIGESTS)


def check_folder(folder: Path, *, full: bool = False) -> str | None:
    """Why the files recorded in `folder/DIGESTS` differ from their records (None: they match)."""
    try:
        files = json.loads((folder / DIGESTS).read_text()).get("files")
    except (OSError, ValueError, AttributeError) as e:
        return f"{folder / DIGESTS}: no readable record ({e})"
    if not isinstance(files, dict) or not files:
        return f"{folder / DIGESTS}: records no files"
    for name, rec in files.items():
        if not isinstance(rec, dict):
            return f"{name}: malformed record"
        problem = check(folder / name, rec, full=full)
        if problem:
            return problem
    return None
