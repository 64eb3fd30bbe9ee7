"""Structured output: what the constraint mask costs per decoded token.

    python -m benchmarks.structured_overhead [--backend onnx] [--precision int8] [--write-docs]

1. The libraries: per-token mask time of llguidance and outlines-core on the same tokenizer
   (a 49,152-token byte-level BPE trained here on synthetic text: the SmolLM2-135M-shaped model's
   vocabulary size) and the same JSON schema, plus their compile time. (xgrammar is not measured:
   it requires torch, transformers and triton, which the core must not depend on.)
2. End to end: decode tokens/s of the SmolLM2-135M-shaped random model with and without a
   constraint that never ends early (a regex requiring 2,000 letters), median of 3 runs, 128 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from .peer_runs import SMOLLM2_135M, THREADS, build_smollm2

DOCS = Path(__file__).resolve().parents[1] / "docs" / "structured-output.md"
MARKS = ("<!-- measured: start -->", "<!-- measured: end -->")  # --write-docs replaces what lies between
SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["refund", "delivery", "account", "invoice"]},
        "order_number": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "string"}},
        "customer": {"type": "object", "properties": {"name": {"type": "string"}, "vip": {"type": "boolean"}}},
    },
    "required": ["intent", "order_number", "items", "customer"],
}
STEPS = 200


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the character each byte is written as -> the byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def realistic_tokenizer(folder: Path, vocab_size: int) -> None:
    """Replace the test tokenizer (a few hundred tokens) by a byte-level BPE of `vocab_size` tokens,
    trained on synthetic text, so mask costs are measured at a real model's vocabulary size."""
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = random.Random(0)
    syllables = [a + b for a in "bcdfghjklmnprstvwz" for b in ("a", "e", "i", "o", "u", "ai", "ou", "ea")]
    lexicon = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(120_000)]
    weights = [1 / (i + 1) for i in range(len(lexicon))]  # Zipf-like word frequencies
    lines = [" ".join(rng.choices(lexicon, weights, k=40)) for _ in range(60_000)]
    lines += [json.dumps({"order": rng.randint(0, 10**6), "intent": rng.choice(lexicon)}) for _ in range(5_000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    tok.save(str(folder / "tokenizer.json"))
    print(f"tokenizer: {tok.get_vocab_size()} tokens", file=sys.stderr)


def library_costs(folder: Path) -> list[tuple[str, float, float]]:
    """(library, compile seconds, mean mask microseconds per token) walking a fixed valid output."""
    import numpy as np

    tokenizer_json = (folder / "tokenizer.json").read_text()
    vocab = json.loads(tokenizer_json)["model"]["vocab"]
    eos = 2
    from tokenizers import Tokenizer

    target = json.dumps({"intent": "refund", "order_number": 123456, "items": ["a", "b"], "customer": {"name": "Ann"}})
    path = Tokenizer.from_str(tokenizer_json).encode(target).ids
    results = []

    import llguidance
    import llguidance.numpy as lnp

    start = time.perf_counter()
    tok = llguidance.LLTokenizer(tokenizer_json, n_vocab=len(vocab), eos_token=eos)
    matcher = llguidance.LLMatcher(tok, llguidance.LLMatcher.grammar_from_json_schema(SCHEMA))
    compiled = time.perf_counter() - start
    mask = lnp.allocate_token_bitmask(1, tok.vocab_size)
    times = []
    for token in path:
        t = time.perf_counter()
        lnp.fill_next_token_bitmask(matcher, mask, 0)
        times.append(time.perf_counter() - t)
        matcher.consume_token(token)
    results.append(("llguidance", compiled, statistics.mean(times) * 1e6))

    try:
        from outlines_core import Guide, Index, Vocabulary
        from outlines_core.json_schema import build_regex_from_schema
    except ImportError as e:
        print(f"outlines-core not measured: {e}", file=sys.stderr)
        return results
    decode = _byte_decoder()
    by_bytes: dict[bytes, list[int]] = {}
    for piece, i in vocab.items():
        if i == eos:
            continue
        try:
            by_bytes.setdefault(bytes(decode[c] for c in piece), []).append(i)
        except KeyError:  # special tokens are not byte-level pieces
            continue
    start = time.perf_counter()
    index = Index(build_regex_from_schema(json.dumps(SCHEMA)), Vocabulary(eos, by_bytes))
    guide = Guide(index)
    compiled = time.perf_counter() - start
    buffer = np.zeros((len(vocab) + 31) // 32, dtype=np.int32)
    times = []
    for token in path:
        t = time.perf_counter()
        guide.write_mask_into(buffer.ctypes.data, buffer.size, buffer.itemsize)
        times.append(time.perf_counter() - t)
        guide.advance(token)
    results.append(("outlines-core", compiled, statistics.mean(times) * 1e6))
    return results


def decode_speed(folder: Path, backend: str | None, precision: str, constrained: bool) -> tuple[float, str]:
    import re

    import tinylm
    from tinylm.bench import prompt_ids
    from tinylm.generation import join_chunks

    model = tinylm.load(folder, backend=backend, precision=precision)
    fmt = model.constraint(re.compile("[a-z]{2000}")) if constrained else None
    speeds = []
    for _ in range(4):
        # stream, not generate: generate refuses an output the token limit cut short, which is the point here
        prompt = prompt_ids(SMOLLM2_135M["vocab_size"], 32)  # the prompt `tinylm bench` and the peer harness use
        out = join_chunks(model.stream(prompt, max_new_tokens=128, ignore_eos=True, response_format=fmt))
        assert out.usage.completion_tokens == 128
        speeds.append(out.usage.tokens_per_second)
    return statistics.median(speeds[1:]), f"{model.backend}/{model.precision}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="default: the best available backend")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    os.environ["TINYLM_NUM_THREADS"] = str(THREADS)
    folder = Path(tempfile.mkdtemp()) / "smollm2-135m-shaped"
    build_smollm2(folder)
    realistic_tokenizer(folder, 49152)

    libs = library_costs(folder)
    free, which = decode_speed(folder, args.backend, args.precision, constrained=False)
    masked, _ = decode_speed(folder, args.backend, args.precision, constrained=True)
    lines = ["| library | compile (ms) | mask per token (µs) |", "|---|---:|---:|"]
    lines += [f"| {name} | {c * 1000:.1f} | {us:.1f} |" for name, c, us in libs]
    lines += [
        "",
        f"| decode on {which}, SmolLM2-135M-shaped, 128 tokens | tokens/s |",
        "|---|---:|",
        f"| unconstrained | {free:.1f} |",
        f"| constrained (regex mask every token) | {masked:.1f} |",
        f"| slowdown | {100 * (1 - masked / free):.1f}% |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.write_docs:
        measured = (
            f"Measured {date.today().isoformat()} on {platform.machine()} ({THREADS} threads) with "
            "`python -m benchmarks.structured_overhead --write-docs`.\n\n" + table + "\n"
        )
        page = DOCS.read_text(encoding="utf-8")
        begin, end = page.index(MARKS[0]) + len(MARKS[0]), page.index(MARKS[1])
        DOCS.write_text(page[:begin] + "\n" + measured + page[end:], encoding="utf-8")
        print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
