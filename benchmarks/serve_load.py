"""Load test of `tinylm serve`: concurrent streaming clients on loopback, the continuous batch against one slot.

    python -m benchmarks.serve_load [--model DIR | --smollm] [--backend onnx --precision int8]
        [--clients 1 4 16 32] [--parallel 1 16] [--max-tokens 32] [--write-docs]

One server per --parallel value (1 is the single-slot server: requests for a model run one after another on its one
KV cache), the same model object behind each. For each client count C, C clients each send --per-client streaming
chat requests at once (distinct prompts, greedy); reported: errors, generated tokens/s over the wall time,
time-to-first-token p50/p95, and whether every streamed text equals its prompt's non-stream greedy text (computed
first, one request at a time). "One at a time" sends the C x --per-client requests of the largest C one after another
to the largest --parallel, the baseline of the speed-up. Without --model: a tiny random model (the server's own
overhead); --smollm: the SmolLM2-135M-shaped random model (`python -m benchmarks.peers --build-model`). Loopback
only; bounded in count.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "server-load.md"
MARK = "<!-- serve_load figures -->"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def serve(model, parallel: int, queue: int):
    """A `tinylm serve` app for `model` on a free loopback port, in a thread: (uvicorn server, OpenAI client)."""
    import openai
    import uvicorn

    from tinylm.server import ServerConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app({"m": model}, ServerConfig(parallel=parallel, max_queue=queue))
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)


def request(client, i: int, max_tokens: int, *, stream: bool) -> tuple[float, str, int]:
    """(seconds to the first token, text, completion tokens) of prompt i, greedy."""
    start = time.perf_counter()
    messages = [{"role": "user", "content": f"Question {i}: where is my order {1000 + 37 * i}?"}]
    options = {"model": "m", "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if not stream:
        done = client.chat.completions.create(**options)
        return time.perf_counter() - start, done.choices[0].message.content or "", done.usage.completion_tokens
    first, text, tokens = 0.0, [], 0
    for event in client.chat.completions.create(**options, stream=True, stream_options={"include_usage": True}):
        if event.choices and event.choices[0].delta.content:
            first = first or time.perf_counter() - start
            text.append(event.choices[0].delta.content)
        if event.usage:
            tokens = event.usage.completion_tokens
    return first, "".join(text), tokens


def load(client, ids: list[int], clients: int, max_tokens: int, reference: dict[int, str]) -> dict:
    """Requests `ids` from `clients` concurrent streaming clients: errors, tokens/s, first-token times, equal texts."""
    errors, results = 0, {}
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        futures = {i: pool.submit(request, client, i, max_tokens, stream=True) for i in ids}
        for i, future in futures.items():
            try:
                results[i] = future.result()
            except Exception as e:  # counted and reported, never hidden
                errors += 1
                print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    wall = time.perf_counter() - began
    ttft = [r[0] for r in results.values()]
    return {
        "errors": errors,
        "tok/s": sum(r[2] for r in results.values()) / wall,
        "p50": percentile(ttft, 0.5) * 1000,
        "p95": percentile(ttft, 0.95) * 1000,
        "equal": sum(results[i][1] == reference[i] for i in results),
        "n": len(ids),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: a tiny random model)")
    parser.add_argument("--smollm", action="store_true", help="the SmolLM2-135M-shaped random model")
    parser.add_argument("--backend")
    parser.add_argument("--precision")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--per-client", type=int, default=2, help="requests each client sends")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)

    import tinylm

    folder = args.model
    if folder is None:
        folder = Path(tempfile.mkdtemp()) / "model"
        if args.smollm:
            build = [sys.executable, "-m", "benchmarks.peers", "--build-model", str(folder)]
            subprocess.run(build, check=True, cwd=Path(__file__).resolve().parents[1])
        else:
            from tinylm.testing.models import build_model

            build_model("smollm", folder)
    model = tinylm.load(folder, backend=args.backend, precision=args.precision)
    most = max(args.clients) * args.per_client
    servers = {p: serve(model, p, queue=most) for p in sorted(args.parallel)}
    widest = servers[max(args.parallel)][1]
    reference = {i: request(widest, i, args.max_tokens, stream=False)[1] for i in range(most)}  # one at a time
    one_at_a_time = load(widest, list(range(most)), 1, args.max_tokens, reference)
    runs = {(c, p): load(servers[p][1], list(range(c * args.per_client)), c, args.max_tokens, reference)
            for c in args.clients for p in sorted(args.parallel)}  # fmt: skip
    for server, _ in servers.values():
        server.should_exit = True

    label = "SmolLM2-135M-shaped random model" if args.smollm else "tiny random model (the server's overhead)"
    label = args.model.name if args.model else label
    lines = [
        "| clients | --parallel | requests | errors | generated tok/s | x one at a time | first token p50 / p95 ms "
        "| streamed text = non-stream greedy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = one_at_a_time["tok/s"]
    lines.append(
        f"| 1 (one at a time) | {max(args.parallel)} | {most} | {one_at_a_time['errors']} | {base:.0f} | 1.00x | "
        f"{one_at_a_time['p50']:.0f} / {one_at_a_time['p95']:.0f} | {one_at_a_time['equal']} of {most} |"
    )
    for (c, p), r in runs.items():
        lines.append(
            f"| {c} | {p} | {r['n']} | {r['errors']} | {r['tok/s']:.0f} | {r['tok/s'] / base:.2f}x | "
            f"{r['p50']:.0f} / {r['p95']:.0f} | {r['equal']} of {r['n']} |"
        )
    command = " ".join(["python -m benchmarks.serve_load", *sys.argv[1:]]).replace(" --write-docs", "")
    head = (
        f"Measured {date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} cores) with `{command}`: "
        f"{label} on {model.backend}/{model.device} {model.precision}, {args.threads} threads, "
        f"{args.max_tokens} tokens per request, greedy, every client streaming."
    )
    table = "\n".join([head, "", *lines])
    print(table)
    if args.write_docs:
        before, _, rest = DOCS.read_text(encoding="utf-8").partition(MARK)
        after = rest.partition(MARK)[2]
        DOCS.write_text(f"{before}{MARK}\n{table}\n{MARK}{after}", encoding="utf-8")
        print(f"wrote {DOCS}")
    errors = one_at_a_time["errors"] + sum(r["errors"] for r in runs.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
