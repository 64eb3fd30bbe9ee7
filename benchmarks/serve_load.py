"""Load test of `tinylm serve`: concurrent streaming clients on loopback, the continuous batch against one slot.

    python -m benchmarks.serve_load [--model DIR | --smollm] [--backend onnx --precision int8]
        [--clients 1 4 16 32] [--parallel 1 16] [--max-tokens 32] [--rounds 3] [--option KEY=VALUE] [--write-docs]

For each --parallel value (1 is the single-slot server: requests for a model run one after another on its one KV
cache) a `tinylm serve --parallel N` process is started, as a user starts it, and measured, then stopped. For each
client count C, C clients each send --per-client streaming chat requests (4; each client one after another, the
clients at once; distinct customer messages, greedy); reported: errors, generated tokens/s over the wall time,
time-to-first-token p50/p95 (the first event carrying text), and whether every streamed text equals its message's
non-stream greedy text (asked first, one request at a time). "One at a time" sends the requests of the largest C
one after another, streaming, the baseline of the speed-up, on the server of the largest --parallel. Each server
runs --rounds rounds of its measurements in alternating order; the table gives the median tokens/s and first-text
times over the rounds, and for the largest --parallel the median of each round's ratio to that round's one at a
time (the other servers: their median over the baseline's). The clients are one asyncio loop in this process
reading the raw event stream (a load generator's work, kept light: it shares the machine with the server). Default
model: the bundled support-assistant; --model DIR any folder; --smollm the SmolLM2-135M-shaped random model (its
random tokens may decode to empty text). Loopback only; bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "server-load.md"
MARK = "<!-- serve_load figures -->"
MESSAGES = [  # customer messages, varied in length; request i sends MESSAGES[i % len] with its number
    "Where is my order {n}? It was due on Monday.",
    "I want to cancel order {n} please, I ordered the wrong size.",
    "Hi, the kettle from order {n} arrived broken. Can I get a refund?",
    "How do I change the delivery address for order {n}?",
    "Can you send me the invoice for order {n}? I need it for my accounts.",
    "My payment for order {n} failed twice, what should I do?",
    "I returned order {n} two weeks ago and still have no refund.",
    "Is there a fee if I cancel order {n} now?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def serve(args: argparse.Namespace, folder: str, parallel: int, queue: int) -> tuple[subprocess.Popen, str]:
    """`tinylm serve --parallel N` on a free loopback port, ready: (the process, its base URL)."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "tinylm.cli", "serve", f"m={folder}", "--port", str(port)]
    cmd += ["--parallel", str(parallel), "--max-queue", str(queue)]
    cmd += [f"--{k}={v}" for k, v in (("backend", args.backend), ("precision", args.precision)) if v]
    cmd += [f"--option={option}" for option in args.option]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"`{' '.join(cmd)}` did not answer in 120 s")


def body(i: int, max_tokens: int, *, stream: bool) -> dict:
    """The chat request of message i, greedy."""
    content = MESSAGES[i % len(MESSAGES)].format(n=55120 + 37 * i)
    out = {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    return out | {"temperature": 0, "stream": stream} | ({"stream_options": {"include_usage": True}} if stream else {})


def request(url: str, i: int, max_tokens: int) -> str:
    """The non-stream greedy text of message i."""
    import httpx

    done = httpx.post(f"{url}/v1/chat/completions", json=body(i, max_tokens, stream=False), timeout=600)
    return done.raise_for_status().json()["choices"][0]["message"]["content"]


async def streamed(url: str, i: int, max_tokens: int) -> tuple[float, str, int]:
    """(seconds to the first text, text, completion tokens) of message i, streamed.

    The clients share the server's two cores, so they are kept light: one asyncio loop for all of them reading the
    raw HTTP/1.1 response (chunked transfer decoded here, events split on blank lines). httpx's per-line parsing
    cost about 0.5 ms of CPU per event, and a thread per client on http.client about 0.14 ms (40% of a core at
    16 clients), time the server's batch did not get."""
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body(i, max_tokens, stream=True)).encode()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    first, text, tokens = 0.0, [], 0
    try:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        status = await reader.readline()
        headers = []
        while (line := await reader.readline()) not in (b"\r\n", b""):
            headers.append(line.lower())
        if b" 200 " not in status:
            raise RuntimeError(f"{status.decode().strip()}: {(await reader.read(200))!r}")
        chunked = any(h.startswith(b"transfer-encoding:") and b"chunked" in h for h in headers)
        pending = b""
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                data = (await reader.readexactly(size + 2))[:-2]  # the chunk and its CRLF
            else:
                data = await reader.read(1 << 16)
            if not data:
                break
            *events, pending = (pending + data).split(b"\n\n")
            for line in events:
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                event = json.loads(line[6:])
                piece = event["choices"][0]["delta"].get("content") if event.get("choices") else None
                if piece:
                    first = first or time.perf_counter() - start
                    text.append(piece)
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    finally:
        writer.close()
    return first, "".join(text), tokens


def load(url: str, ids: list[int], clients: int, max_tokens: int, reference: dict[int, str]) -> dict:
    """Requests `ids` from `clients` concurrent streaming clients (each sends its next request when its last one
    ended): errors, tokens/s, first-text times, equal texts."""
    errors, results = 0, {}
    todo = list(reversed(ids))

    async def client() -> None:
        nonlocal errors
        while todo:
            i = todo.pop()
            try:
                results[i] = await streamed(url, i, max_tokens)
            except Exception as e:  # counted and reported, never hidden
                errors += 1
                print(f"error: {type(e).__name__}: {e}", file=sys.stderr)

    async def run() -> None:
        await asyncio.gather(*(client() for _ in range(clients)))

    began = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - began
    ttft = [r[0] for r in results.values() if r[0]]
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
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled support-assistant)")
    parser.add_argument("--smollm", action="store_true", help="the SmolLM2-135M-shaped random model")
    parser.add_argument("--backend")
    parser.add_argument("--precision")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--per-client", type=int, default=4, help="requests each client sends, one after another")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measurement, in alternating order")
    parser.add_argument("--option", action="append", default=[], help="KEY=VALUE, passed to `tinylm serve --option`")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)

    folder, label = str(args.model or "support-assistant"), "the bundled support-assistant"
    if args.model:
        label = args.model.name
    elif args.smollm:
        folder, label = str(Path(tempfile.mkdtemp()) / "model"), "the SmolLM2-135M-shaped random model"
        build = [sys.executable, "-m", "benchmarks.peers", "--build-model", folder]
        subprocess.run(build, check=True, cwd=Path(__file__).resolve().parents[1])
    most = max(args.clients) * args.per_client
    top = max(args.parallel)
    runs: dict[tuple[int, int], list[dict]] = {}  # (clients, parallel; 0: one at a time) -> one dict per round
    for parallel in sorted(args.parallel, reverse=True):
        process, url = serve(args, folder, parallel, queue=most)
        try:
            request(url, 0, 4)  # warm up: the model's first run
            if parallel == top:
                reference = {i: request(url, i, args.max_tokens) for i in range(most)}
            plan = [(c, parallel) for c in args.clients] + ([(1, 0)] if parallel == top else [])
            for r in range(args.rounds):  # alternating order: a machine whose speed drifts favours no row
                for c, p in plan if r % 2 else plan[::-1]:
                    ids = list(range(most if p == 0 else c * args.per_client))
                    runs.setdefault((c, p), []).append(load(url, ids, c, args.max_tokens, reference))
        finally:
            process.terminate()
            process.wait(30)

    lines = [
        "| clients | --parallel | requests | errors | generated tok/s | x one at a time | first text p50 / p95 ms "
        "| streamed text = non-stream greedy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    alone = runs[(1, 0)]
    base = statistics.median(r["tok/s"] for r in alone)
    for (c, p), rounds in sorted(runs.items()):
        clients, parallel = ("1, one request at a time", top) if p == 0 else (str(c), p)
        rate = statistics.median(r["tok/s"] for r in rounds)
        ratio = rate / base  # other servers: the medians; the same server's rounds: each against its own round's
        if p in (0, top):
            ratio = statistics.median(r["tok/s"] / a["tok/s"] for r, a in zip(rounds, alone))
        p50, p95 = (statistics.median(r[q] for r in rounds) for q in ("p50", "p95"))
        n, equal, errors = (sum(r[k] for r in rounds) for k in ("n", "equal", "errors"))
        lines.append(
            f"| {clients} | {parallel} | {n} | {errors} | {rate:.0f} | {ratio:.2f}x | {p50:.0f} / {p95:.0f} | "
            f"{equal} of {n} |"
        )
    command = " ".join(["python -m benchmarks.serve_load", *sys.argv[1:]]).replace(" --write-docs", "")
    head = (
        f"Measured {date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} cores) with `{command}`: "
        f"{label}, backend {args.backend or 'automatic'}, precision {args.precision or 'default'}, "
        f"{args.threads} threads, at most {args.max_tokens} tokens per request, greedy, every client streaming."
    )
    table = "\n".join([head, "", *lines])
    print(table)
    if args.write_docs:
        before, _, rest = DOCS.read_text(encoding="utf-8").partition(MARK)
        after = rest.partition(MARK)[2]
        DOCS.write_text(f"{before}{MARK}\n{table}\n{MARK}{after}", encoding="utf-8")
        print(f"wrote {DOCS}")
    return 1 if any(r["errors"] for rounds in runs.values() for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
