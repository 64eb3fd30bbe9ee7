"""Many sequences at once (issue #24): aggregate decode tokens/s of a rows session at batch 1/2/4/8/16 against the
same prompts generated one after another (`Model.generate`), on the SmolLM2-135M-shaped random model; with
--genai, onnxruntime-genai's own batch of 8 on the same model in the same rounds.

    python -m benchmarks.peers --build-model /tmp/smollm2         # once: the random SmolLM2-135M-shaped model
    python -m benchmarks.rows_throughput /tmp/smollm2 --backend onnx --precision int8 [--genai DIR]

DIR is onnxruntime-genai's export of the same folder (`python -m onnxruntime_genai.models.builder -i /tmp/smollm2
-o DIR -p int8 -e cpu`; its genai_config.json set to 2 intra-op threads here). Prompts: random ids, 32 tokens
each; every row decodes 64 tokens after its first (greedy, EOS ignored). Decode time only: prefill is excluded
on every side. "One after another" generates the prompts alone (`Model.generate`), one prompt per round, taking
turns through the 8 (each prompt is the same work: its rate is the 8's). Each round runs every measurement once,
in alternating order, so a machine whose speed drifts favours no side; the table gives medians over the rounds
and the median of each round's own ratio to that round's one-after-another rate (on a shared machine the
ratios are the figures to read).
Where a step's time goes (ONNX Runtime's per-node profile) is in docs/backends/onnx.md, with the command that
measured it at commit 8833989 (its --profile read the backend's own modules, which benchmarks never do).
The rows session is opened as the core will (`tinylm.testing.row_check.open_rows`);
after the batching core lands this calls `Model.generate_batch`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

PROMPT, NEW, BATCHES, SEQUENTIAL = 32, 64, (1, 2, 4, 8, 16), 8


def prompts(n: int, vocab: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(3, min(vocab, 8192), PROMPT).astype(np.int64) for _ in range(n)]


def sequential(model: Any, ps: list[np.ndarray]) -> float:
    """Decode tokens/s of the prompts generated one after another (the public API)."""
    tokens = seconds = 0.0
    for p in ps:
        usage = model.generate(p.tolist(), max_new_tokens=NEW + 1, ignore_eos=True).usage
        tokens += usage.completion_tokens - 1
        seconds += (usage.completion_tokens - 1) / usage.tokens_per_second
    return tokens / seconds


def batched(rows: Any, ps: list[np.ndarray]) -> float:
    """Aggregate decode tokens/s of the prompts as rows of one session."""
    ids, logits = rows.add_rows(ps)
    start = time.perf_counter()
    for _ in range(NEW):
        logits = rows.step_rows(ids, logits.argmax(-1))
    seconds = time.perf_counter() - start
    for r in ids:
        rows.drop_row(r)
    return len(ps) * NEW / seconds


def genai(folder: Path, ps: list[np.ndarray]) -> float:
    """onnxruntime-genai's batch: aggregate decode tokens/s after the first token."""
    import onnxruntime_genai as og

    model = genai.model = getattr(genai, "model", None) or og.Model(str(folder))  # type: ignore[attr-defined]
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=PROMPT + NEW + 1, min_length=PROMPT + NEW + 1, batch_size=len(ps))
    gen = og.Generator(model, params)
    gen.append_tokens(np.stack(ps).astype(np.int32))
    gen.generate_next_token()  # the first token (prefill)
    start = time.perf_counter()
    for _ in range(NEW):
        gen.generate_next_token()
    return len(ps) * NEW / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--genai", type=Path, help="onnxruntime-genai export of the same model")
    args = ap.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)
    import tinylm
    from tinylm.testing.row_check import open_rows

    model = tinylm.load(args.model, backend=args.backend, precision=args.precision)
    batches = [int(b) for b in args.batches.split(",")]
    ps = prompts(max(batches), model.spec.vocab_size)
    rows = open_rows(model, max(batches))
    runs: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    turn = iter(range(10**6))
    jobs: list[tuple[str, Any]] = [("one after another", lambda: sequential(model, [ps[next(turn) % SEQUENTIAL]]))]
    jobs += [(f"rows, batch {b}", lambda b=b: batched(rows, ps[:b])) for b in batches]
    if args.genai:
        jobs.append(("onnxruntime-genai, batch 8", lambda: genai(args.genai, ps[:8])))
    for r in range(args.rounds):
        got = {name: job() for name, job in (jobs if r % 2 == 0 else jobs[::-1])}
        for name, value in got.items():
            runs.setdefault(name, []).append(value)
            ratios.setdefault(name, []).append(value / got[jobs[0][0]])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()), flush=True)
    print(f"\n{args.backend} {args.precision}, {args.threads} threads, {len(ps[0])}-token prompts, {NEW} new tokens")
    print("| run | decode tok/s (median) | x one after another (median of rounds) |\n|---|---:|---:|")
    for name in runs:
        print(f"| {name} | {statistics.median(runs[name]):.1f} | {statistics.median(ratios[name]):.2f} |")


if __name__ == "__main__":
    main()
