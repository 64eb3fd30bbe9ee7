"""The backend contract: what a backend plugin provides, and the session it opens.

A backend is small on purpose: it reports whether it can run here (without importing its
runtime), lowers a `ModelSpec` and its canonical weights to its runtime, and runs forward passes
while keeping its own KV cache. Everything else — tokenization, sampling, stopping, streaming,
pooling, choosing a backend — lives in the core, once.

    class MyBackend:
        name = "mine"
        version = "1.0"
        capabilities = Capabilities(precisions=("fp32",), default_precision="fp32")
        def availability(self) -> Availability: ...
        def devices(self) -> list[str]: ...  # lower-case names: "cpu", "gpu.0", ...
        def open(self, request: OpenRequest) -> Session: ...
        # only with Capabilities(converts=True): prepare(request, options, out_dir) -> metadata, which builds
        # the runtime model and saves it into out_dir (nothing else: the core caches it, measures its parity,
        # writes its marker; see `tinylm.conversion`)
        # only with Capabilities(default_device=True): default_device() -> devices()[0], found without listing
        # every device (which may mean probing accelerators), for loads that ask for no device
        # only with Capabilities(native=True): native_precisions(device) -> the precisions that device computes
        # at full speed (tinylm-openvino: bf16 only on a CPU with AMX), asked by the automatic choice (`KindPreference`)

Options are declared, not probed: `Capabilities(options=MyOptions)` names a frozen dataclass derived from
`BackendOptions` (or `ConvertOptions` for a converting backend); the core parses `tinylm.load(**options)` into
it once per load and hands the parsed object to `prepare` and `open` (`OpenRequest.options`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from .arch.spec import ModelSpec
from .errors import ConfigError

__all__ = [
    "Availability",
    "BackendOptions",
    "ConvertOptions",
    "Capabilities",
    "KindPreference",
    "WeightsOnce",
    "OpenRequest",
    "Backend",
    "Session",
    "RowSession",
    "runtime_available",
    "requires_runtimes",
    "deferred",
    "installed_version",
    "key_options",
]


@dataclass(frozen=True, kw_only=True)
class Availability:
    """Whether a backend can run on this machine; when not, why and how to fix it.

    `convert_only` marks a backend that can build artifacts here but not execute them
    (Core ML on Linux).
    """

    ok: bool
    reason: str = ""
    hint: str = ""
    convert_only: bool = False

    def explain(self) -> str:
        """One line for users: the reason and the fix."""
        if self.ok:
            return "available"
        return f"{self.reason} Fix: {self.hint or 'choose another backend (`tinylm backends` lists them)'}"


_O = TypeVar("_O", bound="BackendOptions")


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """A backend's load options (`tinylm.load(model, **options)`), parsed once per load by the core.

    A backend with options derives a frozen dataclass from this one (fields with defaults; checks beyond the
    types in `validate`) and declares it as `Capabilities(options=...)`. A backend that declares none takes
    no options: any option given is a `ConfigError`, never silently ignored.
    """

    precision: str = "fp32"  # set by the core from the load's precision, never passed as an option

    @classmethod
    def parse(cls: type[_O], precision: str, options: Mapping[str, Any], *, backend: str) -> _O:
        """The options of one load: unknown names and invalid values raise `ConfigError` naming the fix."""
        known = sorted(f.name for f in fields(cls) if f.init and f.name != "precision")
        unknown = sorted(set(options) - set(known))
        if unknown:
            allowed = f"use only {', '.join(known)}" if known else f"the {backend} backend takes no options"
            raise ConfigError(f"unknown {backend} backend option(s): {', '.join(unknown)}. Fix: {allowed}.")
        built = cls(precision=precision, **dict(options))
        built.validate()
        return built

    def validate(self) -> None:
        """Raise `ConfigError` (ending with `Fix: ...`) for a value out of range; the types are the fields'."""


@dataclass(frozen=True, kw_only=True)
class ConvertOptions(BackendOptions):
    """The options of a converting backend (`Capabilities(converts=True)`), with what the core's conversion
    pipeline asks of them.

    Attributes:
        parity: measure parity (and, at a lossy precision, the perplexity change) while converting.
        open_only: fields that change how an artifact is opened, never what it holds: they stay out of the
            cache key, so `load(m, compiled_cache=False)` opens the artifact `load(m)` built.
    """

    parity: bool = True
    open_only: ClassVar[tuple[str, ...]] = ()

    def key(self) -> dict[str, Any]:
        """The options as the artifact cache key sees them (see `key_options`)."""
        return key_options(self, open_only=self.open_only)

    def capacity(self, spec: ModelSpec) -> int:
        """Positions a session of the built model holds (the core bounds its parity text by it)."""
        return spec.max_positions

    def baseline(self: _O) -> _O:
        """The options of this backend's own fp32 build of the model: the perplexity baseline of a lossy
        precision, and the parity reference when the reference backend is not installed."""
        return replace(self, precision="fp32")

    def for_parity(self: _O) -> _O:
        """The options the core opens a just-built artifact with to measure it (e.g. without a machine cache
        that would be written into the folder before it is renamed into place)."""
        return self


@dataclass(frozen=True, kw_only=True)
class KindPreference:
    """How the automatic choice (no `backend=`, no `TINYLM_BACKEND`) ranks a backend for models of one kind, and
    the precisions it tries there when the user names none (`Capabilities.auto`; `tinylm.selection` has the rules).

    Attributes:
        priority: the backend's rank for this kind, in place of `Capabilities.priority`.
        precisions: tried in order: the first one the device computes natively (`native_precisions`, for a
            backend declaring `Capabilities(native=True)`) whose built artifact keeps the kind's quality bar
            (`tinylm.quality`; only lossless fp32 needs no measurement) runs. End it with "fp32", the fallback.
        why: one line for users: what these rules come from (the measurement that justifies them, where it is).
    """

    priority: int
    precisions: tuple[str, ...]
    why: str = ""


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a backend can do, as data (the core derives everything else).

    Attributes:
        precisions: the precisions `open` accepts ("fp32", "bf16", "fp16", "int8", "int4").
        default_precision: used when the user names none.
        kinds: model kinds it runs ("decoder", "encoder").
        batch: whether `forward` accepts a batch dimension above 1.
        priority: order for automatic choice; the highest available backend wins.
        converts: True when `prepare` builds an artifact that the core caches (then `options` derives from
            `ConvertOptions`).
        reference: the backend other backends' parity is measured against (tinylm-torch).
        options: the backend's options type (see `BackendOptions`; a converting backend that declares none
            gets `ConvertOptions`).
        step: its sessions define `step(token_id)`, the decode fast path (see `Session`).
        default_device: it defines `default_device()`, cheaper than `devices()[0]`.
        states: the per-layer state kinds its sessions keep between calls (`ModelSpec.state_kinds`: "kv" for
            attention's cache, "conv" for LFM2's short convolutions); a model that needs another is refused.
        rows: its sessions hold several independent sequences ("rows") at once: opened with
            `OpenRequest(rows=N)`, they implement `RowSession` besides `Session` (the core's scheduler,
            `tinylm.batching`, decodes many sequences in one forward pass through it).
        row_states: the state kinds its rows sessions keep per row (default "kv" only): a model that needs
            another (LFM2's "conv") has its batched calls run one after another on its single session.
        rollback: its sessions define `truncate(length)` (see `Session`): drop the cached tokens past `length`,
            what speculative decoding (`tinylm.speculative`) needs to roll back rejected tokens. A KV cache rolls
            back; a state that folds the sequence into itself (LFM2's "conv") cannot, so a session refuses to
            truncate such a model and the core does not speculate on it.
        auto: per model kind ("encoder", "decoder"), how the automatic choice ranks it and which precisions it
            tries there (`KindPreference`); a kind not listed uses `priority` and `default_precision`.
        native: it defines `native_precisions(device)`: the precisions the device computes natively at full speed
            (not emulated, not merely supported), the only ones of `auto`'s lists the automatic choice tries
            (without it: every precision it offers).
    """

    precisions: tuple[str, ...] = ("fp32",)
    default_precision: str = "fp32"
    kinds: tuple[str, ...] = ("decoder", "encoder")
    batch: bool = True
    priority: int = 0
    converts: bool = False
    reference: bool = False
    options: type[BackendOptions] = BackendOptions
    step: bool = False
    default_device: bool = False
    states: tuple[str, ...] = ("kv",)
    rows: bool = False
    row_states: tuple[str, ...] = ("kv",)
    rollback: bool = False
    auto: Mapping[str, KindPreference] = field(default_factory=dict)
    native: bool = False

    def __post_init__(self) -> None:
        for kind, pref in self.auto.items():
            unknown = [p for p in pref.precisions if p not in self.precisions]
            if unknown or not pref.precisions:
                raise TypeError(f"Capabilities.auto[{kind!r}] lists precisions the backend does not offer: {unknown}")
        if self.converts and self.options is BackendOptions:  # declared none: a converting backend's defaults
            object.__setattr__(self, "options", ConvertOptions)
        if self.converts and not issubclass(self.options, ConvertOptions):
            raise TypeError("a converting backend declares options derived from tinylm.backend.ConvertOptions")


class WeightsOnce:
    """A weights loader that runs once: every request derived from one load (the conversion, its parity
    reference, the fp32 baseline, the session) shares the same canonical weights."""

    def __init__(self, load: Callable[[], Mapping[str, np.ndarray]]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._weights: Mapping[str, np.ndarray] | None = None

    def __call__(self) -> Mapping[str, np.ndarray]:
        with self._lock:
            if self._weights is None:
                self._weights = self._load()
            return self._weights

    def forget(self) -> None:
        """Drop the weights read so far (the core calls it once a load has opened its session): a later call,
        e.g. the rows session opened at the first batched call, reads them again instead of this loader
        keeping a second copy alive beside the session's."""
        with self._lock:
            self._weights = None


@dataclass(frozen=True, kw_only=True)
class OpenRequest:
    """Everything `Backend.open`/`prepare` needs to build a session for one model.

    Attributes:
        spec: the architecture description.
        folder: the model folder (Hugging Face layout).
        weights_loader: returns the canonical, validated weights (numpy, memory-mapped where possible); the
            core passes a `WeightsOnce`, so requests copied with `dataclasses.replace` read them once.
        precision: one of the backend's `capabilities.precisions`.
        device: one of the backend's `devices()`.
        num_threads: intra-op threads to use.
        artifact: the artifact folder (backends with `converts=True`), else None.
        meta: the artifact's metadata (its `tinylm-artifact.json`, as `prepare` returned it plus the core's
            record), read once by the core; empty without an artifact.
        options: the parsed options (an instance of `capabilities.options`).
        rows: how many rows (independent sequences) the session must hold at once, for a backend declaring
            `Capabilities(rows=True)`: it allocates KV for that many (`RowSession.max_rows`). The core opens
            such a session lazily, at the first batched call (`Model.generate_batch`, the server's
            `--parallel`), and replaces it only when a later call asks for more rows; 1 for the
            single-sequence session every load opens. Where the runtime allows, the
            sessions a backend opens for one artifact share the loaded weights.
    """

    spec: ModelSpec
    folder: Path
    weights_loader: Callable[[], Mapping[str, np.ndarray]]
    precision: str
    device: str
    num_threads: int
    artifact: Path | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    options: Any = field(default_factory=BackendOptions)
    rows: int = 1

    @property
    def weights(self) -> Mapping[str, np.ndarray]:
        """Canonical weights (see `tinylm.arch.layout`), loaded on first access."""
        return self.weights_loader()


@runtime_checkable
class Session(Protocol):
    """One model opened on one backend: forward passes with a KV cache the session owns.

    Token ids are int64 arrays of shape (B, T). A session is used by one thread at a time.

    With `Capabilities(step=True)`, `step(token_id: int) -> np.ndarray`, a decode fast path the generation
    loop uses: append one token to the one cached sequence (batch 1) and return the next-token logits
    (V,) float32, as `forward(np.array([[token_id]]))[0]` would, but the array may be a view of a buffer
    the session reuses, valid until its next call (no copy, no re-validation of a (B, T) array: on a
    small model, the Python between two runtime calls is a visible share of a decode step).

    With `Capabilities(rollback=True)`, `truncate(length: int) -> None`: drop the cached tokens past `length`
    (0 <= length <= self.length, else `GenerationError` naming the fix), so that the next call continues the
    sequence's first `length` tokens and its logits equal those of that shorter sequence (within the parity
    tolerance), as if the dropped tokens had never been fed. A model whose layers keep a state other than
    "kv" (`ModelSpec.state_kinds`) cannot be truncated: `CapabilityError`, nothing changed. Speculative decoding
    verifies several proposed tokens in one `forward(..., all_positions=True)` and truncates past the first
    one the model disagrees with.
    """

    @property
    def length(self) -> int:
        """Tokens currently held in the KV cache."""
        ...

    def forward(self, token_ids: np.ndarray, *, all_positions: bool = False) -> np.ndarray:
        """Append `token_ids` (B, T) to the cache and return float32 logits:
        (B, V) for the last position, or (B, T, V) with `all_positions=True`."""
        ...

    def reset(self) -> None:
        """Empty the KV cache."""
        ...

    def embed(self, token_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """Encoders: last hidden states (B, T, H) float32 for a padded batch (no cache)."""
        ...

    def close(self) -> None:
        """Release the runtime's resources."""
        ...


@runtime_checkable
class RowSession(Protocol):
    """A session holding several independent sequences ("rows") at once (`Capabilities(rows=True)`).

    Each row has its own KV length and positions; rows of different lengths are decoded together, in one
    forward pass. Rows are small ints the session hands out (`add_rows`); a dropped row's id may be reused.
    The core's scheduler (`tinylm.batching`) uses only the methods below, from one thread at a time, and
    keeps each row within the context (`row_length(row) + 1 <= capacity` before a step).

    Exactness: a row's logits equal those of its sequence decoded alone with `forward`/`step` (within the
    parity tolerance), whichever other rows are live, whenever they join or leave, however long they are.
    `tinylm.testing.conformance` checks it on every backend that declares the capability.
    """

    #: how many rows may be live at once (`OpenRequest.rows` when the session was opened)
    max_rows: int

    def add_rows(self, prompts: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
        """Start one new row per prompt (int64 (T_i,), ragged; T_i >= 1), prefill them (in one run where the
        runtime allows, else one after another), return their ids and the last-position logits (R, V) float32.
        Raises `CapabilityError` (Fix: ...) when more than `max_rows` would be live. All or nothing: when it raises,
        no row of the call stays live and nothing of its prompts is reused later."""
        ...

    def step_rows(self, rows: Sequence[int], token_ids: np.ndarray) -> np.ndarray:
        """Append token_ids[i] (int64 (R,)) to row rows[i] for every listed live row, in one forward pass;
        return next-token logits (R, V) float32 in the order of `rows` (possibly a view of the session's own
        buffer, valid until its next call: copy what you keep). Rows not listed are untouched."""
        ...

    def drop_row(self, row: int) -> None:
        """Forget a row (finished or cancelled); its cache slot is free for `add_rows`."""
        ...

    def row_length(self, row: int) -> int:
        """Tokens held for the row."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A backend plugin object, registered through the `register_backends` hook."""

    name: str
    version: str
    capabilities: Capabilities

    def availability(self) -> Availability:
        """Whether it can run here. Must not import the runtime (use `runtime_available`)."""
        ...

    def devices(self) -> list[str]:
        """Devices present for this backend (first is the default), e.g. ["cpu"]."""
        ...

    def open(self, request: OpenRequest) -> Session:
        """Build or load the runtime model and return a session."""
        ...


def runtime_available(module: str) -> bool:
    """True when `module` can be imported — found with `importlib.util.find_spec`, not imported."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def deferred(target: str) -> Callable[..., Any]:
    """A backend method that imports its implementation at its first call, so that registering the backend
    imports no runtime: `open = deferred("tinylm_mine.opening:open_session")` calls
    `tinylm_mine.opening.open_session(request)` (the arguments without `self`)."""
    import importlib

    module, _, name = target.partition(":")

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"`{module}.{name}`, imported at the first call."
    return method


def requires_runtimes(packages: dict[str, str], *, extra: str) -> Availability | None:
    """An `Availability` naming what to install when any runtime module is missing, else None.

    `packages` maps import names to distribution names, e.g. {"onnxruntime": "onnxruntime"};
    `extra` is the tinylm extra that installs them (e.g. "onnx").
    """
    from .install import install_command

    missing = [dist for module, dist in packages.items() if not runtime_available(module)]
    if not missing:
        return None
    return Availability(
        ok=False,
        reason=f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed.",
        hint=f"{install_command(extra)}  (or: pip install {' '.join(missing)})",
    )


def installed_version(dist: str, *, graph_revision: int | None = None) -> str:
    """The installed version of distribution `dist` ("0+unknown" from a source tree that is not installed),
    for `Backend.version`. A converting backend passes `graph_revision`, bumped whenever the models it builds
    change: the version is part of the artifact cache key, so older artifacts are rebuilt, never reused.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(dist)
    except PackageNotFoundError:
        found = "0+unknown"
    if graph_revision is None:
        return found
    return f"{found}{'.' if '+' in found else '+'}graph{graph_revision}"  # a PEP 440 local version part


def key_options(built: Any, *, open_only: Collection[str] = ()) -> dict[str, Any]:
    """A converting backend's options (a dataclass) as its artifact cache key should see them
    (`ConvertOptions.key`): the fields that differ from their defaults, without `precision` (keyed on its
    own) and without `open_only`, options that change how an artifact is opened but never what it holds. So
    `load(m, quantize_lm_head=True)` reuses the artifact `load(m)` built instead of converting again, and a
    backend that adds an option with a default keeps every cached artifact's key.
    """
    chosen = {}
    for f in fields(built):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        value = getattr(built, f.name)
        if f.name != "precision" and f.name not in open_only and value != default:
            chosen[f.name] = value
    return chosen
