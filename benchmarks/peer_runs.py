"""What runs inside a peer's own interpreter (`python -m benchmarks.peer_runs --child/--convert JOB`, JOB as JSON,
started by benchmarks/peers.py): each peer's measuring loop and converter, and the model the suite measures.
Imports no tinylm at module level: the peers' venvs do not have it.

Every measuring loop does the same thing: load, then `runs` timed greedy generations of `new_tokens` tokens from
the same prompt (the ids `tinylm bench` uses, passed in the job) after a warm-up; it returns the load time, the
median time to first token and decode rate, their min-max, and the process's peak RSS.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["THREADS", "SMOLLM2_135M", "build_smollm2", "peak_rss_mb", "CHILDREN", "CONVERTERS", "LOOKUPS", "main"]

THREADS = 2
EMBED_SECONDS = 2.0  # how long each embedding batch size is timed
#: SmolLM2-135M's exact architecture (its config.json), with random weights: the suite's main decoder
SMOLLM2_135M = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 2,
}


def build_smollm2(folder: Path) -> None:
    """The SmolLM2-135M-shaped random model (seed 0) with the test tokenizer (ids beyond it decode to "")."""
    import torch
    import transformers

    from tinylm.testing.models import write_decoder_tokenizer

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**SMOLLM2_135M))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a spread that keeps logits apart (the default init makes near-ties)
        for _, p in model.named_parameters():
            spread, mean = (0.05, 0.0) if p.dim() >= 2 else (0.1, 1.0)
            p.copy_(torch.randn(p.shape, generator=gen) * spread + mean)
    model.save_pretrained(folder, safe_serialization=True)
    write_decoder_tokenizer(folder, 8192)


def peak_rss_mb() -> float:
    """This process's peak resident memory, as `tinylm bench` measures its own (which this interpreter may not
    have): VmHWM, which starts afresh at exec, else ru_maxrss (which may carry over the parent's peak)."""
    status = Path("/proc/self/status")
    found = re.search(r"^VmHWM:\s*(\d+)", status.read_text(), re.MULTILINE) if status.is_file() else None
    if found is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(found.group(1)) / 1024


def _figures(load: float, ttfts: list[float], rates: list[float]) -> dict[str, Any]:
    """The figures of the timed runs (the warm-up, first, left out)."""
    ttfts, rates = ttfts[1:], rates[1:]
    return {
        "load_s": load,
        "ttft_s": statistics.median(ttfts),
        "tok_s": statistics.median(rates),
        "tok_s_min": min(rates),
        "tok_s_max": max(rates),
        "rss_mb": peak_rss_mb(),
    }


def _rate(start: float, stamps: list[float], new_tokens: int) -> tuple[float, float]:
    """(time to first token, decode tokens/s after it) from the time each token arrived."""
    if len(stamps) != new_tokens:
        raise RuntimeError(f"generated {len(stamps)} tokens, not {new_tokens}")
    return stamps[0] - start, (new_tokens - 1) / (stamps[-1] - stamps[0])


def _hf_generate(model: Any, job: dict[str, Any], load: float) -> dict[str, Any]:
    """transformers' `generate` (transformers and optimum), timed by a streamer that stamps each token."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: Any) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    pad = getattr(model.config, "pad_token_id", None)
    pad = model.config.eos_token_id if pad is None else pad
    ids, new = torch.tensor([job["prompt"]]), job["new_tokens"]
    ttfts, rates = [], []
    for _ in range(job["runs"] + 1):
        clock, start = Clock(), time.perf_counter()
        with torch.inference_mode():
            model.generate(
                ids, do_sample=False, max_new_tokens=new, min_new_tokens=new, streamer=clock,
                pad_token_id=int(pad[0] if isinstance(pad, list) else pad or 0),
            )  # fmt: skip
        first, rate = _rate(start, clock.times[1:], new)  # times[0]: the prompt echoed to the streamer
        ttfts.append(first)
        rates.append(rate)
    return _figures(load, ttfts, rates)


# measuring loops: job -> figures --------------------------------------------------------------------------


def run_transformers(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(THREADS)
    import transformers

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[job["precision"]]  # no CPU int8 generate
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(job["model"], dtype=dtype).eval()
    return _hf_generate(model, job, time.perf_counter() - t0)


def run_optimum(job: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    torch.set_num_threads(THREADS)
    name = "model_quantized.onnx" if job["peer_precision"] == "int8" else "model.onnx"
    model = ORTModelForCausalLM.from_pretrained(job["model"], file_name=name, session_options=so, use_cache=True)
    return _hf_generate(model, job, time.perf_counter() - t0)


def run_ort_genai(job: dict[str, Any]) -> dict[str, Any]:
    prompt, new = job["prompt"], job["new_tokens"]
    t0 = time.perf_counter()
    import onnxruntime_genai as og

    model = og.Model(job["model"])
    load = time.perf_counter() - t0
    ttfts, rates = [], []
    for _ in range(job["runs"] + 1):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + new, min_length=len(prompt) + new)
        start = time.perf_counter()
        gen = og.Generator(model, params)
        gen.append_tokens(prompt)
        stamps = []
        while not gen.is_done():
            gen.generate_next_token()
            stamps.append(time.perf_counter())
        first, rate = _rate(start, stamps, new)
        ttfts.append(first)
        rates.append(rate)
    return _figures(load, ttfts, rates)


# openvino-genai runs with its CPU defaults (bf16 execution on a CPU with AVX512-BF16), except where the row's
# precision names the execution precision
OV_PROPERTIES = {
    "fp32": {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"},
    "bf16": {"INFERENCE_PRECISION_HINT": "bf16"},
}


def run_ov_genai(job: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    import numpy as np
    import openvino as ov
    import openvino_genai as og

    props = {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    props.update(OV_PROPERTIES.get(job["precision"], {}))
    # LLMPipeline turns its prefix cache on: with the same prompt every run, the timed runs would prefill one
    # token. Every runtime here prefills the whole prompt.
    scheduler = og.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    pipe = og.LLMPipeline(job["model"], "CPU", scheduler_config=scheduler, **props)
    load = time.perf_counter() - t0
    config = og.GenerationConfig()
    config.max_new_tokens = config.min_new_tokens = job["new_tokens"]
    config.ignore_eos, config.do_sample = True, False
    ids = np.asarray([job["prompt"]], np.int64)
    inputs = og.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))

    class Clock(og.StreamerBase):
        """Stamps every token id (a text callback would miss ids that decode to "")."""

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def write(self, token: int | list[int]) -> Any:
            self.times += [time.perf_counter()] * (len(token) if isinstance(token, list) else 1)
            return og.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    ttfts, rates = [], []
    for _ in range(job["runs"] + 1):
        clock, start = Clock(), time.perf_counter()
        pipe.generate(inputs, config, streamer=clock)
        first, rate = _rate(start, clock.times, job["new_tokens"])
        ttfts.append(first)
        rates.append(rate)
    return _figures(load, ttfts, rates)


def run_llama(job: dict[str, Any]) -> dict[str, Any]:
    """llama-cpp-python on a GGUF."""
    prompt, new = job["prompt"], job["new_tokens"]
    t0 = time.perf_counter()
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(Path(job["model"]) / "model.gguf"), n_ctx=len(prompt) + new + 16,
        n_threads=THREADS, n_threads_batch=THREADS, verbose=False,
    )  # fmt: skip
    load = time.perf_counter() - t0
    ttfts, rates = [], []
    for _ in range(job["runs"] + 1):
        llm.reset()  # forget the previous run's tokens, or generate() reuses the prompt's cache
        stamps: list[float] = []
        start = time.perf_counter()
        for _token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True):
            stamps.append(time.perf_counter())
            if len(stamps) == new:
                break
        first, rate = _rate(start, stamps, new)
        ttfts.append(first)
        rates.append(rate)
    return _figures(load, ttfts, rates)


def run_sentence_transformers(job: dict[str, Any]) -> dict[str, Any]:
    """sentence-transformers encode: sentences/s at batch 1 and 32, each timed for EMBED_SECONDS."""
    import torch

    torch.set_num_threads(THREADS)
    from sentence_transformers import SentenceTransformer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[job["precision"]]
    t0 = time.perf_counter()
    model = SentenceTransformer(job["model"], device="cpu", model_kwargs={"dtype": dtype})
    out: dict[str, Any] = {"load_s": time.perf_counter() - t0}
    for batch, key in ((1, "sentences_per_s_1"), (32, "sentences_per_s_32")):
        model.encode(job["sentences"][:batch], batch_size=batch)  # warm-up
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < EMBED_SECONDS:
            model.encode(job["sentences"][:batch], batch_size=batch)
            done += batch
        out[key] = done / (time.perf_counter() - start)
    return {**out, "rss_mb": peak_rss_mb()}


# conversions: job -> files under job["out"] -------------------------------------------------------------


#: config.json's model_type -> the class transformers saves in "architectures", which llama.cpp's converter reads
#: (the bundled models' configs name only the model_type)
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def _with_architectures(folder: str, out: Path) -> str:
    """`folder`, or where it lacks "architectures", a folder beside `out` of links to its files with them added."""
    config = json.loads((Path(folder) / "config.json").read_text())
    if config.get("architectures") or config.get("model_type") not in ARCHITECTURES:
        return folder
    named = out.parent / (out.name + ".source")
    named.mkdir(parents=True, exist_ok=True)
    for item in Path(folder).iterdir():
        if item.is_file() and item.name != "config.json" and not (named / item.name).exists():
            (named / item.name).symlink_to(item.resolve())
    config["architectures"] = [ARCHITECTURES[config["model_type"]]]
    (named / "config.json").write_text(json.dumps(config, indent=2))
    return str(named)


def convert_optimum(job: dict[str, Any]) -> None:
    from optimum.onnxruntime import ORTModelForCausalLM, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    out = job["out"]
    ORTModelForCausalLM.from_pretrained(job["folder"], export=True, use_cache=True).save_pretrained(out)
    if job["peer_precision"] == "int8":
        config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
        ORTQuantizer.from_pretrained(out, file_name="model.onnx").quantize(save_dir=out, quantization_config=config)


def convert_ort_genai(job: dict[str, Any]) -> None:
    out = job["out"]
    folder = _with_architectures(job["folder"], Path(out))  # its builder reads the class name from the config
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", folder, "-o", out]
    cmd += ["-p", job["peer_precision"], "-e", "cpu", "-c", out + ".cache"]
    subprocess.run(cmd, check=True, capture_output=True)
    config_path = Path(out) / "genai_config.json"
    config = json.loads(config_path.read_text())
    opts = config["model"]["decoder"].setdefault("session_options", {})
    opts.update({"intra_op_num_threads": THREADS, "inter_op_num_threads": 1})
    config_path.write_text(json.dumps(config, indent=2))


# precision -> optimum-cli --weight-format arguments (576-wide layers reject NNCF's default int4 group of 128)
OV_EXPORT = {"fp32": ["fp32"], "fp16": ["fp16"], "int8": ["int8"], "int4": ["int4", "--group-size", "64"]}


def convert_ov_genai(job: dict[str, Any]) -> None:
    """optimum-intel's OpenVINO export (`optimum-cli export openvino`)."""
    cmd = [str(Path(sys.executable).parent / "optimum-cli"), "export", "openvino", "--model", job["folder"]]
    cmd += ["--task", "text-generation-with-past", "--weight-format", *OV_EXPORT[job["peer_precision"]], job["out"]]
    subprocess.run(cmd, check=True, capture_output=True)


def convert_llama(job: dict[str, Any]) -> None:
    """llama.cpp's own convert_hf_to_gguf.py (from the llama-cpp-python sdist's vendored llama.cpp); q4_0 is
    then made with llama.cpp's quantizer through llama-cpp-python."""
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    quantize = job["peer_precision"] == "q4_0"
    gguf = out / ("model-f16.gguf" if quantize else "model.gguf")
    script = Path(job["llama_cpp_src"]) / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise SystemExit(f"no {script} (run `python -m benchmarks.peers --setup`, or pass --llama-cpp-src)")
    folder = _with_architectures(job["folder"], out)
    _gguf_convert(script, folder, "f16" if quantize else job["peer_precision"], gguf)
    if quantize:
        _quantize_q4_0(gguf, out / "model.gguf")
        gguf.unlink()


def _gguf_convert(script: Path, folder: str, outtype: str, out: Path) -> None:
    """Run llama.cpp's converter as it is (its imports expect its own folder on the path), with one addition: a
    tokenizer whose pre-tokenizer llama.cpp does not know by hash (ours are trained here) is declared "default".
    The pre-tokenizer only turns text into ids; the benchmark feeds ids."""
    sys.path.insert(0, str(script.parent))  # llama.cpp's source tree, not a benchmark
    sys.argv = [str(script), folder, "--outtype", outtype, "--outfile", str(out)]
    import convert_hf_to_gguf
    from conversion.base import TextModel

    known = TextModel.get_vocab_base_pre

    def pre_tokenizer(self: Any, tokenizer: Any) -> str:
        try:
            return str(known(self, tokenizer))
        except NotImplementedError:
            return "default"

    TextModel.get_vocab_base_pre = pre_tokenizer
    convert_hf_to_gguf.main()


def _quantize_q4_0(src: Path, dst: Path) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, THREADS
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize {src} -> q4_0 failed")


# prompt lookup side by side (benchmarks/speculative.py --peers) ----------------------------------------------


def _lookup_runs(job: dict[str, Any], generate: Any) -> dict[str, Any]:
    """For each prompt in job["prompts"], greedy decoding plain and with prompt lookup, in alternating order (a
    warm-up of each first): `generate(mode, prompt)` returns the token ids and the time each arrived. Decode
    tokens/s after the first token, and the ids (to check both modes give the same tokens)."""
    out: dict[str, Any] = {"plain": [], "lookup": [], "plain_ids": [], "lookup_ids": []}
    for mode in ("plain", "lookup"):
        generate(mode, job["prompts"][0])
    for i, prompt in enumerate(job["prompts"]):
        for mode in ("plain", "lookup") if i % 2 == 0 else ("lookup", "plain"):
            ids, stamps = generate(mode, prompt)
            if len(stamps) > 1:
                out[mode].append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            out[f"{mode}_ids"].append(ids)
    return out


def lookup_ov_genai(job: dict[str, Any]) -> dict[str, Any]:
    """openvino-genai's LLMPipeline with prompt_lookup=True (num_assistant_tokens, max_ngram_size) against one
    without, f32 execution (as tinylm's fp32 rows), greedy until an end id or max_new_tokens."""
    import numpy as np
    import openvino as ov
    import openvino_genai as og

    props = {"INFERENCE_NUM_THREADS": THREADS, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    props.update(OV_PROPERTIES["fp32"])

    def scheduler() -> Any:
        config = og.SchedulerConfig()
        config.enable_prefix_caching = False  # every run prefills its whole prompt, as tinylm's do
        return config

    pipes = {
        "plain": og.LLMPipeline(job["model"], "CPU", scheduler_config=scheduler(), **props),
        "lookup": og.LLMPipeline(job["model"], "CPU", scheduler_config=scheduler(), prompt_lookup=True, **props),
    }

    class Clock(og.StreamerBase):
        def __init__(self) -> None:
            super().__init__()
            self.ids: list[int] = []
            self.times: list[float] = []

        def write(self, token: int | list[int]) -> Any:
            tokens = token if isinstance(token, list) else [token]
            self.ids += tokens
            self.times += [time.perf_counter()] * len(tokens)
            return og.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    def generate(mode: str, prompt: list[int]) -> tuple[list[int], list[float]]:
        config = og.GenerationConfig()
        config.max_new_tokens, config.do_sample = job["max_new_tokens"], False
        config.eos_token_id = job["stop_ids"][0]
        config.stop_token_ids = set(job["stop_ids"])
        if mode == "lookup":
            config.num_assistant_tokens, config.max_ngram_size = job["k"], job["ngram"]
        ids = np.asarray([prompt], np.int64)
        clock = Clock()
        pipes[mode].generate(og.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids))), config, clock)
        while clock.ids and clock.ids[-1] in job["stop_ids"]:  # its streamer passes the end id on; tinylm does not
            clock.ids.pop()
            clock.times.pop()
        return clock.ids, clock.times

    return _lookup_runs(job, generate)


def lookup_llama(job: dict[str, Any]) -> dict[str, Any]:
    """llama-cpp-python with `LlamaPromptLookupDecoding` (num_pred_tokens, max_ngram_size) as its draft model
    against one without, on an f32 GGUF, greedy until an end id or max_new_tokens."""
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    path = str(Path(job["model"]) / "model.gguf")
    common = {"n_ctx": job["n_ctx"], "n_threads": THREADS, "n_threads_batch": THREADS, "verbose": False}
    draft = LlamaPromptLookupDecoding(num_pred_tokens=job["k"], max_ngram_size=job["ngram"])
    llms = {"plain": Llama(model_path=path, **common), "lookup": Llama(model_path=path, draft_model=draft, **common)}

    def generate(mode: str, prompt: list[int]) -> tuple[list[int], list[float]]:
        llm = llms[mode]
        llm.reset()
        ids: list[int] = []
        stamps: list[float] = []
        for token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True):
            if token in job["stop_ids"]:
                break
            ids.append(int(token))
            stamps.append(time.perf_counter())
            if len(ids) == job["max_new_tokens"]:
                break
        return ids, stamps

    return _lookup_runs(job, generate)


LOOKUPS = {"openvino-genai": lookup_ov_genai, "llama-cpp-python": lookup_llama}

CHILDREN = {
    "transformers": run_transformers,
    "optimum": run_optimum,
    "onnxruntime-genai": run_ort_genai,
    "openvino-genai": run_ov_genai,
    "llama-cpp-python": run_llama,
    "sentence-transformers": run_sentence_transformers,
}
CONVERTERS = {
    "optimum": convert_optimum,
    "onnxruntime-genai": convert_ort_genai,
    "openvino-genai": convert_ov_genai,
    "llama-cpp-python": convert_llama,
}


def main(argv: list[str] | None = None) -> int:
    """`--child JOB`: measure, print the figures (with the peer's version) as one JSON line. `--lookup JOB`: the
    same for greedy decoding with and without prompt lookup (`LOOKUPS`). `--convert JOB`: write the peer's
    converted model to JOB["out"]; a converter's failing command is reported by its last line."""
    mode, job = (argv or sys.argv[1:])[:2]
    job = json.loads(job)
    if mode == "--convert":
        try:
            CONVERTERS[job["peer"]](job)
        except subprocess.CalledProcessError as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
            tail = [ln.strip() for ln in err.splitlines() if ln.strip()] or [f"exit {e.returncode}"]
            raise SystemExit(f"{Path(str(e.cmd[0])).name}: {tail[-1]}") from None
        return 0
    figures = (LOOKUPS if mode == "--lookup" else CHILDREN)[job["peer"]](job)
    try:
        figures["version"] = importlib.metadata.version(job["dist"])
    except importlib.metadata.PackageNotFoundError:
        figures["version"] = "?"
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
