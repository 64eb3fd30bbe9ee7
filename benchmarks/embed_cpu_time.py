"""Embedders per CPU-second, tinylm (each backend x precision, and a load naming nothing) against sentence-transformers,
one thread each, processes alternating (docs/choosing-a-backend.md, "Embedders"). One-off: deleted once its answer
is in the docs. CPU time, not wall time, so that a shared machine's other work does not count:

    python -m benchmarks.embed_cpu_time MODEL --rounds 2 [--st-python /tmp/st-venv/bin/python]

Each row: sentences per CPU-second (`time.process_time()`) embedding `tinylm.bench.EMBED_SENTENCES` at batch 1 and
32, 3 s each, after a warm-up, in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROWS = ("st", "auto", "onnx/fp32", "onnx/int8", "openvino/fp32", "openvino/int8", "openvino/bf16")


def child(model: str, who: str, sentences: list[str]) -> dict:
    if who == "st":
        import torch

        torch.set_num_threads(1)
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(model, device="cpu")
        embed, ran = (lambda xs, b: st.encode(xs, batch_size=b)), "sentence-transformers fp32"
    else:
        import tinylm

        named = {} if who == "auto" else dict(zip(("backend", "precision"), who.split("/")))
        m = tinylm.load(model, **named)
        embed, ran = (lambda xs, b: m.embed(xs, batch_size=b)), f"tinylm {m.backend} {m.precision}"
    out = {"who": who, "ran": ran}
    for batch in (1, 32):
        embed(sentences[:batch], batch)
        start, done = time.process_time(), 0
        while time.process_time() - start < 3.0:
            embed(sentences[:batch], batch)
            done += batch
        out[str(batch)] = done / (time.process_time() - start)
    return out


def main() -> None:
    if sys.argv[1] == "--child":
        job = json.loads(sys.argv[2])
        print(json.dumps(child(job["model"], job["who"], job["sentences"])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--st-python", default=os.environ.get("TINYLM_ST_PYTHON", "/tmp/st-venv/bin/python"))
    args = parser.parse_args()
    from tinylm.bench import EMBED_SENTENCES

    path = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TINYLM_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    results: dict[str, list[dict]] = {}
    for turn in range(args.rounds):
        for who in ROWS if turn % 2 == 0 else ROWS[::-1]:
            job = json.dumps({"model": args.model, "who": who, "sentences": EMBED_SENTENCES})
            python = args.st_python if who == "st" else sys.executable
            cmd = [python, "-m", "benchmarks.embed_cpu_time", "--child", job]
            line = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
            results.setdefault(who, []).append(json.loads(line))
    print("| row | runs | sentences per CPU-second, batch 1 | batch 32 |\n|---|---|---:|---:|")
    for who, runs in results.items():
        b1, b32 = (" / ".join(f"{r[k]:.0f}" for r in runs) for k in ("1", "32"))
        print(f"| {who} | {runs[0]['ran']} | {b1} | {b32} |")


if __name__ == "__main__":
    main()
