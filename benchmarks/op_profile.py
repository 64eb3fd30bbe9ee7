"""Where a decoder's time goes, per operator type, on tinylm-onnx or tinylm-openvino: one prefill and one decode
step of a converted model, from the runtime's own profiler.

    python benchmarks/op_profile.py MODEL --backend openvino --precision int8
    python benchmarks/op_profile.py MODEL --backend onnx --precision int4 --prompt-tokens 32

MODEL is anything `tinylm.load` takes (the SmolLM2-135M-shaped model: `python benchmarks/torch_vs_transformers.py
--build DIR`). The model is converted (or found in the cache) by `tinylm.load`; the artifact is then opened again
with profiling on: OpenVINO's PERF_COUNT (per-node real time and the kernel it ran) or ONNX Runtime's profiler
(per-node durations from its JSON trace). The prefill is the prompt (the tinylm bench prompt), the decode step is
the token after it; the step is repeated `--steps` times first so caches and kernels are warm, and the figures
are from the last run. The kernels named (e.g. brgemm_avx512_f32) are what the "why" of docs/benchmarks.md cites.
Last, the time `Model.generate` spends outside the runtime in each decode step (Python: the generation loop and
the session's bookkeeping), timed as the gap between two runtime calls.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import statistics
import time
from pathlib import Path

import numpy as np

import tinylm
from tinylm.bench import prompt_ids


def _table(title: str, wall_ms: float, times: dict[tuple[str, str], float], counts: collections.Counter) -> str:
    total = sum(times.values())
    lines = [f"{title}: {wall_ms:.1f} ms wall, {total / 1000:.1f} ms in operators", ""]
    lines += ["| operator | kernel | nodes | ms | share |", "|---|---|---:|---:|---:|"]
    for (op, kernel), us in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {op} | {kernel} | {counts[(op, kernel)]} | {us / 1000:.2f} | {us / total:.0%} |")
    return "\n".join(lines)


def _openvino(model: tinylm.Model, prompt: np.ndarray, steps: int, threads: int) -> list[str]:
    import openvino as ov

    meta = json.loads((model.artifact / "tinylm-artifact.json").read_text())["openvino"]
    props = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)}
    props |= {"PERF_COUNT": "YES"}
    if meta["inference_precision"] != "device default":
        props["INFERENCE_PRECISION_HINT"] = meta["inference_precision"]
    if meta["kv_cache_precision"] != "device default":
        props["KV_CACHE_PRECISION"] = meta["kv_cache_precision"]
    req = ov.Core().compile_model(str(model.artifact / "openvino_model.xml"), "CPU", props).create_infer_request()

    def run(ids: np.ndarray, start: int) -> float:
        feeds = {"input_ids": ids, "beam_idx": np.zeros(1, np.int32), "start": np.array([start], np.int64)}
        feeds["logits_from"] = np.array([ids.shape[1] - 1], np.int64)
        began = time.perf_counter()
        req.infer(feeds)
        return (time.perf_counter() - began) * 1000

    def profiled(title: str, wall: float) -> str:
        times: dict[tuple[str, str], float] = collections.defaultdict(float)
        counts: collections.Counter = collections.Counter()
        for p in req.get_profiling_info():
            times[(p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1e6
            counts[(p.node_type, p.exec_type)] += 1
        return _table(title, wall, times, counts)

    out = []
    for _ in range(steps):
        req.reset_state()
        wall = run(prompt, 0)
    out.append(profiled(f"prefill of {prompt.shape[1]} tokens", wall))
    for i in range(steps):
        wall = run(np.array([[7]], np.int64), prompt.shape[1] + i)
    out.append(profiled("one decode step", wall))
    return out


def _onnx(model: tinylm.Model, prompt: np.ndarray, steps: int, threads: int) -> list[str]:
    import onnxruntime as ort
    from tinylm_onnx.runtime import MODEL_FILE, session_options
    from tinylm_onnx.session import OnnxSession

    out = []
    for title, decode in ((f"prefill of {prompt.shape[1]} tokens", False), ("one decode step", True)):
        so = session_options(threads, spin=model.spec.kind == "decoder")  # as tinylm opens it
        so.enable_profiling = True
        so.profile_file_prefix = str(model.artifact / "profile")
        ort_sess = ort.InferenceSession(str(model.artifact / MODEL_FILE), so, providers=["CPUExecutionProvider"])
        sess = OnnxSession(ort_sess, model.spec, capacity=prompt.shape[1] + steps + 8)
        for _ in range(steps):  # the last run of each node is the one reported
            sess.reset()
            began = time.perf_counter()
            sess.forward(prompt)
            wall = (time.perf_counter() - began) * 1000
        for _ in range(steps if decode else 0):
            began = time.perf_counter()
            sess.forward(np.array([[7]], np.int64))
            wall = (time.perf_counter() - began) * 1000
        trace = Path(ort_sess.end_profiling())
        last: dict[str, dict] = {}
        for event in json.loads(trace.read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                last[event["name"]] = event  # events are in time order: the last run's wins
        trace.unlink()
        times: dict[tuple[str, str], float] = collections.defaultdict(float)
        counts: collections.Counter = collections.Counter()
        for event in last.values():
            key = (
                event["args"].get("op_name", "?"),
                event["args"].get("provider", "").replace("ExecutionProvider", ""),
            )
            times[key] += event["dur"]
            counts[key] += 1
        out.append(_table(title, wall, times, counts))
    return out


def _between_runs(model: tinylm.Model, backend: str, prompt: np.ndarray, new_tokens: int = 128) -> str:
    """The time `Model.generate` spends outside the runtime in each decode step: the generation loop (sampling,
    detokenizing, stop checks) and the session's own bookkeeping, timed as the gap between two runtime calls."""
    session = model._live()
    runtime, method = (session._sess, "run_with_iobinding") if backend == "onnx" else (session._req, "infer")
    call = getattr(runtime, method)
    spans: list[tuple[float, float]] = []

    def timed(*args: object, **kwargs: object) -> object:
        began = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spans.append((began, time.perf_counter()))

    setattr(runtime, method, timed)
    try:
        gaps, steps = [], []
        for _ in range(3):
            spans.clear()
            model.generate(prompt[0].tolist(), max_new_tokens=new_tokens, temperature=0, ignore_eos=True)
            decode = spans[1:]  # after the prefill
            gaps += [b[0] - a[1] for a, b in itertools.pairwise(decode)]
            steps += [b[0] - a[0] for a, b in itertools.pairwise(decode)]
    finally:
        delattr(runtime, method)
    gap, step = statistics.median(gaps) * 1000, statistics.median(steps) * 1000
    return (
        f"between runtime calls in Model.generate: {gap:.2f} ms of each {step:.2f} ms decode step "
        f"({gap / step:.0%}; median over 3 generations of {new_tokens} tokens)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--backend", choices=("onnx", "openvino"), required=True)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="runs before the profiled one (default 5)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = tinylm.load(args.model, backend=args.backend, precision=args.precision)
    prompt = np.array([prompt_ids(model.spec.vocab_size, args.prompt_tokens)], np.int64)
    profile = _openvino if args.backend == "openvino" else _onnx
    print(f"{args.model} on tinylm-{args.backend} {args.precision}, {args.threads} threads\n")
    print("\n\n".join(profile(model, prompt, args.steps + 1, args.threads)))
    print(f"\n{_between_runs(model, args.backend, prompt)}")


if __name__ == "__main__":
    main()
