"""Speculative decoding on the bundled assistant: decode tokens/s with and without it, and the acceptance rate.

    python -m benchmarks.speculative [--backends onnx openvino torch] [--rounds 2] [--max-new-tokens 128]

Workloads, on the hand-written customer messages of recipes/eval (never used for training), sent as the examples
send them (greedy, so every mode gives the same tokens):
    reply    the reply to a customer message, routed by intent as examples/support_bot.py does
    triage   the triage JSON of a message under its schema constraint (examples/triage_email.py)
    summary  a one-sentence summary of the message
    story    a free story on a subject picked from the message (nothing to copy: lookup must not slow decoding)

Modes: `off` (plain decoding), `prompt` (`speculative="lookup"` with an empty memory: prompt lookup over the
prompt and the text so far) and `lookup` (`speculative="lookup"` as a model runs it after answering other
messages: the same, then the model's memory of its earlier outputs, `NgramMemory`). Both keep to the pace they
measure (`Pace`: what a pass costs here, how often proposals are kept), one pace per mode across the messages,
as a loaded Model keeps one. The memory is learnt from the outputs for the first half of the messages (the
warm-up half) and frozen; the other half is measured, each message with a fresh copy of it, so no measured output
is ever in the memory it is measured with.
For each message the modes run in rotating order; the table gives the median decode tokens/s
(`Usage.tokens_per_second`) of each mode over the measured messages and rounds, its ratio to plain decoding and
the acceptance rate (`Usage.speculative_accepted / speculative_proposed`). Public API, plus the classes of
`tinylm.speculative` and the model's lookup memory and pace (set per mode, see `speculative`).

`--peers` also runs openvino-genai's prompt lookup (`LLMPipeline(prompt_lookup=True)`) and llama.cpp's
(llama-cpp-python's `LlamaPromptLookupDecoding`) on the same model and the same prompt ids, each beside its own
plain decoding, in the peers' interpreters (`python -m benchmarks.peers --setup` makes them): f32 execution, the
same k (4) and n-gram size (3) as tinylm's defaults, greedy until the end id. Not for triage, whose schema
constraint the peers' lookup paths do not take.

`--tune` instead replays prompt lookup's choices (n-gram sizes, most tokens k) over each workload's greedy output,
without timing anything: tokens decoded per forward pass and tokens proposed per pass.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import json
import os
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import tinylm
from tinylm.speculative import NgramMemory, Pace, PromptLookup, Speculator

REPO = Path(__file__).resolve().parent.parent


def _example(name: str) -> ModuleType:
    """An example script as a module, loaded from its file (examples/ is not a package; sys.path is left alone)."""
    spec = importlib.util.spec_from_file_location(f"tinylm_example_{name}", REPO / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


routing, triage_email = _example("routing"), _example("triage_email")  # the router and triage a user runs
IntentRouter = routing.IntentRouter
TRIAGE_SYSTEM, schema_for = triage_email.TRIAGE_SYSTEM, triage_email.schema_for

MESSAGES = [json.loads(line)["text"] for line in (REPO / "recipes/eval/customer_messages.jsonl").open()]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and a fox."}]
SUBJECTS = ("a lighthouse keeper", "a fox", "a baker", "a lost kite", "two sisters", "an old clock", "a river",
            "a robot gardener", "a snowstorm", "a violin teacher")  # fmt: skip
MODES = ("off", "prompt", "lookup")


class Workload:
    """One kind of request: its chat messages and generation options for a customer message."""

    def __init__(self, name: str, router: Any) -> None:
        self.name, self.router = name, router

    def chat(self, message: str) -> tuple[list[dict[str, str]], dict]:
        if self.name == "reply":
            assert self.router is not None
            return self.router.messages([{"role": "user", "content": message}]), {}
        if self.name == "triage":
            system = {"role": "system", "content": TRIAGE_SYSTEM}
            return [system, {"role": "user", "content": message}], {"response_format": schema_for(message)}
        if self.name == "summary":
            return [{"role": "user", "content": f"Summarise this message in one sentence:\n{message}"}], {}
        n = sum(map(ord, message))  # a different story for each message: nothing an earlier output gives away
        subject = f"{SUBJECTS[n % 10]} and {SUBJECTS[n // 10 % 10]}"
        return [{"role": "user", "content": f"Tell me a long story about {subject}."}], {}


def speculative(model: tinylm.Model, mode: str, memory: NgramMemory, paces: dict[str, Pace]) -> str | None:
    """The `speculative=` of `mode`, with the model's lookup state set for it: `speculative="lookup"` as a user runs
    it, its memory a fresh copy of `memory` ("lookup") or empty ("prompt"), and one `Pace` per mode kept across
    the messages, as a loaded Model keeps its own (the only private attributes this benchmark touches)."""
    if mode == "off":
        return None
    model._lookup_memory = copy.deepcopy(memory) if mode == "lookup" else NgramMemory()
    model._lookup_pace = paces[mode]
    return "lookup"


def warm_memory(model: tinylm.Model, work: Workload, messages: list[str], max_new_tokens: int) -> NgramMemory:
    """The memory `speculative="lookup"` would hold after answering `messages` (learnt from plain greedy outputs:
    the same tokens)."""
    memory = NgramMemory()
    lookup = PromptLookup(memory=memory)
    for message in messages:
        chat, options = work.chat(message)
        ids = model.chat_ids(chat)
        done = model.chat(chat, max_new_tokens=max_new_tokens, **options)
        lookup.learn(np.asarray(ids + list(done.token_ids), np.int64), len(ids))
    return memory


def measure(model: tinylm.Model, work: Workload, rounds: int, max_new_tokens: int) -> dict[str, float]:
    half = len(MESSAGES) // 2
    measured = MESSAGES[half:]
    memory = warm_memory(model, work, MESSAGES[:half], max_new_tokens)
    speeds: dict[str, list[float]] = {mode: [] for mode in MODES}
    counts = {mode: [0, 0] for mode in MODES}  # proposed, accepted
    paces = {mode: Pace() for mode in MODES}
    turn = 0
    for _ in range(rounds):
        for message in measured:
            chat, options = work.chat(message)
            outputs = {}
            order = MODES[turn % 3 :] + MODES[: turn % 3]  # rotating: no mode always first or last
            turn += 1
            for mode in order:
                chosen = speculative(model, mode, memory, paces)
                done = model.chat(chat, max_new_tokens=max_new_tokens, speculative=chosen, **options)
                if done.usage.completion_tokens > 1:
                    speeds[mode].append(done.usage.tokens_per_second)
                outputs[mode] = done.token_ids
                counts[mode][0] += done.usage.speculative_proposed
                counts[mode][1] += done.usage.speculative_accepted
            if len(set(outputs.values())) > 1:
                print(f"  note: {work.name}: tokens differ (a near-tie in the verifying pass)", file=sys.stderr)
    off = statistics.median(speeds["off"])
    out = {"off": off, "memory": len(memory)}
    for mode in MODES[1:]:
        out[mode] = statistics.median(speeds[mode])
        out[f"{mode}_ratio"] = out[mode] / off
        out[f"{mode}_accepted"] = counts[mode][1] / max(counts[mode][0], 1)
    return out


def replay(history: np.ndarray, start: int, lookup: PromptLookup, most: int) -> tuple[int, int]:
    """(forward passes, tokens proposed) to decode history[start:] greedily with prompt lookup (the first token comes
    from the prefill), proposing as `Speculator` does (k adapts within [1, most])."""
    speculator = Speculator(lookup, tokens=most)
    produced, passes = start + 1, 0
    while produced < history.shape[0]:
        proposal = speculator.propose(history[:produced], history.shape[0] - produced - 1)
        passes += 1
        if proposal is None:
            produced += 1
            continue
        k = proposal.tokens.shape[0]
        right = history[produced : produced + k] == proposal.tokens
        kept = int(np.argmin(right)) if not right.all() else k
        speculator.record(k, kept)
        produced += kept + 1
    return passes, speculator.proposed


def tune(model: tinylm.Model, workloads: list[Workload], max_new_tokens: int) -> None:
    runs = []
    for work in workloads:
        for message in MESSAGES[: 1 if work.name == "story" else 10]:
            chat, options = work.chat(message)
            ids = model.chat_ids(chat)
            done = model.chat(chat, max_new_tokens=max_new_tokens, **options)
            runs.append((work.name, np.asarray(ids + list(done.token_ids), np.int64), len(ids)))
    print("| workload | n (max..min) | k | tokens per pass | proposed per pass |")
    print("|---|---|---|---|---|")
    for workload in [w.name for w in workloads]:
        for (high, low), most in itertools.product([(3, 1), (3, 2), (4, 2), (2, 2)], [4, 6, 8]):
            passes = proposed = tokens = 0
            for name, history, start in runs:
                if name == workload:
                    p, q = replay(history, start, PromptLookup(max_ngram=high, min_ngram=low), most)
                    passes, proposed, tokens = passes + p, proposed + q, tokens + history.shape[0] - start - 1
            print(f"| {workload} | {high}..{low} | {most} | {tokens / passes:.2f} | {proposed / passes:.2f} |")


def peers_side_by_side(model: tinylm.Model, workloads: list[Workload], max_new_tokens: int) -> None:
    """openvino-genai's and llama.cpp's prompt lookup on this model's measured prompts (see the module doc)."""
    import tempfile

    from tinylm.source import ModelFolder
    from tinylm.speculative import DEFAULT_TOKENS

    from .peers import INTERPRETERS, LLAMA_CPP_SRC, _env, _spawn

    half = len(MESSAGES) // 2
    stop_ids = list(ModelFolder(model.path).stop_token_ids())
    peers = {"openvino-genai": ("ovgenai", "fp32"), "llama-cpp-python": ("llama", "f32")}  # the dist's name: its key
    print("\n| runtime | workload | plain tok/s | prompt lookup tok/s | ratio | same tokens as tinylm |")
    print("|---|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="tinylm-spec-peers-") as tmp:
        for peer, (key, precision) in peers.items():
            interp = INTERPRETERS[key]
            python = os.environ.get(interp.env, interp.default)
            job = {
                "peer": peer, "dist": peer, "folder": str(model.path), "out": str(Path(tmp) / peer),
                "peer_precision": precision, "llama_cpp_src": os.environ.get(LLAMA_CPP_SRC[0], LLAMA_CPP_SRC[1]),
            }  # fmt: skip
            try:
                _spawn(python, "convert", job, _env())
            except RuntimeError as e:
                print(f"| {peer} | – | not measured: {e} |||||")
                continue
            for work in workloads:
                if work.name == "triage":
                    continue
                prompts = [model.chat_ids(work.chat(message)[0]) for message in MESSAGES[half:]]
                plain = [model.chat(work.chat(m)[0], max_new_tokens=max_new_tokens).token_ids for m in MESSAGES[half:]]
                run = {**job, "model": job["out"], "prompts": prompts, "stop_ids": stop_ids, "k": DEFAULT_TOKENS}
                run.update(ngram=3, max_new_tokens=max_new_tokens, n_ctx=model.context_length)
                try:
                    _, line = _spawn(python, "lookup", run, _env())
                except RuntimeError as e:
                    print(f"| {peer} | {work.name} | not measured: {e} ||||")
                    continue
                got = json.loads(line)
                same = sum(list(a) == list(b) for a, b in zip(got["lookup_ids"], plain))
                off, on = statistics.median(got["plain"]), statistics.median(got["lookup"])
                print(
                    f"| {peer} {got.get('version', '')} | {work.name} | {off:.1f} | {on:.1f} | {on / off:.2f}x | "
                    f"{same} of {len(plain)} |",
                    flush=True,
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="support-assistant")
    parser.add_argument("--backends", nargs="+", default=["onnx", "openvino", "torch"])
    parser.add_argument("--precision", default=None, help="e.g. int8 (default: each backend's)")
    names = ["reply", "triage", "summary", "story"]
    parser.add_argument("--workloads", nargs="+", default=names, choices=names)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--tune", action="store_true", help="replay lookup settings on greedy outputs (no timing)")
    parser.add_argument("--peers", action="store_true", help="also openvino-genai's and llama.cpp's prompt lookup")
    args = parser.parse_args(argv)
    router = IntentRouter.load() if "reply" in args.workloads else None
    workloads = [Workload(name, router) for name in args.workloads]
    if args.tune:
        with tinylm.load(args.model, backend=args.backends[0], precision=args.precision) as model:
            tune(model, workloads, args.max_new_tokens)
        return 0
    print("| backend | workload | plain tok/s | prompt lookup tok/s (ratio, accepted) | lookup with memory tok/s "
          "(ratio, accepted) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for backend in args.backends:
        with tinylm.load(args.model, backend=backend, precision=args.precision) as model:
            model.chat(STORY, max_new_tokens=8)  # warm up
            for work in workloads:
                m = measure(model, work, args.rounds, args.max_new_tokens)
                print(
                    f"| {backend} {model.precision} | {work.name} | {m['off']:.1f} | {m['prompt']:.1f} "
                    f"({m['prompt_ratio']:.2f}x, {m['prompt_accepted']:.0%}) | {m['lookup']:.1f} "
                    f"({m['lookup_ratio']:.2f}x, {m['lookup_accepted']:.0%}) |",
                    flush=True,
                )
            if args.peers and backend == args.backends[0]:
                peers_side_by_side(model, workloads, args.max_new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
