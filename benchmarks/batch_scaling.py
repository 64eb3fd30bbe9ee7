"""Scale-out of `tinylm batch` and `tinylm serve`: rows/s in this process vs on Ray Data with 1 and 2 workers,
the per-row overhead Ray adds, and Ray Serve's throughput at 1 and 2 replicas.

    python benchmarks/batch_scaling.py                      # the bundled models, the docs' sizes (~20 min on 2 cores)
    python benchmarks/batch_scaling.py --tiny               # tiny random models, a few rows: checks the script runs

Each batch mode runs the same job at two sizes (n and 2n rows) on a warm cluster (started once, models already in
the artifact cache), so the time splits into a fixed part (loading the model in each worker, starting the job)
and a per-row part: the slope (t(2n) - t(n)) / n. Ray's per-row overhead is its slope minus the local slope at one
worker. Serve: R chat requests from C concurrent clients against `tinylm serve`'s app on Ray Serve. Prints a
Markdown table for docs/scale-out.md. Loopback only; a local Ray cluster of --cpus CPUs, no dashboard.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOPICS = ["my parcel never arrived", "I was charged twice", "how do I reset my password", "the app crashes on start"]


def rows_for(task: str, n: int) -> list[dict]:
    """The one prompt generator: support tickets, varied in length."""
    out = []
    for i in range(n):
        ticket = f"Ticket {i}: {TOPICS[i % len(TOPICS)]}." + " Please help." * (i % 3)
        if task == "chat":
            out.append({"id": i, "messages": [{"role": "user", "content": ticket}]})
        else:
            out.append({"id": i, "text": ticket})
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def time_job(run, job) -> float:
    job.output.unlink(missing_ok=True)
    start = time.perf_counter()
    run(job)
    return time.perf_counter() - start


def batch_rows(args, models: dict[str, str], work: Path) -> list[dict]:
    import ray

    from tinylm.batch import BatchJob, run_local
    from tinylm.ray import run_on_ray

    results = []
    for task, n in (("chat", args.chat_rows), ("embed", args.embed_rows)):
        generation = {"max_new_tokens": args.max_new_tokens} if task == "chat" else {}
        modes = [("local", lambda job: run_local(job))] + [
            (f"ray x{w}", lambda job, w=w: run_on_ray(job, workers=w, threads=args.cpus // w)) for w in args.workers
        ]
        for label, run in modes:
            times = {}
            for size in (n, 2 * n):
                job = BatchJob(
                    model=models[task],
                    input=write(work / f"{task}-{size}.jsonl", rows_for(task, size)),
                    output=work / f"{task}-{size}-out.jsonl",
                    task=task,
                    backend=args.backend,
                    generation=generation,
                    batch_size=args.batch_size,
                )
                times[size] = time_job(run, job)
            per_row = (times[2 * n] - times[n]) / n
            fixed = times[n] - n * per_row
            results.append(
                {
                    "task": task,
                    "mode": label,
                    "rows": 2 * n,
                    "rows_per_s": 2 * n / times[2 * n],
                    "steady_rows_per_s": 1 / per_row if per_row > 0 else float("inf"),
                    "per_row_ms": per_row * 1000,
                    "fixed_s": fixed,
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr)
    assert ray.is_initialized()
    return results


def serve_rows(args, models: dict[str, str]) -> list[dict]:
    import httpx
    from ray import serve

    from tinylm.ray import ModelRef, deployment

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    body = {"model": "m", "max_tokens": args.max_new_tokens, "temperature": 0}
    results = []
    for replicas in args.replicas:
        app = deployment(
            [ModelRef(name="m", model=models["chat"])],
            replicas=replicas,
            threads=args.cpus // replicas,
            backend=args.backend,
        )
        serve.run(app, name="tinylm", route_prefix="/")

        def one(i: int) -> int:
            messages = rows_for("chat", i + 1)[-1]["messages"]
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json={**body, "messages": messages}, timeout=600
            )
            r.raise_for_status()
            return r.json()["usage"]["completion_tokens"]

        one(0)  # warm
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            tokens = sum(pool.map(one, range(args.requests)))
        seconds = time.perf_counter() - start
        results.append(
            {"replicas": replicas, "requests_per_s": args.requests / seconds, "tokens_per_s": tokens / seconds}
        )
        print(json.dumps(results[-1]), file=sys.stderr)
        serve.delete("tinylm")
    serve.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models and a few rows (a smoke run)")
    parser.add_argument("--chat-model", default="support-assistant")
    parser.add_argument("--embed-model", default="support-embedder")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--chat-rows", type=int, default=32)
    parser.add_argument("--embed-rows", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster (split among workers)")
    args = parser.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="tinylm-scaling-"))
    models = {"chat": args.chat_model, "embed": args.embed_model}
    if args.tiny:
        from tinylm.testing.models import build_model

        models = {"chat": str(build_model("smollm", work / "dec")), "embed": str(build_model("bert", work / "enc"))}
        args.chat_rows, args.embed_rows, args.max_new_tokens, args.requests = 4, 16, 8, 8
        args.backend = args.backend or "torch"

    import tinylm

    for model in models.values():  # convert once, before anything is timed
        tinylm.load(model, backend=args.backend).close()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        batch = batch_rows(args, models, work)
        served = serve_rows(args, models)
    finally:
        ray.shutdown()

    print(
        f"\n{platform.processor() or platform.machine()}, {args.cpus} CPUs for Ray, backend {args.backend or 'auto'}\n"
    )
    print("| task | mode | rows | rows/s (end to end) | rows/s (steady) | ms per row | fixed s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in batch:
        print(
            f"| {r['task']} | {r['mode']} | {r['rows']} | {r['rows_per_s']:.2f} | {r['steady_rows_per_s']:.2f} | "
            f"{r['per_row_ms']:.1f} | {r['fixed_s']:.1f} |"
        )
    for task in ("chat", "embed"):
        local = next(r for r in batch if r["task"] == task and r["mode"] == "local")
        one = next((r for r in batch if r["task"] == task and r["mode"] == "ray x1"), None)
        if one:
            if min(one["per_row_ms"], local["per_row_ms"]) <= 0:  # t(2n) < t(n): the machine's noise won
                print(f"\nRay's per-row overhead ({task}): not measurable at these sizes (raise the row counts)")
            else:
                print(f"\nRay's per-row overhead ({task}): {one['per_row_ms'] - local['per_row_ms']:+.1f} ms")
    print("\n| Ray Serve replicas | requests/s | tokens/s |\n|---:|---:|---:|")
    for r in served:
        print(f"| {r['replicas']} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
