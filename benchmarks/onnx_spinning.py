"""What ONNX Runtime's spin-waiting threads cost when an embedder and a generator share a process (search, then
answer), and a generator alone: tinylm's sessions (threads block when a run ends: `session.force_spinning_stop`)
against the same sessions with ONNX Runtime's default (threads spin-wait for the next run).

    python benchmarks/onnx_spinning.py MODEL [--precision int8] [--rounds 12]

MODEL is a decoder folder (e.g. the SmolLM2-135M-shaped random model); the embedder is the bundled
support-embedder. Both pairs (generator + embedder) are loaded in one process, without the compiled copy so both
sides open the same artifact the same way; each round, in a shuffled order, each pair embeds 9 short texts, then
generates 64 tokens from a 32-token prompt, then rests 0.1 s (as between a server's requests). Prints the medians.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()

    import tinylm_onnx.runtime as runtime

    import tinylm
    from tinylm.bench import EMBED_SENTENCES, prompt_ids

    tinylm_options = runtime.session_options
    spinning = {"on": False}

    def options(*a, **k):  # type: ignore[no-untyped-def]
        so = tinylm_options(*a, **k)
        if spinning["on"]:
            so.add_session_config_entry("session.force_spinning_stop", "0")  # ONNX Runtime's default
        return so

    runtime.session_options = options  # type: ignore[assignment]
    pairs = {}
    for name in ("spin-wait (ONNX Runtime's default)", "block when a run ends (tinylm)"):
        spinning["on"] = name.startswith("spin")
        generator = tinylm.load(args.model, backend="onnx", precision=args.precision, compiled_cache=False)
        pairs[name] = (generator, tinylm.load("support-embedder", backend="onnx", compiled_cache=False))
    runtime.session_options = tinylm_options  # type: ignore[assignment]
    prompt = prompt_ids(next(iter(pairs.values()))[0].spec.vocab_size, 32)
    texts = EMBED_SENTENCES[:9]
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in pairs}
    for r in range(args.rounds + 1):
        for name in random.Random(r).sample(list(pairs), len(pairs)):
            generator, embedder = pairs[name]
            began = time.perf_counter()
            embedder.embed(texts)
            embed_ms = (time.perf_counter() - began) * 1000
            usage = generator.generate(prompt, max_new_tokens=64, temperature=0, ignore_eos=True).usage
            time.sleep(0.1)
            if r:  # round 0 warms up
                results[name].append((embed_ms, usage.time_to_first_token * 1000, usage.tokens_per_second))
    print(f"{args.precision}, medians of {args.rounds} rounds\n")
    print("| threads between runs | embed 9 texts (ms) | then first token (ms) | decode tok/s |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        embed, first, decode = (statistics.median(x[i] for x in runs) for i in range(3))
        print(f"| {name} | {embed:.1f} | {first:.1f} | {decode:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
