"""What tinylm-onnx's `compiled_cache` (this machine's optimized, pre-packed copy of an artifact) buys and costs.

    python benchmarks/onnx_compiled_cache.py [--model FOLDER] [--precisions fp32,int8,int4] [--rounds 5]

For each precision, on the SmolLM2-135M-shaped random model (built into a temporary folder unless --model is
given) and an empty artifact cache: the conversion, then the first open that writes the copy (timed), then
`rounds` pairs of fresh processes in alternating order, each timing `tinylm.load` (the warm load a user gets,
import included) with `compiled_cache=True` and `=False`, and the ONNX Runtime session creation alone inside it;
then decode tokens/s from the artifact and from the copy in one process (32-token prompt, 128 new tokens, greedy,
shuffled order each round). Prints a markdown table with the medians (min-max) and both folders' sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
started = time.perf_counter()
import tinylm_onnx.compiled as compiled, tinylm_onnx.runtime as runtime
spent = []
real = runtime.inference_session
def timed(*a, **k):
    t = time.perf_counter()
    try:
        return real(*a, **k)
    finally:
        spent.append(time.perf_counter() - t)
compiled.inference_session = timed
import tinylm_onnx.opening as opening
opening.inference_session = timed
import tinylm
model = tinylm.load(sys.argv[1], backend="onnx", precision=sys.argv[2], compiled_cache=sys.argv[3] == "1")
print(json.dumps({"load_s": time.perf_counter() - started, "session_s": sum(spent)}))
"""


def _fresh(folder: str, precision: str, cached: bool, env: dict[str, str]) -> dict[str, float]:
    args = [sys.executable, "-c", CHILD, folder, precision, "1" if cached else "0"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _decode(folder: str, precision: str, rounds: int) -> dict[bool, float]:
    import tinylm
    from tinylm.bench import prompt_ids

    models = {c: tinylm.load(folder, backend="onnx", precision=precision, compiled_cache=c) for c in (True, False)}
    prompt = prompt_ids(models[True].spec.vocab_size, 32)
    rates: dict[bool, list[float]] = {True: [], False: []}
    order = [True, False]
    for r in range(rounds + 1):
        random.Random(r).shuffle(order)
        for c in order:
            done = models[c].generate(prompt, max_new_tokens=128, temperature=0, ignore_eos=True)
            if r:  # the first round warms up
                rates[c].append(done.usage.tokens_per_second)
    return {c: statistics.median(v) for c, v in rates.items()}


def measure(folder: str, precision: str, rounds: int, env: dict[str, str]) -> dict[str, object]:
    import tinylm

    started = time.perf_counter()
    artifact = tinylm.load(folder, backend="onnx", precision=precision, compiled_cache=False).artifact
    convert_s = time.perf_counter() - started
    first = _fresh(folder, precision, True, env)  # writes the copy
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for r in range(rounds):
        for cached in (True, False) if r % 2 else (False, True):
            runs[cached].append(_fresh(folder, precision, cached, env))
    (copy,) = [p for p in (artifact / "compiled").iterdir() if not p.name.startswith(".")]
    return {
        "precision": precision,
        "convert_s": convert_s,
        "first_open_s": first["load_s"],
        "runs": {str(k): v for k, v in runs.items()},
        "artifact_mb": (_size(artifact) - _size(artifact / "compiled")) / 1e6,
        "copy_mb": _size(copy) / 1e6,
        "decode": {str(k): v for k, v in _decode(folder, precision, rounds).items()},
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def table(results: list[dict]) -> str:
    lines = [
        "| precision | warm load, copy (s) | warm load, artifact (s) | session, copy (s) | session, artifact (s) "
        "| first open writing the copy (s) | artifact (MB) | copy (MB) | decode tok/s, copy / artifact |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        on, off = r["runs"]["True"], r["runs"]["False"]
        lines.append(
            f"| {r['precision']} | {_spread([x['load_s'] for x in on])} | {_spread([x['load_s'] for x in off])} "
            f"| {_spread([x['session_s'] for x in on])} | {_spread([x['session_s'] for x in off])} "
            f"| {r['first_open_s']:.2f} | {r['artifact_mb']:.0f} | {r['copy_mb']:.0f} "
            f"| {r['decode']['True']:.1f} / {r['decode']['False']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model folder (default: build the SmolLM2-135M-shaped random model)")
    parser.add_argument("--precisions", default="fp32,int8,int4")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TINYLM_HOME": str(Path(tmp) / "home")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # warm loads read cached bytecode, as on a default Python
        os.environ["TINYLM_HOME"] = env["TINYLM_HOME"]
        folder = args.model
        if folder is None:
            folder = str(Path(tmp) / "smollm2-135m-shaped")
            builder = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", folder]
            subprocess.run(builder, check=True, capture_output=True)
        results = [measure(folder, p, args.rounds, env) for p in args.precisions.split(",")]
    print(json.dumps(results, indent=1), file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
