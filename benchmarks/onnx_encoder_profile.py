"""Where an ONNX Runtime encoder spends its time, fp32 against int8 at two block sizes (docs/backends/onnx.md,
"Encoders"). One-off: deleted once its answer is in the docs.

    python -m benchmarks.onnx_encoder_profile MODEL [--tokens 64] [--seconds 3]

Each graph is the cached artifact `tinylm.load(MODEL, backend="onnx", ...)` built, opened by ONNX Runtime with its
profiler on, 2 threads, pool threads not spinning (so CPU time is work, on a loaded machine too). Prints CPU ms per
sentence at batch 1 and 32 and each graph's biggest operators' share of kernel time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import numpy as np

import tinylm

GRAPHS = {"fp32": {"precision": "fp32"}, "int8 blocks of 32": {"precision": "int8", "block_size": 32},
          "int8 blocks of 128": {"precision": "int8", "block_size": 128}}  # fmt: skip


def profile(path: str, batch: int, tokens: int, seconds: float) -> tuple[float, str]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.enable_profiling = 2, 1, True
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(1000, 5000, (batch, tokens)).astype(np.int64)  # (B, T)
    feeds = {i.name: ids if "ids" in i.name and "type" not in i.name else np.ones_like(ids) if "mask" in i.name
             else np.zeros_like(ids) for i in session.get_inputs()}  # fmt: skip
    session.run(None, feeds)
    start, runs = time.process_time(), 0
    while time.process_time() - start < seconds:
        session.run(None, feeds)
        runs += 1
    cpu_ms = (time.process_time() - start) / runs / batch * 1000
    trace = session.end_profiling()
    kernel = collections.Counter()
    for event in json.load(open(trace)):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kernel[event["args"]["op_name"]] += event["dur"]
    os.remove(trace)
    total = sum(kernel.values())
    return cpu_ms, ", ".join(f"{op} {t / total:.0%}" for op, t in kernel.most_common(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    paths = {}
    for name, options in GRAPHS.items():
        model = tinylm.load(args.model, backend="onnx", **options)
        paths[name] = str(model.artifact / "model.onnx")
        print(f"{name}: sentence cosine with fp32 {read_cosine(model.artifact):.4f}")
    for batch in (1, 32):
        for name, path in paths.items():
            cpu_ms, ops = profile(path, batch, args.tokens, args.seconds)
            print(f"batch {batch:2d} {name:20s} {cpu_ms:6.2f} CPU ms/sentence  kernel time: {ops}")


def read_cosine(folder) -> float:
    from tinylm.artifacts import read_marker

    return (read_marker(folder) or {}).get("parity", {}).get("cosine_min", float("nan"))


if __name__ == "__main__":
    main()
