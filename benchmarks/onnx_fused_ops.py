"""What ONNX Runtime's fused ops buy tinylm-onnx: decode and prefill with and without them, same model.

    python benchmarks/onnx_fused_ops.py [--precisions fp32,int4] [--model FOLDER]

fused_ops=False builds the same graph with plain ops where tinylm-onnx otherwise uses a fused one:
Add + SimplifiedLayerNormalization instead of SkipSimplifiedLayerNormalization, and rotary applied with
Slice/Concat/Mul/Add instead of inside GroupQueryAttention. Also times GroupQueryAttention alone (30 layers,
one decode step) to show what attention costs per token. Raw session steps (no generation loop), 2 threads,
medians over alternating rounds, so a shared machine's noise hits both variants alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def steps(folder: str, precision: str, fused: bool, home: str) -> tuple[float, float]:
    """(prefill ms for 32 tokens, decode tokens/s): medians of 3 rounds of 64 steps."""
    import numpy as np

    os.environ["TINYLM_HOME"], os.environ["TINYLM_NUM_THREADS"] = home, "2"
    import tinylm

    session = tinylm.load(folder, backend="onnx", precision=precision, fused_ops=fused, parity=False)._live()
    ids = np.random.default_rng(0).integers(3, 448, (1, 32))
    prefill, rates = [], []
    for _ in range(4):
        session.reset()
        t = time.perf_counter()
        logits = session.forward(ids)
        prefill.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(64):
            logits = session.forward(np.array([[int(logits[0].argmax())]]))
        rates.append(64 / (time.perf_counter() - t))
    return statistics.median(prefill[1:]) * 1000, statistics.median(rates[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="fp32,int8,int4")
    parser.add_argument("--model", help="a model folder (default: build the SmolLM2-135M-shaped random model)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, precision, fused, home = args.child
        print(*steps(folder, precision, fused == "1", home))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or str(Path(tmp) / "model")
        if not args.model:
            build = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", folder]
            subprocess.run(build, check=True, capture_output=True)
        print("| precision | graph | prefill 32 tokens (ms) | decode (tokens/s) |\n|---|---|---:|---:|")
        for precision in args.precisions.split(","):
            results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(3):  # alternate, so drifting load hits both
                for fused in (True, False):
                    cmd = [sys.executable, __file__, "--child", folder, precision, str(int(fused)), tmp + "/home"]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
                    results[fused].append((float(out[0]), float(out[1])))
            for fused in (True, False):
                pre = statistics.median(r[0] for r in results[fused])
                dec = statistics.median(r[1] for r in results[fused])
                name = "fused (Skip*Norm, GQA rotary)" if fused else "plain ops"
                print(f"| {precision} | {name} | {pre:.1f} | {dec:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
