"""A/B two or more tinylm-openvino artifact folders in one process: first token and decode speed, interleaved.

    python benchmarks/openvino_ab.py --precision bf16 FOLDER_A FOLDER_B [--rounds 8]

Each FOLDER is a converted artifact (`tinylm convert MODEL --backend openvino --precision P --out FOLDER`, or a
cache entry under TINYLM_HOME/artifacts/openvino/); to compare a change to the graph, convert once on each side
of it (e.g. `git stash`). Every folder is compiled for the CPU with the precision's properties (2 threads), then
each round, in a new shuffled order, each one prefills a 32-token prompt (timed: the first token) and decodes 64
tokens (tokens/s), on the runtime directly so nothing but the graph differs. Prints the medians of the rounds
after a warm-up one.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import interleave, table


def _run(request, prompt: np.ndarray, new_tokens: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    beam = np.zeros(1, np.int32)
    request.reset_state()
    began = time.perf_counter()
    request.infer({"input_ids": prompt, "beam_idx": beam, "start": np.array([0]), "logits_from": np.array([31])})
    first = time.perf_counter() - began
    token = np.array([[7]], np.int64)
    began = time.perf_counter()
    for i in range(new_tokens):
        start = np.array([prompt.shape[1] + i])
        request.infer({"input_ids": token, "beam_idx": beam, "start": start, "logits_from": np.array([0])})
    return first * 1000, new_tokens / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--precision", required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from tinylm_openvino.opening import compile_folder
    from tinylm_openvino.options import BuildOptions

    opts = BuildOptions(precision=args.precision)
    requests = {str(f): compile_folder(f, "CPU", opts, args.threads).create_infer_request() for f in args.folders}
    prompt = (np.arange(32) * 37 % 1000 + 5)[None].astype(np.int64)
    results = interleave({f: partial(_run, r, prompt, 64) for f, r in requests.items()}, args.rounds)
    print(f"{args.precision}, {args.threads} threads, medians of {args.rounds} rounds\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
