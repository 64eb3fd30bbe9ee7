"""A/B two or more tinylm-onnx artifact folders in one process: first token and decode speed, interleaved.

    python benchmarks/onnx_ab.py FOLDER_A FOLDER_B [--rounds 8] [--new-tokens 128]

Each FOLDER is a converted artifact (`tinylm convert MODEL --backend onnx --precision P --out FOLDER`); to compare
a change to the graph, convert once on each side of it (e.g. `git stash`). Every folder is loaded once
(`tinylm.load`, 2 threads unless TINYLM_NUM_THREADS says otherwise); then each round, in a new shuffled order, each
one generates greedily from the same 32-token prompt with EOS ignored, so a shared machine's drift hits all alike.
Prints the medians of the rounds after a warm-up one, and each folder's median ratio to the first, round by round.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import interleave, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args()

    import tinylm
    from tinylm.bench import prompt_ids

    models = {str(f): tinylm.load(f, backend="onnx") for f in args.folders}
    prompt = prompt_ids(next(iter(models.values())).spec.vocab_size, 32)

    def run(model: tinylm.Model) -> tuple[float, float]:
        usage = model.generate(prompt, max_new_tokens=args.new_tokens, temperature=0, ignore_eos=True).usage
        return usage.time_to_first_token * 1000, usage.tokens_per_second

    results = interleave({f: partial(run, m) for f, m in models.items()}, args.rounds)
    print(f"medians of {args.rounds} rounds, {args.new_tokens} new tokens\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
