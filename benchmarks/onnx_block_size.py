"""What tinylm-onnx's `block_size` trades at int8: decode speed on the SmolLM2-135M-shaped model against greedy
agreement with fp32 on a trained model (the quality bar of the ONNX issue: >= 90% identical continuations).

    python benchmarks/onnx_block_size.py [--blocks 32,64,128,256] [--model FOLDER] [--rounds 6]

Speed: every block size's artifact is loaded in one process and `Model.generate` (32-token prompt, 128 new
tokens, greedy, EOS ignored) runs them in a shuffled order each round, so a shared machine's drift hits all
alike; the table gives the median tokens/s. Quality: the trained 2-layer llama of the test suite (hidden size
96; `tinylm.testing.models.train_tiny_decoder`, ~15 s), 20 prompts x 32 greedy tokens against its fp32 graph.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def speeds(folder: str, blocks: list[int], rounds: int, precision: str) -> dict[int, float]:
    import tinylm
    from tinylm.bench import prompt_ids

    models = {b: tinylm.load(folder, backend="onnx", precision=precision, block_size=b, parity=False) for b in blocks}
    prompt = prompt_ids(next(iter(models.values())).spec.vocab_size, 32)
    rates: dict[int, list[float]] = {b: [] for b in blocks}
    order = list(blocks)
    for _ in range(rounds):
        random.Random(len(rates[blocks[0]])).shuffle(order)  # a new order each round, the same on every run
        for b in order:
            done = models[b].generate(prompt, max_new_tokens=128, temperature=0, ignore_eos=True)
            rates[b].append(done.usage.tokens_per_second)
    return {b: statistics.median(r) for b, r in rates.items()}


def agreement(blocks: list[int], precision: str, work: Path) -> dict[int, float]:
    import tinylm
    from tinylm.testing.models import train_tiny_decoder

    folder = work / "trained"
    folder.mkdir()
    prompts = train_tiny_decoder(folder)

    def continuations(model: tinylm.Model) -> list[list[int]]:
        return [list(model.generate(p, max_new_tokens=32, ignore_eos=True).token_ids) for p in prompts]

    fp32 = continuations(tinylm.load(folder, backend="onnx", parity=False))
    out = {}
    for b in blocks:
        ours = continuations(tinylm.load(folder, backend="onnx", precision=precision, block_size=b, parity=False))
        out[b] = float(np.mean([a == c for a, c in zip(ours, fp32)]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="32,64,128,256")
    parser.add_argument("--precision", default="int8", choices=("int8", "int4"))
    parser.add_argument("--model", help="a model folder (default: build the SmolLM2-135M-shaped random model)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    blocks = [int(b) for b in args.blocks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TINYLM_HOME"] = str(Path(tmp) / "home")
        os.environ.setdefault("TINYLM_NUM_THREADS", "2")
        folder = args.model or str(Path(tmp) / "model")
        if not args.model:
            build = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", folder]
            subprocess.run(build, check=True, capture_output=True)
        fast = speeds(folder, blocks, args.rounds, args.precision)
        same = agreement(blocks, args.precision, Path(tmp))
    print(f"| {args.precision} block_size | decode tok/s (SmolLM2-135M) | identical continuations (trained llama) |")
    print("|---:|---:|---:|")
    for b in blocks:
        print(f"| {b} | {fast[b]:.1f} | {same[b]:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
