"""tinylm-openvino vs openvino-genai's LLMPipeline (on an optimum-intel export of the same folder), side by
side, on a random model shaped like SmolLM2-135M, at fp32, bf16, fp16, int8 and int4.

    python benchmarks/openvino_peers.py                 # prints a markdown table
    python benchmarks/openvino_peers.py --write-docs    # also writes docs/benchmarks-openvino.md

The same figures as onnx_peers.py (whose helpers it imports): same weights, 2 threads, a 32-token prompt, 128 new
tokens with EOS ignored, greedy; every measurement in its own process: cold load (tinylm's first load into an
empty cache, parity included; optimum-cli's export [+ NNCF compression]), warm load (a fresh process opening
the converted model; tinylm's figure includes `import tinylm`), time to first token, decode tokens/s (median,
min-max over --runs after a warm-up), peak RSS.

openvino-genai and optimum-intel must not disturb the project's environment; they run with another interpreter:
    --genai-python (or TINYLM_OVGENAI_PYTHON)  a venv with openvino-genai and optimum-intel[openvino]
A peer that cannot run is reported with the reason, never silently dropped. genai runs with its defaults (on a
CPU with AVX512-BF16/AMX that is bf16 execution and a u8 KV cache) and, at fp32, also with f32 forced.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from onnx_peers import _call, _stats, bandwidth_gbs, child_tinylm, params, table  # noqa: E402
from torch_vs_transformers import PROMPT_TOKENS, THREADS, machine_line, prompt_ids  # noqa: E402

NEW_TOKENS = 128
DOCS = HERE.parent / "docs" / "benchmarks-openvino.md"
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
# precision -> optimum-cli --weight-format arguments (576-wide layers reject NNCF's default int4 group of 128)
EXPORT = {"fp32": ["fp32"], "fp16": ["fp16"], "int8": ["int8"], "int4": ["int4", "--group-size", "64"]}
# rows: (precision, runner); genai-f32 is genai with INFERENCE_PRECISION_HINT f32 forced
ROWS = {
    "fp32": ("openvino-genai", "openvino-genai-f32", "tinylm-openvino"),
    "bf16": ("tinylm-openvino",),
    "fp16": ("openvino-genai", "tinylm-openvino"),
    "int8": ("openvino-genai", "tinylm-openvino"),
    "int4": ("openvino-genai", "tinylm-openvino"),
}


# measured in a child process -----------------------------------------------------------------------


def run_genai(
    folder: str, runs: int, extra: dict, *, prompt: list[int] | None = None, new_tokens: int = NEW_TOKENS
) -> dict:
    """openvino-genai's LLMPipeline with `extra` CPU properties: load, then `runs` timed greedy generations."""
    t0 = time.perf_counter()
    import numpy as np
    import openvino as ov
    import openvino_genai as og

    props = {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", **extra}
    # LLMPipeline turns its prefix cache on: with the same prompt every run, the timed runs would prefill one
    # token (first token in 12 ms instead of 31 ms at int8). Every runtime here prefills the whole prompt.
    scheduler = og.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    pipe = og.LLMPipeline(folder, "CPU", scheduler_config=scheduler, **props)
    load = time.perf_counter() - t0
    config = og.GenerationConfig()
    config.max_new_tokens = config.min_new_tokens = new_tokens
    config.ignore_eos, config.do_sample = True, False
    ids = np.asarray([prompt or prompt_ids()], np.int64)
    inputs = og.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))

    class Clock(og.StreamerBase):
        """Stamps every token id. A text callback would miss tokens that decode to "" (the random model's ids
        beyond its small tokenizer)."""

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def write(self, token: int | list[int]) -> og.StreamingStatus:
            self.times += [time.perf_counter()] * (len(token) if isinstance(token, list) else 1)
            return og.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    ttfts, rates, tokens = [], [], []
    for _ in range(runs + 1):
        clock = Clock()
        start = time.perf_counter()
        res = pipe.generate(inputs, config, streamer=clock)
        tokens = list(res.tokens[0])
        assert len(tokens) == new_tokens, len(tokens)
        stamps = clock.times
        ttfts.append(stamps[0] - start)
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    return {"load_s": load, **_stats(ttfts[1:], rates[1:]), "tokens": [int(t) for t in tokens]}


F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}  # genai's defaults would run bf16 here


def child_genai(folder: str, precision: str, runs: int) -> dict:
    return run_genai(folder, runs, {})


def child_genai_f32(folder: str, precision: str, runs: int) -> dict:
    return run_genai(folder, runs, F32)


def convert_genai(folder: str, precision: str, out: str) -> None:
    cmd = [str(Path(sys.executable).parent / "optimum-cli"), "export", "openvino", "--model", folder, "--task"]
    cmd += ["text-generation-with-past", "--weight-format", *EXPORT[precision], out]
    subprocess.run(cmd, check=True, capture_output=True)


CHILDREN = {
    "tinylm-openvino": functools.partial(child_tinylm, backend="openvino"),
    "openvino-genai": child_genai,
    "openvino-genai-f32": child_genai_f32,
}


# driver ------------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, which: str, folder: Path, precision: str, work: Path) -> dict:
    """Cold conversion then a warm run, each in a fresh process."""
    env = {**os.environ, "TINYLM_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
    if which == "tinylm-openvino":
        python = sys.executable
        env["TINYLM_HOME"] = str(work / f"home-{precision}")
        code = (
            "import time; t=time.perf_counter(); import tinylm; "
            f"tinylm.load({str(folder)!r}, backend='openvino', precision={precision!r}); print(time.perf_counter()-t)"
        )
        proc = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
        cold, model = float(proc.stdout.strip().splitlines()[-1]), str(folder)
    else:
        python = args.genai_python
        if not python or not Path(python).exists():
            raise RuntimeError(f"no interpreter with openvino-genai at {python!r} (pass --genai-python)")
        model = str(work / f"genai-{precision}")
        if not Path(model).exists():
            cold, _ = _call(python, ["--convert", "openvino-genai", str(folder), precision, model], env)
            args.cold[precision] = cold
        cold = args.cold[precision]
    _, line = _call(python, ["--child", which, model, precision, str(args.runs)], env)
    return {"cold_s": cold, **json.loads(line)}


def machine() -> str:
    import openvino

    return machine_line(f"openvino {openvino.__version__.split('-')[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help=f"write the table to {DOCS}")
    parser.add_argument("--precisions", default="fp32,bf16,fp16,int8,int4")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--genai-python", default=os.environ.get("TINYLM_OVGENAI_PYTHON", "/tmp/ovgenai-venv/bin/python")
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--convert", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, folder, precision, runs = args.child
        print(json.dumps(CHILDREN[which](folder, precision, int(runs))))
        return 0
    if args.convert:
        _, folder, precision, out = args.convert
        convert_genai(folder, precision, out)
        return 0
    args.cold = {}
    bw = bandwidth_gbs()
    roofline = {p: bw * 1e9 / (params() * b) for p, b in BYTES_PER_PARAM.items()}
    print(f"memory bandwidth {bw:.1f} GB/s; roofline tok/s: {roofline}", file=sys.stderr)
    rows: list[tuple[str, str, dict | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "smollm2-135m-random"
        build = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", str(folder)]
        subprocess.run(build, check=True, capture_output=True)
        for precision in args.precisions.split(","):
            for which in ROWS[precision]:
                try:
                    result: dict | str = measure(args, which, folder, precision, work)
                except (RuntimeError, subprocess.CalledProcessError) as e:
                    result = str(e).replace("|", "/")[:200]
                rows.append((precision, which, result))
                print(table([rows[-1]], roofline).splitlines()[-1], file=sys.stderr, flush=True)
            for path in [*work.glob(f"genai-{precision}*"), *work.glob(f"home-{precision}")]:  # free the disk
                shutil.rmtree(path, ignore_errors=True)
    text = table(rows, roofline)
    print(text)
    if args.write_docs:
        write_docs(text, bw, roofline)
    return 0


def write_docs(text: str, bw: float, roofline: dict[str, float]) -> None:
    DOCS.write_text(
        "# tinylm-openvino vs openvino-genai\n\n"
        f"Measured {dt.date.today().isoformat()} with `python benchmarks/openvino_peers.py --write-docs`.\n\n"
        f"Machine: {machine()}. Memory bandwidth (numpy copy, read + write): {bw:.1f} GB/s, so the roofline is "
        + ", ".join(f"{roofline[p]:.0f} tok/s at {p}" for p in BYTES_PER_PARAM)
        + ".\n\n"
        "Model: random weights with SmolLM2-135M's exact architecture (hidden 576, 30 layers, 9 heads, 3 KV heads, "
        f"intermediate 1536, vocab 49152, tied embeddings). Greedy, {PROMPT_TOKENS}-token prompt, {NEW_TOKENS} new "
        f"tokens, EOS ignored, {THREADS} threads; each row in its own processes. openvino-genai's LLMPipeline runs "
        "an optimum-intel export of the same folder (`optimum-cli export openvino --weight-format ...`; int4 with "
        "group 64) with its defaults -- bf16 execution and a u8 KV cache on this CPU -- and at fp32 also with f32 "
        "forced (`openvino-genai-f32`). tinylm-openvino: fp32 is exact (f32 execution and KV cache); bf16 = f16 "
        "weights, bf16 execution (genai's default execution); fp16 = f16 weights, executed in bf16 on a CPU "
        "without FP16 arithmetic; int8/int4 execute in f32 (see docs/backends/openvino.md). tinylm's numbers go "
        "through its full generation loop (sampling, streaming detokenization).\n\n" + text + "\n",
        encoding="utf-8",
    )
    print(f"wrote {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
