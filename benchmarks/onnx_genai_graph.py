"""tinylm-onnx's graph against onnxruntime-genai's, one decode step at a time in one process: the same onnxruntime,
session options and threads, so only the graphs differ (not the processes, the loops or the machine's drift).

    python benchmarks/onnx_genai_graph.py MODEL GENAI_FOLDER [--precision int8] [--rounds 30]

MODEL is a decoder folder (e.g. the SmolLM2-135M-shaped random model), opened with `tinylm.load(MODEL,
backend="onnx", precision=P)`; GENAI_FOLDER is onnxruntime-genai's model builder output for the same folder and
precision, made in a venv that has onnxruntime-genai (`python benchmarks/peers.py --setup` makes one):

    /tmp/genai-venv/bin/python -m onnxruntime_genai.models.builder -i MODEL -o GENAI_FOLDER -p int8 -e cpu

Its graph is opened here with tinylm's session options for a decoder and run as onnxruntime-genai runs it: IO
binding, each layer's key and value buffers bound as both past and present (past_present_share_buffer), the
attention mask bound anew each step. Each round, in alternating order, each graph decodes 160 positions from an
empty cache, one greedy token at a time; prints each graph's decode tokens/s over all the timed steps (positions
1-159 of every round after a warm-up one) and its median step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

POSITIONS = 160  # a 32-token prompt and 128 new tokens


class GenaiGraph:
    """The builder's graph as onnxruntime-genai runs it: `step(token, position)` -> the next greedy token."""

    def __init__(self, folder: Path, threads: int) -> None:
        import onnxruntime as ort
        from tinylm_onnx.runtime import session_options

        config = json.loads((folder / "genai_config.json").read_text())["model"]
        dec, vocab = config["decoder"], config["vocab_size"]
        options = session_options(threads, spin=True)
        self.session = ort.InferenceSession(str(folder / dec["filename"]), options, providers=["CPUExecutionProvider"])
        self.io = self.session.io_binding()
        shape = [1, dec["num_key_value_heads"], POSITIONS, dec["head_size"]]  # (B, nkv, max, hd)
        self.cache = [np.zeros(shape, np.float32) for _ in range(2 * dec["num_hidden_layers"])]
        for i in range(dec["num_hidden_layers"]):
            for kind, buf in (("key", self.cache[2 * i]), ("value", self.cache[2 * i + 1])):
                past, present = dec["inputs"][f"past_{kind}_names"] % i, dec["outputs"][f"present_{kind}_names"] % i
                self.io.bind_input(past, "cpu", 0, np.float32, shape, buf.ctypes.data)
                self.io.bind_output(present, "cpu", 0, np.float32, shape, buf.ctypes.data)
        self.logits = np.zeros((1, 1, vocab), np.float32)
        self.ids = np.zeros((1, 1), np.int64)
        self.mask = np.ones((1, POSITIONS), np.int64)
        self.mask_name = dec["inputs"]["attention_mask"]
        self.io.bind_output(dec["outputs"]["logits"], "cpu", 0, np.float32, [1, 1, vocab], self.logits.ctypes.data)
        self.io.bind_input(dec["inputs"]["input_ids"], "cpu", 0, np.int64, [1, 1], self.ids.ctypes.data)

    def step(self, token: int, position: int) -> int:
        self.ids[0, 0] = token
        self.io.bind_input(self.mask_name, "cpu", 0, np.int64, [1, position + 1], self.mask.ctypes.data)
        self.session.run_with_iobinding(self.io)
        return int(self.logits[0, 0].argmax())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("genai_folder", type=Path)
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    os.environ["TINYLM_NUM_THREADS"] = str(args.threads)
    import tinylm

    model = tinylm.load(args.model, backend="onnx", precision=args.precision)
    session = model._live()  # the backend's session: the generation loop's own fast path, without the loop
    genai = GenaiGraph(args.genai_folder, args.threads)

    def ours() -> list[float]:
        session.reset()
        token = int(session.forward(np.array([[7]], np.int64))[0].argmax())
        times = []
        for _ in range(1, POSITIONS):
            began = time.perf_counter()
            token = int(session.step(token).argmax())
            times.append(time.perf_counter() - began)
        return times

    def theirs() -> list[float]:
        token = genai.step(7, 0)
        times = []
        for position in range(1, POSITIONS):
            began = time.perf_counter()
            token = genai.step(token, position)
            times.append(time.perf_counter() - began)
        return times

    graphs = {"tinylm-onnx": ours, "onnxruntime-genai's builder": theirs}
    steps: dict[str, list[float]] = {name: [] for name in graphs}
    for r in range(args.rounds + 1):
        for name in list(graphs)[:: 1 if r % 2 else -1]:
            times = graphs[name]()
            if r:  # round 0 warms up
                steps[name].extend(times)
            time.sleep(0.05)
    print(f"{args.precision}, {args.threads} threads, {args.rounds} rounds of {POSITIONS - 1} timed steps\n")
    print("| graph | decode tok/s | median step (ms) |")
    print("|---|---:|---:|")
    for name, times in steps.items():
        print(f"| {name} | {len(times) / sum(times):.1f} | {statistics.median(times) * 1000:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
