"""Aggregate decode throughput of `Model.generate_batch` against the same prompts generated one after another.

    python -m benchmarks.batch_decode onnx --precision int8 [--sizes 1 2 4 8 16] [--genai DIR] [--write-docs]
    python -m benchmarks.batch_decode openvino --model DIR  # any backend name; DIR: a model folder
    python -m benchmarks.batch_decode torch --tiny          # a tiny random model: checks the script runs

Without --model it builds the SmolLM2-135M-shaped random model (`python -m benchmarks.peers --build-model`, in its
own interpreter so this one never imports torch unless the backend does). Prompts: --prompt-tokens token ids each;
every row decodes --new-tokens (greedy, EOS ignored). Decode time only, on every side: tokens after each row's first
over the time after the (last) first token (every prefill excluded, as `Usage.tokens_per_second` does for one, and
the opening of a rows session for a new batch size, as onnxruntime-genai's Generator is made before its timer).

Each round runs every measurement once, in alternating order, so a machine whose speed drifts favours no side:
"one after another" generates --serial prompts with `Model.generate` (each prompt is the same work, so their rate is
any batch's), then each batch size B runs B prompts through `generate_batch(batch_size=B)`, and with --genai DIR
onnxruntime-genai decodes the same B prompts as its own batch (DIR: its export of the same model folder,
`python -m onnxruntime_genai.models.builder -i MODEL -o DIR -p int8 -e cpu`, genai_config.json set to the same
intra-op threads). The table gives medians over the rounds and the median of each round's ratio to that round's
one-after-another rate. Public API only. --write-docs replaces this backend and precision's table in
docs/batching.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "batching.md"
MARK = "<!-- batch_decode figures -->"


def prompts(n: int, length: int, vocab: int) -> list[list[int]]:
    """n prompts of `length` token ids (deterministic, ids 3..999 within the vocabulary)."""
    top = min(vocab, 1000)
    return [[3 + (i * 7919 + j * 104729) % (top - 3) for j in range(length)] for i in range(n)]


def in_thread(fn):
    """fn() run in a fresh thread, as the batched rows run in the scheduler's worker thread: on a busy machine torch's
    OpenMP main thread measured many times slower than any other thread (2 cores shared with other jobs), so both
    sides run off the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def batched(model, rows: list[list[int]], new_tokens: int) -> float:
    """Aggregate decode tokens/s of `rows` through `generate_batch`, all rows decoded together.

    The rows are submitted together, so each one's usage counts from the same moment: decoding is the span from
    the last first token to the last row's end. Opening a rows session of this size (once per batch size, as
    onnxruntime-genai's Generator is made before its timer) and every prefill are outside it."""
    model.batcher(max_rows=len(rows))  # made now, not inside the timed call
    done = model.generate_batch(rows, batch_size=len(rows), max_new_tokens=new_tokens, ignore_eos=True)
    first = max(c.usage.time_to_first_token for c in done)  # the last prefill done (batched: all at once)
    end = max(c.usage.total_time for c in done)
    return len(rows) * (new_tokens - 1) / max(end - first, 1e-9)


def serial(model, rows: list[list[int]], new_tokens: int) -> float:
    """Decode tokens/s of `rows` generated one after another with `Model.generate`."""
    done = in_thread(lambda: [model.generate(row, max_new_tokens=new_tokens, ignore_eos=True) for row in rows])
    seconds = sum(one.usage.total_time - one.usage.time_to_first_token for one in done)
    return len(rows) * (new_tokens - 1) / max(seconds, 1e-9)


def genai(folder: Path, rows: list[list[int]], new_tokens: int) -> float:
    """onnxruntime-genai decoding `rows` as its own batch: aggregate decode tokens/s after the first token."""
    import numpy as np
    import onnxruntime_genai as og

    model = genai.model = getattr(genai, "model", None) or og.Model(str(folder))  # type: ignore[attr-defined]
    params = og.GeneratorParams(model)
    total = len(rows[0]) + new_tokens
    params.set_search_options(max_length=total, min_length=total, batch_size=len(rows))
    gen = og.Generator(model, params)
    gen.append_tokens(np.array(rows, dtype=np.int32))
    gen.generate_next_token()  # the first token (prefill)
    start = time.perf_counter()
    for _ in range(new_tokens - 1):
        gen.generate_next_token()
    return len(rows) * (new_tokens - 1) / (time.perf_counter() - start)


def write_docs(key: str, table: str) -> None:
    """Replace the table of `key` (backend and precision) within the figures of docs/batching.md, or add it."""
    text = DOCS.read_text(encoding="utf-8")
    before, _, rest = text.partition(MARK)
    figures, _, after = rest.partition(MARK)
    blocks: dict[str, list[str]] = {}
    for line in figures.strip().splitlines():
        if line.startswith("<!-- ") and line.endswith(" -->"):
            blocks[line] = []
        elif blocks:
            blocks[list(blocks)[-1]].append(line)
    blocks[f"<!-- {key} -->"] = [table]
    body = "\n\n".join(f"{k}\n" + "\n".join(v).strip() for k, v in sorted(blocks.items()))
    DOCS.write_text(f"{before}{MARK}\n{body}\n{MARK}{after}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", help="backend name (tinylm backends lists them)")
    parser.add_argument("--model", type=Path, help="model folder (default: the SmolLM2-135M-shaped random model)")
    parser.add_argument("--precision")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--serial", type=int, default=4, help="prompts generated one after another per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--genai", type=Path, help="onnxruntime-genai's export of the same model, run in the rounds")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and few tokens (a smoke run)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)

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
    rows = prompts(max(*args.sizes, args.serial), args.prompt_tokens, model.spec.vocab_size)
    new = args.new_tokens
    Job = tuple[str, Callable[[], float]]
    jobs: list[Job] = [("one after another", lambda: serial(model, rows[: args.serial], new))]
    jobs += [(f"generate_batch, batch {b}", lambda b=b: batched(model, rows[:b], new)) for b in args.sizes]
    if args.genai:
        jobs += [(f"onnxruntime-genai, batch {b}", lambda b=b: genai(args.genai, rows[:b], new)) for b in args.sizes]
    runs: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    for r in range(args.rounds):
        got = {name: job() for name, job in (jobs if r % 2 == 0 else jobs[::-1])}
        for name, value in got.items():
            runs.setdefault(name, []).append(value)
            ratios.setdefault(name, []).append(value / got[jobs[0][0]])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()), flush=True)
    lines = ["| run | decode tok/s (median) | x one after another (median of rounds) |", "|---|---:|---:|"]
    lines += [f"| {k} | {statistics.median(v):.1f} | {statistics.median(ratios[k]):.2f}x |" for k, v in runs.items()]
    command = " ".join(["python -m benchmarks.batch_decode", *sys.argv[1:]]).replace(" --write-docs", "")
    head = (
        f"**{model.backend} {model.precision}** — measured {date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} cores) with `{command}`: "
        f"{'a tiny random model' if args.tiny else 'the SmolLM2-135M-shaped random model'} on "
        f"{model.backend}/{model.device}, {args.threads} threads, {args.prompt_tokens}-token prompts, {new} new tokens "
        f"each, {args.rounds} rounds."
    )
    table = "\n".join([head, "", *lines])
    print(table)
    if args.write_docs:
        write_docs(f"{model.backend} {model.precision}", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
