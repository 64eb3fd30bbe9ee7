"""tinylm-torch vs `transformers` generate, side by side, on a random model shaped like SmolLM2-135M.

    python benchmarks/torch_vs_transformers.py                 # prints a markdown table
    python benchmarks/torch_vs_transformers.py --write-docs    # also writes docs/benchmarks-torch.md

Same weights (built once, deterministically, in a temporary folder), 2 threads, a 32-token prompt,
128 new tokens with EOS ignored, greedy. Each measurement runs in its own subprocess so peak RSS
(VmHWM, else `ru_maxrss`) is clean: load time, time to first token (prefill + first token) and decode tokens/s
(tokens after the first, per second), median over 3 runs after a warm-up run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREADS = 2
PROMPT_TOKENS = 32
NEW_TOKENS = 128
RUNS = 3
SMOLLM2_135M = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-torch.md"


def build(folder: Path) -> None:
    """The SmolLM2-135M-shaped random model (seed 0) with the test tokenizer (ids beyond it decode to "")."""
    import torch
    import transformers

    from tinylm.testing.models import write_decoder_tokenizer

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**SMOLLM2_135M)
    model = transformers.LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a spread that keeps logits apart (the default init makes near-ties)
        for _, p in model.named_parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) * (0.05 if p.dim() >= 2 else 0.1) + (1.0 if p.dim() == 1 else 0)
            )
    model.save_pretrained(folder, safe_serialization=True)
    write_decoder_tokenizer(folder, 8192)


def prompt_ids() -> list[int]:
    import random

    rng = random.Random(0)
    return [rng.randrange(3, 448) for _ in range(PROMPT_TOKENS)]


# measured in a subprocess ------------------------------------------------------------------------


def run_tinylm(folder: str, precision: str) -> dict:
    os.environ["TINYLM_NUM_THREADS"] = str(THREADS)
    import torch

    torch.set_num_threads(THREADS)
    import tinylm

    t0 = time.perf_counter()
    model = tinylm.load(folder, backend="torch", precision=precision)
    load = time.perf_counter() - t0
    ids = prompt_ids()
    results = []
    for _ in range(RUNS + 1):
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
        assert len(out.token_ids) == NEW_TOKENS
        results.append((out.usage.time_to_first_token, out.usage.tokens_per_second, list(out.token_ids)))
    return _summary(load, results[1:])


def run_transformers(
    folder: str, precision: str, *, prompt: list[int] | None = None, new_tokens: int = NEW_TOKENS, runs: int = RUNS
) -> dict:
    """transformers generate: load, then `runs` timed greedy generations after a warm-up (also used by peers.py)."""
    import torch

    torch.set_num_threads(THREADS)
    import transformers
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: torch.Tensor) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]  # no CPU int8 generate to compare
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    load = time.perf_counter() - t0
    ids = torch.tensor([prompt or prompt_ids()])
    results = []
    for _ in range(runs + 1):
        clock = Clock()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                ids,
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                streamer=clock,
                pad_token_id=pad_token_id(model.config),
            )
        first, last = clock.times[1], clock.times[-1]  # times[0]: the prompt echoed to the streamer
        tokens = out[0, ids.shape[1] :].tolist()
        assert len(tokens) == new_tokens
        results.append((first - start, (new_tokens - 1) / (last - first), tokens))
    return _summary(load, results[1:])


def pad_token_id(config: object) -> int:
    """The config's pad id, else its (first) EOS id: generate's padding id for a batch of one."""
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(config, "eos_token_id", None)
    return int(pad[0] if isinstance(pad, list) else pad or 0)


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss would carry over the
    parent's peak (the parent built the model), so it is only the fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _summary(load: float, results: list[tuple[float, float, list[int]]]) -> dict:
    return {
        "load_s": load,
        "ttft_s": statistics.median(r[0] for r in results),
        "tok_s": statistics.median(r[1] for r in results),
        "tok_s_min": min(r[1] for r in results),
        "tok_s_max": max(r[1] for r in results),
        "rss_mb": _peak_rss_mb(),
        "tokens": results[0][2],
    }


# driver ----------------------------------------------------------------------------------------


def measure(which: str, folder: Path, precision: str) -> dict:
    env = {**os.environ, "TINYLM_NUM_THREADS": str(THREADS), "OMP_NUM_THREADS": str(THREADS)}
    cmd = [sys.executable, __file__, "--child", which, str(folder), precision]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{which} {precision} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_line(runtimes: str) -> str:
    """The machine and the runtimes measured, as the benchmark pages record them."""
    from tinylm.settings import cpu_name, physical_cores

    cores = f"{os.cpu_count()} logical CPUs ({physical_cores()} physical cores usable)"
    return f"{cpu_name()}; {cores}, {THREADS} threads used; Python {platform.python_version()}, {runtimes}"


def machine() -> str:
    import torch
    import transformers

    return machine_line(f"torch {torch.__version__}, transformers {transformers.__version__}")


def table(rows: list[tuple[str, str, dict]]) -> str:
    lines = [
        "| precision | runtime | load (s) | time to first token (ms) | decode (tokens/s) | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for precision, which, r in rows:
        lines.append(
            f"| {precision} | {which} | {r['load_s']:.2f} | {r['ttft_s'] * 1000:.1f} | {r['tok_s']:.1f} | "
            f"{r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help=f"write the table to {DOCS}")
    parser.add_argument("--precisions", default="fp32,bf16,int8", help="int8 runs tinylm-torch only")
    parser.add_argument("--child", nargs=3, metavar=("WHICH", "FOLDER", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--build", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(Path(args.build))
        return 0
    if args.child:
        which, folder, precision = args.child
        fn = run_tinylm if which == "tinylm-torch" else run_transformers
        print(json.dumps(fn(folder, precision)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "smollm2-135m-random"
        subprocess.run([sys.executable, __file__, "--build", str(folder)], check=True, capture_output=True)
        for precision in args.precisions.split(","):
            runtimes = ("tinylm-torch",) if precision == "int8" else ("transformers", "tinylm-torch")
            for which in runtimes:
                result = measure(which, folder, precision)
                rows.append((precision, which, result))
                print(f"{precision} {which}: {table([rows[-1]]).splitlines()[-1]}", file=sys.stderr, flush=True)
            if len(runtimes) == 2:
                ref, ours = rows[-2][2]["tokens"], rows[-1][2]["tokens"]
                agree = next((i for i, (a, b) in enumerate(zip(ref, ours)) if a != b), len(ref))
                print(f"{precision}: greedy tokens agree for the first {agree}/{NEW_TOKENS}", file=sys.stderr)
    text = table(rows)
    print(text)
    if args.write_docs:
        today = dt.date.today().isoformat()
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        DOCS.write_text(
            "# tinylm-torch vs transformers\n\n"
            f"Measured {today} with `python benchmarks/torch_vs_transformers.py --write-docs`.\n\n"
            f"Machine: {machine()}.\n\n"
            "Model: random weights with SmolLM2-135M's exact architecture (hidden 576, 30 layers, 9 heads, 3 KV heads, "
            "intermediate 1536, vocab 49152, tied embeddings). Greedy generation from a "
            f"{PROMPT_TOKENS}-token prompt, {NEW_TOKENS} new tokens, EOS ignored; each row in its own process; "
            f"median of {RUNS} runs after a warm-up. Time to first token is prefill plus the first token; decode "
            "counts the tokens after the first. tinylm's numbers go through its full generation loop (sampling, "
            "streaming detokenization). int8 is tinylm-torch's weight-only int8 (bfloat16 compute); transformers "
            "has no eager CPU int8 path to compare it with. On a shared 2-core VM, time to first token varies by "
            "about 15% from run to run; compare decode rates first.\n\n" + text + "\n",
            encoding="utf-8",
        )
        print(f"wrote {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
