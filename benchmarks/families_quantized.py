"""int8 / int4 agreement with fp32, per model family and backend, on the conformance suite's tiny random models.

    python benchmarks/families_quantized.py [--variants gemma2,olmo2] [--backends onnx,openvino] [--prompts 8]

For each decoder variant of `tinylm.testing.models` and each backend, loads fp32 and each lossy precision the
backend offers, and prints a markdown row per (variant, backend, precision): the share of greedy continuations
(16 tokens after each prompt) identical to fp32's, the share of tokens that agree position by position, and the
largest |logit - fp32 logit| over a teacher-forced sequence. Random weights have no margins between tokens, so
these figures say whether a family's quantized graph is wired right (agreement far above chance), not what
quality a trained checkpoint keeps (the backend pages measure that on trained models). Needs transformers and
torch (to build the models). A few minutes on 2 cores for every variant; pick some with --variants.

Encoder variants (`--variants modernbert,modernbert-mean`) print their own rows: over 16 texts of 3-64 tokens (past
ModernBERT's local windows), the lowest cosine similarity between the quantized and the fp32 embedding, the
largest |component difference| of the normalised embeddings, and the share of texts whose nearest neighbour among
the others is the same as with fp32.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

import tinylm
from tinylm.errors import TinyLMError
from tinylm.testing.conformance import LONG_TEXT
from tinylm.testing.models import DECODER_VARIANTS, ENCODER_VARIANTS, build_model

PRECISIONS = ("int8", "int4")


def _greedy(model: tinylm.Model, prompts: list[list[int]], n: int) -> list[list[int]]:
    return [list(model.generate(p, max_new_tokens=n, ignore_eos=True).token_ids) for p in prompts]


def _texts(n: int) -> list[str]:
    words = LONG_TEXT.split()
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 50)))) for _ in range(n)]


def _neighbours(e: np.ndarray) -> np.ndarray:
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def _encoder_rows(variant: str, folder: Path, backends: list[str]) -> None:
    texts = _texts(16)
    for backend in backends:
        with tinylm.load(folder, backend=backend, precision="fp32") as ref:
            want = ref.embed(texts)
        for precision in PRECISIONS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = tinylm.load(folder, backend=backend, precision=precision)
            except TinyLMError as e:
                print(f"| {variant} | {backend} | {precision} | - | - | {type(e).__name__} |")
                continue
            with model:
                got = model.embed(texts)
            cosine = float((got * want).sum(axis=1).min())
            diff = float(np.abs(got - want).max())
            same = float(np.mean(_neighbours(got) == _neighbours(want)))
            print(f"| {variant} | {backend} | {precision} | {cosine:.4f} | {diff:.3g} | {same:.0%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(DECODER_VARIANTS))
    ap.add_argument("--backends", default="torch,onnx,openvino")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    variants = args.variants.split(",")
    decoders = [v for v in variants if v not in ENCODER_VARIANTS]
    with tempfile.TemporaryDirectory() as tmp:
        encoders = [v for v in variants if v in ENCODER_VARIANTS]
        if encoders:
            print("| variant | backend | precision | min cosine to fp32 | max abs diff | same nearest neighbour |")
            print("|---|---|---|---|---|---|")
        for variant in encoders:
            _encoder_rows(variant, build_model(variant, Path(tmp) / variant), args.backends.split(","))
        if decoders:
            print("| variant | backend | precision | identical continuations | tokens agreeing | max abs logit diff |")
            print("|---|---|---|---|---|---|")
        for variant in decoders:
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
