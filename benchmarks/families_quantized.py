"""int8 / int4 agreement with fp32, per model family and backend, on the conformance suite's tiny random models.

    python benchmarks/families_quantized.py [--variants gemma2,olmo2] [--backends onnx,openvino] [--prompts 8]

For each decoder variant of `tinylm.testing.models` and each backend, loads fp32 and each lossy precision the
backend offers, and prints a markdown row per (variant, backend, precision): the share of greedy continuations
(16 tokens after each prompt) identical to fp32's, the share of tokens that agree position by position, and the
largest |logit - fp32 logit| over a teacher-forced sequence. Random weights have no margins between tokens, so
these figures say whether a family's quantized graph is wired right (agreement far above chance), not what
quality a trained checkpoint keeps (the backend pages measure that on trained models). Needs transformers and
torch (to build the models). A few minutes on 2 cores for every variant; pick some with --variants.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

import tinylm
from tinylm.errors import TinyLMError
from tinylm.testing.models import DECODER_VARIANTS, build_model

PRECISIONS = ("int8", "int4")


def _greedy(model: tinylm.Model, prompts: list[list[int]], n: int) -> list[list[int]]:
    return [list(model.generate(p, max_new_tokens=n, ignore_eos=True).token_ids) for p in prompts]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(DECODER_VARIANTS))
    ap.add_argument("--backends", default="torch,onnx,openvino")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| variant | backend | precision | identical continuations | tokens agreeing | max abs logit diff |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            folder = build_model(variant, Path(tmp) / variant)
            prompts = [rng.integers(3, 400, size=8).tolist() for _ in range(args.prompts)]
            ids = rng.integers(3, 400, size=40)
            for backend in args.backends.split(","):
                with tinylm.load(folder, backend=backend, precision="fp32") as ref:
                    want, want_logits = _greedy(ref, prompts, args.tokens), ref.logits(ids)
                for precision in PRECISIONS:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = tinylm.load(folder, backend=backend, precision=precision)
                    except TinyLMError as e:  # the backend does not offer it
                        print(f"| {variant} | {backend} | {precision} | - | - | {type(e).__name__} |")
                        continue
                    with model:
                        got, logits = _greedy(model, prompts, args.tokens), model.logits(ids)
                    same = sum(a == b for a, b in zip(got, want)) / len(want)
                    tokens = np.mean([x == y for a, b in zip(got, want) for x, y in zip(a, b)])
                    diff = float(np.abs(logits - want_logits).max())
                    print(f"| {variant} | {backend} | {precision} | {same:.0%} | {tokens:.0%} | {diff:.3g} |")


if __name__ == "__main__":
    main()
