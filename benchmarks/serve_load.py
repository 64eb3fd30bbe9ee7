"""Load test of `tinylm serve`: N concurrent streaming clients on loopback, fixed request count.

    python -m benchmarks.serve_load [--model FOLDER] [--clients 32] [--requests 128] [--parallel N] [--write-docs]

Without --model it serves a tiny random model (built here), which measures the server's own
overhead (queueing, SSE, the generation loop) rather than the model. Reports errors, throughput
(requests/s and generated tokens/s) and time-to-first-token and total latency percentiles.
Only loopback addresses are used; the run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "server-load.md"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: a tiny random model)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--parallel", type=int, help="requests decoded together per model (default: the server's)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    import openai
    import uvicorn

    import tinylm
    from tinylm.server import DEFAULT_PARALLEL, ServerConfig, create_app

    parallel = args.parallel or DEFAULT_PARALLEL

    folder = args.model
    if folder is None:
        from tinylm.testing.models import build_model

        folder = build_model("smollm", Path(tempfile.mkdtemp()) / "tiny")
    model = tinylm.load(folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app({"m": model}, ServerConfig(parallel=parallel, max_queue=args.clients)),
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)

    def one(i: int) -> tuple[float, float, int]:
        start = time.perf_counter()
        first, tokens = 0.0, 0
        stream = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": f"Question {i} about my order"}],
            max_tokens=args.max_tokens,
            temperature=0.8,
            seed=i,
            stream=True,
            stream_options={"include_usage": True},
        )
        for event in stream:
            if event.choices and event.choices[0].delta.content and not first:
                first = time.perf_counter() - start
            if event.usage:
                tokens = event.usage.completion_tokens
        return first, time.perf_counter() - start, tokens

    errors = 0
    results = []
    began = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        for future in [pool.submit(one, i) for i in range(args.requests)]:
            try:
                results.append(future.result())
            except Exception as e:  # counted and reported, never hidden
                errors += 1
                print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    wall = time.perf_counter() - began
    server.should_exit = True
    thread.join(timeout=10)

    ttft = [r[0] for r in results]
    total = [r[1] for r in results]
    tokens = sum(r[2] for r in results)
    label = "tiny random model (server overhead)" if args.model is None else Path(args.model).name
    rows = [
        ("model", f"{label} on {model.backend}/{model.device} {model.precision}"),
        ("clients / requests / max_tokens", f"{args.clients} / {args.requests} / {args.max_tokens}"),
        ("--parallel", str(parallel)),
        ("errors", str(errors)),
        ("throughput", f"{len(results) / wall:.1f} requests/s, {tokens / wall:.0f} generated tokens/s"),
        (
            "time to first token p50 / p95",
            f"{percentile(ttft, 0.5) * 1000:.0f} / {percentile(ttft, 0.95) * 1000:.0f} ms",
        ),
        ("request latency p50 / p95", f"{percentile(total, 0.5) * 1000:.0f} / {percentile(total, 0.95) * 1000:.0f} ms"),
        ("mean request latency", f"{statistics.mean(total) * 1000:.0f} ms"),
    ]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table)
    if args.write_docs:
        DOCS.write_text(
            "# Serving: load test\n\n"
            f"Measured {date.today().isoformat()} on {platform.processor() or platform.machine()} "
            f"({len(__import__('os').sched_getaffinity(0))} cores) with "
            f"`python -m benchmarks.serve_load --parallel {parallel} --write-docs`.\n\n"
            f"Up to {parallel} requests per model decoded in one continuous batch (1: one after another on the "
            "model's one KV cache); the rest wait in a bounded queue that answers 429 with Retry-After when full. "
            "Every client streams; all traffic is on loopback.\n\n" + table + "\n"
        )
        print(f"wrote {DOCS}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
