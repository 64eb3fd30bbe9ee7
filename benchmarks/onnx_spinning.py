"""What ONNX Runtime's spin-waiting pool threads give and cost when an embedder and a generator share a process
(search, then answer): tinylm's sessions (the generator's threads spin-wait between runs, the embedder's block when
a run ends) against every pool spinning (ONNX Runtime's default) and every pool blocking (tinylm before).

    python benchmarks/onnx_spinning.py MODEL [--precision int8] [--rounds 12] [--alone]

MODEL is a decoder folder (e.g. the SmolLM2-135M-shaped random model); the embedder is the bundled
support-embedder. The three pairs (generator + embedder) are loaded in one process, without the compiled copy so
all open the same artifact the same way; each round, in a shuffled order, each pair embeds 9 short texts, then
generates 64 tokens from a 32-token prompt, then at once embeds the 9 texts again (a server's next request while
the generator's threads still spin), then rests 0.1 s. Prints the medians.

--alone: a generator alone, spinning and blocking, loaded once each; each round, in a shuffled order, each
generates 128 tokens, then rests 0.1 s (`benchmarks/ab.py`'s interleaved loop); prints the medians and the paired
decode ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ab import interleave, table

POLICIES = {  # name -> the `spin_wait` option of the generator and of the embedder (None: tinylm's default)
    "tinylm: the generator spins, the embedder blocks": (None, None),
    "every pool spins (ONNX Runtime's default)": (True, True),
    "every pool blocks (tinylm before)": (False, False),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--alone", action="store_true", help="a generator alone: spinning against blocking")
    args = parser.parse_args()

    import tinylm
    from tinylm.bench import EMBED_SENTENCES, prompt_ids

    def load(model: str, spin_wait: bool | None, **options: str) -> tinylm.Model:
        return tinylm.load(model, backend="onnx", compiled_cache=False, spin_wait=spin_wait, **options)

    if args.alone:
        generators = {
            name: load(args.model, spin_wait, precision=args.precision)
            for name, spin_wait in (("spins (tinylm)", None), ("blocks", False))
        }
        prompt = prompt_ids(generators["blocks"].spec.vocab_size, 32)

        def generate(model: tinylm.Model) -> tuple[float, float]:
            usage = model.generate(prompt, max_new_tokens=128, temperature=0, ignore_eos=True).usage
            time.sleep(0.1)  # past the spinning threads' 25 ms, which would slow the next one's first token
            return usage.time_to_first_token * 1000, usage.tokens_per_second

        results = interleave({name: partial(generate, m) for name, m in generators.items()}, args.rounds)
        print(f"{args.precision}, a generator alone, medians of {args.rounds} rounds\n")
        print(table(results, label="pool threads between runs"))
        return 0
    pairs = {
        name: (load(args.model, generator, precision=args.precision), load("support-embedder", embedder))
        for name, (generator, embedder) in POLICIES.items()
    }
    prompt = prompt_ids(next(iter(pairs.values()))[0].spec.vocab_size, 32)
    texts = EMBED_SENTENCES[:9]

    def embed_ms(embedder: tinylm.Model) -> float:
        began = time.perf_counter()
        embedder.embed(texts)
        return (time.perf_counter() - began) * 1000

    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in pairs}
    for r in range(args.rounds + 1):
        for name in random.Random(r).sample(list(pairs), len(pairs)):
            generator, embedder = pairs[name]
            before = embed_ms(embedder)
            usage = generator.generate(prompt, max_new_tokens=64, temperature=0, ignore_eos=True).usage
            after = embed_ms(embedder)
            time.sleep(0.1)
            if r:  # round 0 warms up
                results[name].append((before, usage.time_to_first_token * 1000, usage.tokens_per_second, after))
    print(f"{args.precision}, medians of {args.rounds} rounds\n")
    print(
        "| pool threads between runs | embed 9 texts (ms) | then first token (ms) | decode tok/s "
        "| embed right after (ms) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        before, first, decode, after = (statistics.median(x[i] for x in runs) for i in range(4))
        print(f"| {name} | {before:.1f} | {first:.1f} | {decode:.1f} | {after:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
