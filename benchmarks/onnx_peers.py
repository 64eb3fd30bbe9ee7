"""tinylm-onnx vs onnxruntime-genai and optimum (ORTModelForCausalLM), side by side, on a random model shaped
like SmolLM2-135M, at fp32, int8 and int4.

    python benchmarks/onnx_peers.py                 # prints a markdown table
    python benchmarks/onnx_peers.py --write-docs    # also writes docs/benchmarks-onnx.md

Same weights (built once, deterministically, as in torch_vs_transformers.py), 2 threads, a 32-token prompt,
128 new tokens with EOS ignored, greedy. Every measurement runs in its own process: cold load (converting the
model: tinylm's first load into an empty cache, genai's model builder, optimum's export [+ quantization]),
warm load (a fresh process loading the converted model; tinylm's figure includes `import tinylm`), time to
first token (prefill + first token) and decode tokens/s (tokens after the first, per second): median, min and
max over --runs runs after a warm-up; peak RSS (VmHWM) of the warm process.

The peers need packages that must not disturb the project's environment; they run with other interpreters:
    --genai-python   (or TINYLM_GENAI_PYTHON)  a venv with onnxruntime-genai (+ torch, transformers>=5 for its builder)
    --optimum-python (or TINYLM_OPTIMUM_PYTHON) a venv with optimum[onnxruntime]
A peer that cannot run is reported with the reason, never silently dropped.
The roofline is the memory bandwidth (a numpy copy of a 512 MiB array, read + write bytes) divided by the weight
bytes one token reads (params x 4 / 1 / 0.5 bytes at fp32 / int8 / int4, the LM head counted once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from torch_vs_transformers import (  # noqa: E402
    PROMPT_TOKENS,
    SMOLLM2_135M,
    THREADS,
    _peak_rss_mb,
    machine_line,
    pad_token_id,
    prompt_ids,
)

NEW_TOKENS = 128
DOCS = HERE.parent / "docs" / "benchmarks-onnx.md"
BYTES_PER_PARAM = {"fp32": 4.0, "int8": 1.0, "int4": 0.5}


def params() -> int:
    c = SMOLLM2_135M
    h, i, n = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    hd = h // c["num_attention_heads"]
    q, kv = h, c["num_key_value_heads"] * hd
    return n * (h * (q + 2 * kv) + q * h + 3 * h * i) + c["vocab_size"] * h


def bandwidth_gbs() -> float:
    """Copy bandwidth (read + write) in GB/s, measured as `tinylm bench` measures it, on 512 MiB."""
    from tinylm.bench import memory_bandwidth

    return memory_bandwidth(size_mb=512)


def _stats(ttfts: list[float], rates: list[float]) -> dict:
    return {
        "ttft_s": statistics.median(ttfts),
        "tok_s": statistics.median(rates),
        "tok_s_min": min(rates),
        "tok_s_max": max(rates),
        "rss_mb": _peak_rss_mb(),
    }


# measured in a child process -----------------------------------------------------------------------


def child_tinylm(folder: str, precision: str, runs: int, backend: str = "onnx") -> dict:
    """tinylm on `backend`: load, then `runs` timed greedy generations after a warm-up."""
    t0 = time.perf_counter()
    import tinylm

    model = tinylm.load(folder, backend=backend, precision=precision)
    load = time.perf_counter() - t0
    ttfts, rates, tokens = [], [], []
    for _ in range(runs + 1):
        out = model.generate(prompt_ids(), max_new_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
        assert len(out.token_ids) == NEW_TOKENS
        ttfts.append(out.usage.time_to_first_token)
        rates.append(out.usage.tokens_per_second)
        tokens = list(out.token_ids)
    return {"load_s": load, **_stats(ttfts[1:], rates[1:]), "tokens": tokens}


def child_genai(
    folder: str, precision: str, runs: int, *, prompt: list[int] | None = None, new_tokens: int = NEW_TOKENS
) -> dict:
    """onnxruntime-genai on a builder output: load, then `runs` timed greedy generations after a warm-up."""
    prompt = prompt or prompt_ids()
    total = len(prompt) + new_tokens
    t0 = time.perf_counter()
    import onnxruntime_genai as og

    model = og.Model(folder)
    load = time.perf_counter() - t0
    ttfts, rates, tokens = [], [], []
    for _ in range(runs + 1):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=total, min_length=total)
        start = time.perf_counter()
        gen = og.Generator(model, params)
        gen.append_tokens(prompt)
        stamps = []
        while not gen.is_done():
            gen.generate_next_token()
            stamps.append(time.perf_counter())
        tokens = list(gen.get_sequence(0))[len(prompt) :]
        assert len(tokens) == new_tokens, len(tokens)
        ttfts.append(stamps[0] - start)
        rates.append((new_tokens - 1) / (stamps[-1] - stamps[0]))
    return {"load_s": load, **_stats(ttfts[1:], rates[1:]), "tokens": [int(t) for t in tokens]}


def child_optimum(
    folder: str, precision: str, runs: int, *, prompt: list[int] | None = None, new_tokens: int = NEW_TOKENS
) -> dict:
    """optimum's ORTModelForCausalLM generate on its export: load, then `runs` timed greedy generations."""
    t0 = time.perf_counter()
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers.generation.streamers import BaseStreamer

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    torch.set_num_threads(THREADS)
    name = "model_quantized.onnx" if precision == "int8" else "model.onnx"
    model = ORTModelForCausalLM.from_pretrained(folder, file_name=name, session_options=so, use_cache=True)
    load = time.perf_counter() - t0

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    ids = torch.tensor([prompt or prompt_ids()])
    ttfts, rates, tokens = [], [], []
    for _ in range(runs + 1):
        clock = Clock()
        start = time.perf_counter()
        out = model.generate(
            ids, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens, streamer=clock,
            pad_token_id=pad_token_id(model.config),
        )  # fmt: skip
        first, last = clock.times[1], clock.times[-1]  # times[0]: the prompt echoed to the streamer
        tokens = out[0, ids.shape[1] :].tolist()
        ttfts.append(first - start)
        rates.append((new_tokens - 1) / (last - first))
    return {"load_s": load, **_stats(ttfts[1:], rates[1:]), "tokens": tokens}


def convert_genai(folder: str, precision: str, out: str) -> None:
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", folder, "-o", out, "-p", precision]
    subprocess.run([*cmd, "-e", "cpu", "-c", out + ".cache"], check=True, capture_output=True)
    config_path = Path(out) / "genai_config.json"
    config = json.loads(config_path.read_text())
    opts = config["model"]["decoder"].setdefault("session_options", {})
    opts.update({"intra_op_num_threads": THREADS, "inter_op_num_threads": 1})
    config_path.write_text(json.dumps(config, indent=2))


def convert_optimum(folder: str, precision: str, out: str) -> None:
    from optimum.onnxruntime import ORTModelForCausalLM, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    ORTModelForCausalLM.from_pretrained(folder, export=True, use_cache=True).save_pretrained(out)
    if precision == "int8":
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
        ORTQuantizer.from_pretrained(out, file_name="model.onnx").quantize(save_dir=out, quantization_config=config)


CHILDREN = {"tinylm-onnx": child_tinylm, "onnxruntime-genai": child_genai, "optimum": child_optimum}
CONVERTERS = {"onnxruntime-genai": convert_genai, "optimum": convert_optimum}


# driver ------------------------------------------------------------------------------------------------


def _python(args: argparse.Namespace, which: str) -> str:
    return {"tinylm-onnx": sys.executable, "onnxruntime-genai": args.genai_python, "optimum": args.optimum_python}[
        which
    ]


def _call(python: str, argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([python, __file__, *argv], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return seconds, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def measure(args: argparse.Namespace, which: str, folder: Path, precision: str, work: Path) -> dict:
    """Cold conversion then a warm run, each in a fresh process."""
    env = {**os.environ, "TINYLM_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
    python = _python(args, which)
    if not python or not Path(python).exists():
        raise RuntimeError(f"no interpreter for {which} (pass --{which.split('-')[-1]}-python)")
    if which == "tinylm-onnx":
        env["TINYLM_HOME"] = str(work / f"home-{precision}")
        code = f"import time; t=time.perf_counter(); import tinylm; tinylm.load({str(folder)!r}, backend='onnx', precision={precision!r}); print(time.perf_counter()-t)"  # noqa: E501
        proc = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
        cold, model = float(proc.stdout.strip().splitlines()[-1]), str(folder)
    else:
        model = str(work / f"{which}-{precision}")
        cold, _ = _call(python, ["--convert", which, str(folder), precision, model], env)
    _, line = _call(python, ["--child", which, model, precision, str(args.runs)], env)
    return {"cold_s": cold, **json.loads(line)}


def machine() -> str:
    import onnxruntime

    return machine_line(f"onnxruntime {onnxruntime.__version__}")


def table(rows: list[tuple[str, str, dict | str]], roofline: dict[str, float]) -> str:
    lines = [
        "| precision | runtime | cold load (s) | warm load (s) | first token (ms) | decode tok/s: median (min-max) "
        "| of roofline | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for precision, which, r in rows:
        if isinstance(r, str):
            lines.append(f"| {precision} | {which} | not measured: {r} | | | | | |")
            continue
        lines.append(
            f"| {precision} | {which} | {r['cold_s']:.1f} | {r['load_s']:.2f} | {r['ttft_s'] * 1000:.1f} | "
            f"{r['tok_s']:.1f} ({r['tok_s_min']:.1f}-{r['tok_s_max']:.1f}) | "
            f"{r['tok_s'] / roofline[precision]:.0%} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


PEERS = {
    "fp32": ("onnxruntime-genai", "optimum"),
    "int8": ("onnxruntime-genai", "optimum"),
    "int4": ("onnxruntime-genai",),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help=f"write the table to {DOCS}")
    parser.add_argument("--precisions", default="fp32,int8,int4")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--genai-python", default=os.environ.get("TINYLM_GENAI_PYTHON", "/tmp/genai-venv/bin/python"))
    parser.add_argument(
        "--optimum-python", default=os.environ.get("TINYLM_OPTIMUM_PYTHON", "/tmp/peers-venv/bin/python")
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--convert", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, folder, precision, runs = args.child
        print(json.dumps(CHILDREN[which](folder, precision, int(runs))))
        return 0
    if args.convert:
        which, folder, precision, out = args.convert
        CONVERTERS[which](folder, precision, out)
        return 0
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
            for which in (*PEERS[precision], "tinylm-onnx"):
                try:
                    result: dict | str = measure(args, which, folder, precision, work)
                except (RuntimeError, subprocess.CalledProcessError) as e:
                    result = str(e).replace("|", "/")[:200]
                rows.append((precision, which, result))
                print(table([rows[-1]], roofline).splitlines()[-1], file=sys.stderr, flush=True)
                for path in work.glob(f"{which}-{precision}*"):  # free the disk between rows
                    shutil.rmtree(path, ignore_errors=True)
    text = table(rows, roofline)
    print(text)
    if args.write_docs:
        write_docs(text, bw, roofline)
    return 0


def write_docs(text: str, bw: float, roofline: dict[str, float]) -> None:
    today = dt.date.today().isoformat()
    DOCS.write_text(
        "# tinylm-onnx vs onnxruntime-genai and optimum\n\n"
        f"Measured {today} with `python benchmarks/onnx_peers.py --write-docs`.\n\n"
        f"Machine: {machine()}. Memory bandwidth (numpy copy, read + write): {bw:.1f} GB/s, so the roofline is "
        + ", ".join(f"{roofline[p]:.0f} tok/s at {p}" for p in BYTES_PER_PARAM)
        + f" ({params() / 1e6:.1f}M weights read per token at 4 / 1 / 0.5 bytes).\n\n"
        "Model: random weights with SmolLM2-135M's exact architecture (hidden 576, 30 layers, 9 heads, 3 KV heads, "
        "intermediate 1536, vocab 49152, tied embeddings). Greedy generation from a "
        f"{PROMPT_TOKENS}-token prompt, {NEW_TOKENS} new tokens, EOS ignored, {THREADS} threads; each row in its "
        "own processes. Cold load converts the model (tinylm: first `tinylm.load` into an empty cache, parity "
        "and perplexity measurement included; genai: its model builder; optimum: export, plus dynamic "
        "quantization for int8); warm load opens the converted model in a fresh process (tinylm's figure includes "
        "`import tinylm`). Decode is the median over runs after a warm-up (min-max in brackets). tinylm's numbers "
        "go through its full generation loop (sampling, streaming detokenization). int8/int4 in tinylm-onnx and "
        "genai are MatMulNBits (block 32, accuracy level 4, LM head quantized); optimum's int8 is dynamic "
        "quantization (MatMulInteger). optimum has no int4 path.\n\n" + text + "\n",
        encoding="utf-8",
    )
    print(f"wrote {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
