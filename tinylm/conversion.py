"""The conversion pipeline, owned by the core: one path for every converting backend.

    tinylm.load / tinylm.convert
      1. options   `Capabilities.options.parse(precision, **options)`, once per load (model.py)
      2. key       weights' and config's digests + spec + backend + version + precision + `options.key()`
                   (artifacts.py); a trusted entry is opened with the metadata read to trust it
      3. weights   read, validated and finite-scanned once (`WeightsOnce`), shared by every step below
      4. prepare   `backend.prepare(request, options, out_dir)`: build the runtime model and save it, nothing else
      5. parity    here: the built artifact opened through `backend.open` against the reference backend found
                   in the registry (and, at a lossy precision, against the backend's own fp32 build)
      6. marker    the record (files, versions, parity) written by artifacts.py; the folder renamed into place
      7. open      `backend.open(request)` with `request.meta`, the record already read

A backend never calls back into the registry, never re-reads the model folder and never measures parity itself.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import parity
from .backend import Backend, ConvertOptions, OpenRequest, Session
from .selection import default_device

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

__all__ = ["convert_into"]


def _prepare(backend: Backend, request: OpenRequest, options: ConvertOptions, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    built = replace(request, artifact=out_dir, options=options)
    meta = dict(backend.prepare(built, options, out_dir) or {})  # type: ignore[attr-defined]
    meta.setdefault("prepare_seconds", time.perf_counter() - started)
    return meta


def _open(
    backend: Backend, request: OpenRequest, options: ConvertOptions, folder: Path, meta: dict[str, Any]
) -> Session:
    probe = replace(request, artifact=folder, meta=meta, options=options.for_parity(), device=default_device(backend))
    return backend.open(probe)


def _parity(
    backend: Backend, request: OpenRequest, out_dir: Path, meta: dict[str, Any], tokenizer: Tokenizer | None
) -> dict[str, Any]:
    """Parity of the artifact in `out_dir` (see `tinylm.parity`), measured on the backend's default device."""
    availability = backend.availability()
    if not availability.ok:  # e.g. Core ML on Linux: it converts here but cannot execute
        return {"parity": None, "parity_note": f"not measured at conversion: {availability.reason}"}
    options: ConvertOptions = request.options
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:  # closes the sessions, then removes the fp32 build
        ours = _open(backend, request, options, out_dir, meta)
        stack.callback(ours.close)
        fp32 = None
        if request.precision != "fp32" and "fp32" in backend.capabilities.precisions:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=out_dir)))
            base, base_request = options.baseline(), replace(request, precision="fp32")
            fp32 = _open(backend, base_request, base, tmp, _prepare(backend, base_request, base, tmp))
            stack.callback(fp32.close)
        tokens = min(256, options.capacity(request.spec))
        record = parity.record(ours, fp32, request, backend=backend.name, max_tokens=tokens, tokenizer=tokenizer)
    record["parity_seconds"] = time.perf_counter() - started
    return record


def convert_into(
    backend: Backend, request: OpenRequest, out_dir: Path, *, tokenizer: Tokenizer | None = None
) -> dict[str, Any]:
    """Steps 4 and 5: `prepare` into `out_dir`, then measure the result; returns the metadata to record.

    `tokenizer`: the model's, already loaded (the parity text is tokenized with it), else read from the folder."""
    options = request.options
    if not isinstance(options, ConvertOptions):
        raise TypeError(f"backend {backend.name!r} converts, so its options must derive from ConvertOptions")
    meta = _prepare(backend, request, options, out_dir)
    if options.parity:
        meta.update(_parity(backend, request, out_dir, meta, tokenizer))
    return meta
