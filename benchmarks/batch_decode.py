"""Aggregate decode throughput of `Model.generate_batch` against the same prompts generated one after another.

    python -m benchmarks.batch_decode torch [--precision int8] [--sizes 1 2 4 8 16] [--write-docs]
    python -m benchmarks.batch_decode onnx --model DIR      # any backend name; DIR: a model folder
    python -m benchmarks.batch_decode torch --tiny          # a tiny random model: checks the script runs

Without --model it builds the SmolLM2-135M-shaped random model (`python -m benchmarks.peers --build-model`, in its
own interpreter so this one never imports torch unless the backend does). For each batch size B: B prompts of
--prompt-tokens token ids, --new-tokens generated each (ignore_eos), once with `generate_batch(batch_size=B)` and once
with `generate` per prompt, interleaved, --repeats times; aggregate decode tokens/s = B x new tokens / seconds
spent after the first token (the prefill of every prompt excluded, as `Usage.tokens_per_second` does for one).
Public API only. Prints a Markdown table; --write-docs replaces the figures in docs/batching.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "batching.md"
MARK = "<!-- batch_decode figures -->"


def prompts(n: int, length: int, vocab: int) -> list[list[int]]:
    """n prompts of `length` token ids (deterministic, ids 3..999 within the vocabulary)."""
    top = min(vocab, 1000)
    return [[3 + (i * 7919 + j * 104729) % (top - 3) for j in range(length)] for i in range(n)]


def decode_rate(completions: list, elapsed: float, new_tokens: int) -> float:
    """Aggregate decode tokens/s: the tokens after each row's first over the time after the first token."""
    first = max(c.usage.time_to_first_token for c in completions)  # the last prefill done (batched: all at once)
    return len(completions) * (new_tokens - 1) / max(elapsed - first, 1e-9)


def in_thread(fn):
    """fn() run in a fresh thread, as the batched rows run in the scheduler's worker thread: on a busy machine torch's
    OpenMP main thread measured many times slower than any other thread (2 cores shared with other jobs), so both
    sides run off the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def measure(model, batch: int, args) -> tuple[float, float]:
    """(batched, one after another) aggregate decode tokens/s for `batch` prompts."""
    rows = prompts(batch, args.prompt_tokens, model.spec.vocab_size)
    options = {"max_new_tokens": args.new_tokens, "ignore_eos": True}
    batched, serial = [], []
    for _ in range(args.repeats):  # interleaved, so a busy neighbour slows both alike
        start = time.perf_counter()
        done = model.generate_batch(rows, batch_size=batch, **options)
        batched.append(decode_rate(done, time.perf_counter() - start, args.new_tokens))
        alone = in_thread(lambda: [model.generate(row, **options) for row in rows])
        elapsed_decode = sum(one.usage.total_time - one.usage.time_to_first_token for one in alone)
        serial.append(batch * (args.new_tokens - 1) / max(elapsed_decode, 1e-9))
    return statistics.median(batched), statistics.median(serial)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", help="backend name (tinylm backends lists them)")
    parser.add_argument("--model", type=Path, help="model folder (default: the SmolLM2-135M-shaped random model)")
    parser.add_argument("--precision")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and few tokens (a smoke run)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    import tinylm

    folder = args.model
    if folder is None:
        folder = Path(tempfile.mkdtemp()) / "model"
        if args.tiny:
            from tinylm.testing.models import build_model

            build_model("smollm", folder)
            args.new_tokens, args.sizes = min(args.new_tokens, 16), [s for s in args.sizes if s <= 4]
        else:
            root = Path(__file__).resolve().parents[1]
            build = [sys.executable, "-m", "benchmarks.peers", "--build-model", str(folder)]
            subprocess.run(build, check=True, cwd=root)
    model = tinylm.load(folder, backend=args.backend, precision=args.precision)
    print(f"{model.backend}/{model.device} {model.precision}, rows decoded together: {model.batches_rows}")
    model.generate_batch(prompts(2, 4, model.spec.vocab_size), max_new_tokens=2)  # warm up both paths
    in_thread(lambda: model.generate([5, 6, 7], max_new_tokens=2))
    lines = [
        "| batch | generate_batch decode tok/s | one after another tok/s | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    for batch in args.sizes:
        together, alone = measure(model, batch, args)
        lines.append(f"| {batch} | {together:.1f} | {alone:.1f} | {together / alone:.2f}x |")
        print(lines[-1], flush=True)
    head = (
        f"Measured {date.today().isoformat()} on {platform.machine()} with `python -m benchmarks.batch_decode "
        f"{args.backend}{' --precision ' + args.precision if args.precision else ''}`: "
        f"{'a tiny random model' if args.tiny else 'the SmolLM2-135M-shaped random model'} on "
        f"{model.backend}/{model.device} {model.precision}, {args.prompt_tokens}-token prompts, {args.new_tokens} new "
        f"tokens each, median of {args.repeats} interleaved runs."
    )
    table = "\n".join([head, "", *lines])
    print(table)
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        before, _, rest = text.partition(MARK)
        _, _, after = rest.partition(MARK)
        DOCS.write_text(f"{before}{MARK}\n{table}\n{MARK}{after}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
