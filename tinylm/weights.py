"""Reading checkpoint weights: safetensors only, memory-mapped, validated before use.

The safetensors layout is an 8-byte little-endian header length, a JSON header
(`{name: {"dtype", "shape", "data_offsets": [begin, end]}}`), then the raw bytes. tinylm reads it
with `numpy.memmap` so tensors are views of the page cache (bfloat16 is widened to float32, which
is exact). Every way a file can lie is checked against its size first, so a truncated or corrupted
file is a `WeightsError` naming the file, never a crash in a runtime. Pickle checkpoints are refused.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from .errors import WeightsError

__all__ = ["SafetensorsFile", "CheckpointWeights", "weight_files", "PICKLE_SUFFIXES"]

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to float32 on read
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_MAX_HEADER = 100 * 1024 * 1024
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _corrupt(path: Path, what: str) -> WeightsError:
    return WeightsError(
        f"{path}: {what}. The file is truncated or corrupted. "
        "Fix: download or copy it again (compare its size and sha256 with the source)."
    )


class SafetensorsFile:
    """One validated, memory-mapped safetensors file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # O_NONBLOCK: opening a FIFO put in the file's place returns at once instead of waiting for a writer
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                os.close(fd)
                raise _not_regular(self.path)
            size = info.st_size
            with os.fdopen(fd, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise _corrupt(self.path, f"only {size} bytes, shorter than a safetensors header")
                (n,) = struct.unpack("<Q", head)
                if n > _MAX_HEADER or 8 + n > size:
                    raise _corrupt(self.path, f"header length {n} does not fit in a file of {size} bytes")
                raw_header = f.read(n)
        except OSError as e:
            raise WeightsError(f"{self.path}: cannot read ({e.strerror}). Fix: check the path and permissions.") from e
        try:
            header = json.loads(raw_header)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _corrupt(self.path, f"its header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise _corrupt(self.path, "its header is not a JSON object")
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._data_start = 8 + n
        data_size = size - self._data_start
        self._entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int, str]] = {}
        for name, entry in header.items():
            try:
                dtype_name = entry["dtype"]
                shape = tuple(int(d) for d in entry["shape"])
                begin, end = (int(x) for x in entry["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise _corrupt(self.path, f"tensor {name!r} has a malformed header entry") from None
            if dtype_name not in _DTYPES:
                raise WeightsError(
                    f"{self.path}: tensor {name!r} has dtype {dtype_name}, which tinylm cannot read "
                    f"(readable: {', '.join(_DTYPES)}). Fix: save the checkpoint in float32, float16 or bfloat16."
                )
            dtype = _DTYPES[dtype_name]
            nbytes = math.prod(shape) * dtype.itemsize
            if min(shape, default=0) < 0 or begin < 0 or end - begin != nbytes:
                raise _corrupt(
                    self.path, f"tensor {name!r} declares {shape} {dtype_name} but spans {end - begin} bytes"
                )
            if end > data_size:
                raise _corrupt(self.path, f"tensor {name!r} ends at byte {end} but the data holds {data_size}")
            self._entries[name] = (dtype, shape, begin, end, dtype_name)
        self._map: np.memmap | None = None

    def keys(self) -> list[str]:
        return list(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def get(self, name: str) -> np.ndarray:
        """The tensor as a read-only array (a view of the file unless it was bfloat16 or unaligned)."""
        dtype, shape, begin, end, dtype_name = self._entries[name]
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        raw = self._map[self._data_start + begin : self._data_start + end]
        if (self._data_start + begin) % dtype.itemsize:
            raw = raw.copy()  # unaligned: copy so runtimes get aligned memory
        array = raw.view(dtype).reshape(shape)
        if dtype_name == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _not_regular(path: Path) -> WeightsError:
    return WeightsError(
        f"{path}: not a regular file (a directory, a FIFO or a device); tinylm opens only regular files. "
        "Fix: replace it with the safetensors file itself."
    )


def _regular(path: Path) -> Path:
    """`path` when it is a regular file (after following links); else `WeightsError`, never a hang on a FIFO."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise WeightsError(
            f"{path}: cannot be read ({e.strerror}). Fix: replace it with the safetensors file itself "
            "(a symlink must point at an existing file, not at itself)."
        ) from None
    if not stat.S_ISREG(mode):
        raise _not_regular(path)
    return path


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder (single file or an index of shards).

    Raises `WeightsError` when there are none — naming pickle checkpoints, which are refused.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{index}: not a valid safetensors index ({e}). Fix: download it again.") from None
        shards = sorted({str(v) for v in weight_map.values()})
        outside = [s for s in shards if Path(s).name != s or s in (".", "..")]
        if outside:
            raise WeightsError(
                f"{index}: shard name(s) {', '.join(map(repr, outside[:3]))} point outside the model folder. "
                "Fix: an index lists plain file names of the same folder; download the checkpoint again."
            )
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise WeightsError(
                f"{folder}: shard(s) listed in model.safetensors.index.json are missing: {', '.join(missing)}. "
                "Fix: download every shard of the checkpoint."
            )
        return [_regular(folder / s) for s in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    found = sorted(folder.glob("*.safetensors"))
    if found:
        return [_regular(p) for p in found]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise WeightsError(
            f"{folder}: only pickle checkpoints were found ({', '.join(pickles)}); tinylm never loads pickle, "
            "which can run arbitrary code. Fix: convert the checkpoint to safetensors where you trust it, e.g. "
            "`transformers`' model.save_pretrained(dir, safe_serialization=True)."
        )
    raise WeightsError(f"{folder}: no model.safetensors found. Fix: point tinylm at a folder holding the weights.")


class CheckpointWeights(Mapping[str, np.ndarray]):
    """All tensors of a model folder's safetensors files, read lazily by name."""

    def __init__(self, files: list[Path]) -> None:
        self.files = [SafetensorsFile(f) for f in files]
        self._where: dict[str, SafetensorsFile] = {}
        for f in self.files:
            for name in f.keys():
                if name in self._where:
                    raise WeightsError(
                        f"tensor {name!r} appears in both {self._where[name].path.name} and {f.path.name}. "
                        "Fix: the shards come from different checkpoints; download a consistent set."
                    )
                self._where[name] = f

    def __getitem__(self, name: str) -> np.ndarray:
        return self._where[name].get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)
