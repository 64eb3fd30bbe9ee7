"""`tinylm bench`: every available backend and precision, each measured in its own process.

For each (backend, precision): cold load (conversion, in an empty cache), warm load (a fresh process
reusing the cached artifact, and the bytecode the cold one cached as a default Python does), time to first
token, decode tokens/s (median of several runs after a warm-up, with min and max), peak RSS and artifact
bytes; for embedders, sentences/s at batch 1 and 32. It also measures this machine's memory bandwidth and
prints each decode figure as a fraction of the roofline (weight bytes read per token / bandwidth).

Results are saved under `TINYLM_HOME/bench/` (`tinylm.ranking`); with `TINYLM_AUTO_BENCH=1`, automatic backend
choice uses the fastest backend of the latest ranking saved for this machine and model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ranking, settings

__all__ = [
    "BenchConfig",
    "BenchResult",
    "Figures",
    "run_bench",
    "memory_bandwidth",
    "format_table",
    "prompt_ids",
    "weight_bytes",
    "BYTES_PER_WEIGHT",
    "EMBED_SENTENCES",
    "AUTO",
]

_ITEMS = ("a pair of trail running shoes", "the castle building set", "a wireless keyboard", "two bath towels",
          "a winter jacket in size M", "a coffee grinder", "the blue backpack", "a phone case")  # fmt: skip
_WHEN = ("on Monday", "on Tuesday", "last week", "ten days ago")
#: embedder throughput input: 64 support messages of 62-68 word pieces (all-MiniLM-L6-v2's tokenizer), as a help
#: desk embeds them (issue 30's workload)
EMBED_SENTENCES = [
    f"Hello, I ordered {_ITEMS[i % 8]} {_WHEN[i // 8 % 4]} (order {40000 + 37 * i}) and it still has not arrived. "
    f"The tracking page says it left the warehouse {2 + i % 5} days ago. Could you check where it is and tell me "
    "whether I can get a refund or a replacement if it is lost? Thanks, Sam"
    for i in range(64)
]
AUTO = "auto"  # `--backends auto`: the row of a load that names no backend and no precision


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What to measure."""

    model: str
    backends: tuple[str, ...] = ()  # empty: every available backend
    precisions: tuple[str, ...] = ()  # empty: each backend's precisions
    prompt_tokens: int = 32
    new_tokens: int = 128
    runs: int = 3
    threads: int | None = None


@dataclass(kw_only=True)
class Figures:
    """What one measured row holds (also the rows of the peer harness, benchmarks/peers.py)."""

    cold_load_s: float | None = None
    warm_load_s: float | None = None
    ttft_ms: float | None = None
    decode_tps: float | None = None
    decode_tps_min: float | None = None
    decode_tps_max: float | None = None
    peak_rss_mb: float | None = None
    artifact_bytes: int | None = None
    sentences_per_s_1: float | None = None
    sentences_per_s_32: float | None = None


@dataclass(kw_only=True)
class BenchResult(Figures):
    """One (backend, precision) row; `error` is set instead of figures when it could not run."""

    backend: str
    precision: str
    device: str = ""
    roofline_fraction: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def memory_bandwidth(size_mb: int = 256, repeats: int = 5) -> float:
    """Copy bandwidth in GB/s (bytes read + bytes written per second), best of `repeats`."""
    import numpy as np

    src = np.ones(size_mb * (1 << 20) // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _folder_bytes(path: Path | None) -> int | None:
    """The model's files: an artifact's inventory (what `tinylm convert` writes, without the copies a backend keeps
    beside it for this machine, e.g. ONNX Runtime's pre-packed graph), else the folder's weights and graphs."""
    if path is None or not path.exists():
        return None
    from .artifacts import read_marker

    listed = (read_marker(path) or {}).get("files")
    if isinstance(listed, dict) and listed:
        return sum((path / name).stat().st_size for name in listed if (path / name).is_file())
    skip = {"tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "README.md"}
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in skip)


BYTES_PER_WEIGHT = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}


def weight_bytes(spec: Any, precision: str) -> int:
    """Bytes of weights a decode step reads at `precision` (every linear and the LM head; the
    embedding table too when it is tied to the head). The roofline divides bandwidth by this."""
    import math

    from .arch import expected_shapes

    shapes = expected_shapes(spec)
    count = sum(math.prod(s) for n, s in shapes.items() if n != "embed.weight" or spec.tie_embeddings)
    return int(count * BYTES_PER_WEIGHT.get(precision, 4.0))


def prompt_ids(vocab: int, n: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(0).integers(3, min(vocab, 400), n).tolist()


def _child(job: dict[str, Any]) -> dict[str, Any]:
    """Runs in the measuring process: one load, then the timed runs."""
    import tinylm

    start = time.perf_counter()
    named = {} if job["backend"] == AUTO else {"backend": job["backend"], "precision": job["precision"]}
    model = tinylm.load(job["model"], **named)
    load_s = time.perf_counter() - start
    out: dict[str, Any] = {"load_s": load_s, "device": model.device, "backend": model.backend}
    out.update(precision=model.precision, chosen_by=model.chosen_by)
    out["artifact_bytes"] = _folder_bytes(model.artifact or model.path)
    out["weight_bytes"] = weight_bytes(model.spec, model.precision)
    if job.get("load_only"):
        out["peak_rss_mb"] = _peak_rss_mb()
        return out
    if model.spec.kind == "encoder":
        texts = EMBED_SENTENCES
        for batch, key in ((1, "sentences_per_s_1"), (32, "sentences_per_s_32")):
            model.embed(texts[:batch])
            start = time.perf_counter()
            done = 0
            while time.perf_counter() - start < 2.0:
                model.embed(texts[:batch], batch_size=batch)
                done += batch
            out[key] = done / (time.perf_counter() - start)
    else:
        prompt = prompt_ids(model.spec.vocab_size, job["prompt_tokens"])
        runs = []
        for _ in range(job["runs"] + 1):  # the first run warms up
            done = model.generate(prompt, max_new_tokens=job["new_tokens"], temperature=0, ignore_eos=True)
            runs.append((done.usage.time_to_first_token, done.usage.tokens_per_second))
        timed = runs[1:]
        out["ttft_ms"] = statistics.median(t for t, _ in timed) * 1000
        speeds = [s for _, s in timed]
        out.update(decode_tps=statistics.median(speeds), decode_tps_min=min(speeds), decode_tps_max=max(speeds))
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _spawn(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tinylm.bench", json.dumps(job)], capture_output=True, text=True, env=env, timeout=3600
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _plan(config: BenchConfig) -> tuple[list[tuple[str, str]], list[BenchResult], list[str]]:
    """(backend, precision) pairs to measure, rows for the backends that cannot run here, and a note for each
    requested precision a backend does not offer. `UnknownBackend` for a name no plugin registers;
    `PrecisionUnsupported` when the request leaves nothing to measure and nothing to report."""
    from .errors import PrecisionUnsupported
    from .plugins import get_manager
    from .resolve import resolve_model
    from .selection import unknown_backend
    from .source import ModelFolder

    manager = get_manager()
    backends = manager.backends()
    requested = [name.lower() for name in config.backends]  # names as `tinylm.load(backend=...)` takes them
    for name in requested:
        if name not in backends and name != AUTO:
            raise unknown_backend(name, manager, source="--backends")
    spec = ModelFolder(resolve_model(config.model, manager)).spec
    kind, states = spec.kind, spec.state_kinds
    plan: list[tuple[str, str]] = []
    skipped: list[BenchResult] = []
    notes: list[str] = []
    for name, backend in sorted(backends.items()):
        if requested and name not in requested:
            continue
        av = manager.availability(backend)
        lacking = [k for k in states if k not in backend.capabilities.states]
        if not av.ok or kind not in backend.capabilities.kinds or lacking:
            reason = (
                av.explain()
                if not av.ok
                else f"does not run {kind} models"
                if kind not in backend.capabilities.kinds
                else f"does not keep the per-layer {', '.join(lacking)} state this model needs"
            )
            skipped.append(BenchResult(backend=name, precision="-", error=reason))
            continue
        offered = backend.capabilities.precisions
        plan += [(name, p) for p in config.precisions or offered if p in offered]
        notes += [
            f"{name} does not offer precision {p!r} (it offers {', '.join(offered)}): not measured"
            for p in config.precisions
            if p not in offered
        ]
    if AUTO in requested:
        plan.append((AUTO, AUTO))  # once, whatever --precisions says: the automatic choice picks the precision
    if not plan and not skipped:
        raise PrecisionUnsupported(
            "nothing to measure: " + "; ".join(notes) + ". Fix: ask for a precision one of the backends offers "
            "(`tinylm backends` lists them), or leave --precisions out to measure each backend's own."
        )
    return plan, skipped, notes


def run_bench(config: BenchConfig, *, progress: Any = None) -> tuple[list[BenchResult], float]:
    """Measure every planned (backend, precision) in separate processes; returns rows and GB/s."""
    plan, rows, notes = _plan(config)
    for note in notes:
        if progress:
            progress(note)
    bandwidth = memory_bandwidth()
    threads = config.threads or settings.num_threads()
    base = {
        "model": config.model,
        "prompt_tokens": config.prompt_tokens,
        "new_tokens": config.new_tokens,
        "runs": config.runs,
    }
    for backend, precision in plan:
        if progress:
            progress(f"{backend}/{precision} ...")
        row = BenchResult(backend=backend, precision=precision)
        with tempfile.TemporaryDirectory(prefix="tinylm-bench-") as home:
            env = {**os.environ, "TINYLM_HOME": home, "TINYLM_NUM_THREADS": str(threads)}
            env.pop("TINYLM_BACKEND", None)
            # as on a default Python, the cold process caches the bytecode the warm one reads (with
            # PYTHONDONTWRITEBYTECODE set and an editable install, every warm load recompiles tinylm: +0.04 s)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            job = {**base, "backend": backend, "precision": precision}
            cold = _spawn({**job, "load_only": True}, env)  # empty cache: converts
            warm = _spawn(job, env)  # fresh process, cached artifact
        if "error" in cold or "error" in warm:
            row.error = cold.get("error") or warm.get("error", "")
        else:
            row.cold_load_s, row.warm_load_s, row.device = cold["load_s"], warm["load_s"], warm["device"]
            if backend == AUTO:  # what the automatic choice ran, and why
                row.backend, row.precision = f"{AUTO} ({warm['backend']})", warm["precision"]
                row.extra["chosen_by"] = warm["chosen_by"]
            for key in (
                "ttft_ms",
                "decode_tps",
                "decode_tps_min",
                "decode_tps_max",
                "peak_rss_mb",
                "artifact_bytes",
                "sentences_per_s_1",
                "sentences_per_s_32",
            ):
                setattr(row, key, warm.get(key))
            row.extra["weight_bytes"] = warm.get("weight_bytes")
            if row.decode_tps and warm.get("weight_bytes"):
                roofline = bandwidth * 1e9 / warm["weight_bytes"]  # tokens/s if each weight byte is read once per token
                row.roofline_fraction = row.decode_tps / roofline
                row.extra["roofline_tps"] = roofline
        rows.append(row)
    named = [dataclasses.asdict(r) for r in rows if not r.backend.startswith(AUTO)]  # the ranking names backends
    ranking.save(config.model, named, bandwidth)
    return rows, bandwidth


def format_table(rows: Sequence[BenchResult], bandwidth: float) -> str:
    """A markdown table of the results."""

    def f(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"memory bandwidth: {bandwidth:.1f} GB/s",
        "",
        "| backend | precision | device | cold load (s) | warm load (s) | first token (ms) | decode tok/s (min-max) "
        "| of roofline | sentences/s (1 / 32) | peak RSS (MB) | artifact (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.error:
            lines.append(f"| {r.backend} | {r.precision} | not measured: {r.error} |||||||||")
            continue
        decode = "-" if r.decode_tps is None else f"{r.decode_tps:.1f} ({r.decode_tps_min:.1f}-{r.decode_tps_max:.1f})"
        sentences = "-" if r.sentences_per_s_1 is None else f"{r.sentences_per_s_1:.0f} / {r.sentences_per_s_32:.0f}"
        lines.append(
            f"| {r.backend} | {r.precision} | {r.device} | {f(r.cold_load_s, '.2f')} | {f(r.warm_load_s, '.2f')} "
            f"| {f(r.ttft_ms, '.0f')} | {decode} | {f(r.roofline_fraction and r.roofline_fraction * 100, '.0f')}% "
            f"| {sentences} | {f(r.peak_rss_mb, '.0f')} | {f(r.artifact_bytes and r.artifact_bytes / 1e6, '.1f')} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[BenchResult], out: Path) -> None:
    """A bar chart: one group per backend, one bar per precision (decode tok/s or sentences/s)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from .errors import TinyLMError

        raise TinyLMError(
            "--plot needs matplotlib. Fix: pip install -c constraints.txt -e '.[bench]' (or pip install matplotlib)"
        ) from None
    measured = [r for r in rows if not r.error]
    backends = sorted({r.backend for r in measured})
    precisions = sorted({r.precision for r in measured})
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(precisions))
    for i, precision in enumerate(precisions):
        values = [
            next(
                (
                    r.decode_tps or r.sentences_per_s_32 or 0
                    for r in measured
                    if (r.backend, r.precision) == (b, precision)
                ),
                0,
            )
            for b in backends
        ]
        ax.bar([x + i * width for x in range(len(backends))], values, width, label=precision)
    ax.set_xticks([x + width * (len(precisions) - 1) / 2 for x in range(len(backends))], backends)
    ax.set_ylabel("decode tokens/s (embedders: sentences/s at batch 32)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":  # the measuring child process
    print(json.dumps(_child(json.loads(sys.argv[1]))))
