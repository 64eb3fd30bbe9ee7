"""tinylm-openvino's own int8/int4 weight compression against NNCF's (`nncf.compress_weights`) on the same fp32
IR: greedy agreement with fp32, perplexity, decode speed, compile time, file size.

    python benchmarks/openvino_nncf.py                    # prints a markdown table
    python benchmarks/openvino_nncf.py --write-docs       # also writes docs/benchmarks-openvino-nncf.md

tinylm compresses weights itself (numpy, tinylm_openvino.compress) so that converting needs neither NNCF nor
torch; the OpenVINO issue asks to measure both and pick. Both start from the fp32 IR tinylm builds:
tinylm's int8/int4 artifacts, and NNCF 3.x applied to that IR (INT8_ASYM per channel; INT4_ASYM with group 64,
ratio 1.0 and its default INT8_ASYM backup for the first and last layers). The linear layers get the same
scheme from both (asymmetric, per channel at int8, groups of 64 at int4, which SmolLM2's 576-wide layers
force); they differ in the embedding table, which NNCF compresses (int8) and tinylm keeps in f16. Every model
runs through tinylm's OpenVINO session with the precision's compile properties (f32 execution, f32 KV cache),
2 threads.

Quality is measured on the bundled support assistant (a trained model): greedy agreement over N chat prompts
x 32 tokens (every FAQ question of examples/data/faq.json under its chat template) against the fp32 model, and
perplexity on `tinylm.parity.TEXT`. Speed on the SmolLM2-135M-shaped random model: decode tokens/s over 127
steps after a 32-token prompt (median of 3 after a warm-up), compile time of the IR (no compiled-model cache).

NNCF must not disturb the project's environment: it runs in another interpreter (--nncf-python or
TINYLM_NNCF_PYTHON; default: the openvino-genai peer venv of peers.py, which has nncf through optimum-intel).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from torch_vs_transformers import THREADS, machine_line  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks-openvino-nncf.md"
GREEDY = 32

COMPRESS = """
import json, sys
import nncf, openvino as ov
src, out, mode = sys.argv[1:4]
model = ov.Core().read_model(src)
seen = set()
for op in model.get_ordered_ops():  # NNCF needs unique node names; tinylm reuses names of shared small constants
    name = op.get_friendly_name()
    if name in seen:
        op.set_friendly_name(f"{name}.{len(seen)}")
    seen.add(op.get_friendly_name())
if mode == "int8":
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
else:
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_ASYM, group_size=64, ratio=1.0)
ov.save_model(model, out, compress_to_fp16=False)
print(json.dumps({"nncf": nncf.__version__}))
"""


def _nncf(python: str, fp32_xml: Path, out: Path, mode: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", COMPRESS, str(fp32_xml), str(out / "openvino_model.xml"), mode],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"nncf failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["nncf"]


def _session(xml: Path, spec, precision: str):  # type: ignore[no-untyped-def]
    """tinylm's OpenVINO session on any IR with tinylm's inputs, compiled as tinylm compiles `precision`."""
    from tinylm_openvino.devices import compile_properties, core
    from tinylm_openvino.options import BuildOptions
    from tinylm_openvino.session import OpenVINOSession

    props = compile_properties("CPU", BuildOptions(precision=precision), THREADS, None)
    started = time.perf_counter()
    compiled = core().compile_model(str(xml), "CPU", props)
    seconds = time.perf_counter() - started
    return OpenVINOSession(compiled, spec, capacity=2048, device="CPU", execution="f32"), seconds


def _decode_speed(session, vocab: int) -> float:  # type: ignore[no-untyped-def]
    from tinylm.bench import prompt_ids

    prompt = np.array([prompt_ids(vocab, 32)], np.int64)
    rates = []
    for _ in range(4):
        session.reset()
        session.forward(prompt)
        started = time.perf_counter()
        for _ in range(127):
            session.forward(np.array([[7]], np.int64))
        rates.append(127 / (time.perf_counter() - started))
    return statistics.median(rates[1:])


def _folder_mb(xml: Path) -> float:
    return sum(p.stat().st_size for p in xml.parent.glob("openvino_model.*")) / 1e6


def _artifacts(model: str) -> dict[str, Path]:
    """tinylm's fp32/int8/int4 IRs of `model` (converted into the run's own cache)."""
    import tinylm

    found = {}
    for precision in ("fp32", "int8", "int4"):
        with tinylm.load(model, backend="openvino", precision=precision, compiled_cache=False) as m:
            assert m.artifact is not None
            found[precision] = m.artifact / "openvino_model.xml"
    return found


def measure(args: argparse.Namespace, work: Path) -> dict:
    os.environ["TINYLM_HOME"] = str(work / "home")  # conversions stay out of the user's cache
    import tinylm
    from tinylm.parity import TEXT, greedy, perplexity
    from tinylm.plugins import get_manager
    from tinylm.resolve import resolve_model
    from tinylm.source import ModelFolder

    results: dict = {"date": dt.date.today().isoformat(), "rows": []}
    quality_model = ModelFolder(resolve_model(args.quality_model, get_manager()))
    spec_q, tok = quality_model.spec, quality_model.tokenizer
    with tinylm.load(args.quality_model, backend="openvino", precision="fp32") as m:
        faq = json.loads((HERE.parent / "examples" / "data" / "faq.json").read_text())
        prompts = [tok.encode(m.chat_prompt([{"role": "user", "content": q["question"]}])) for q in faq]
    results["prompts"] = len(prompts)
    text = np.asarray(tok.encode(TEXT), np.int64)[None]
    quality = _artifacts(args.quality_model)
    speed = _artifacts(str(args.speed_model))
    spec_s = ModelFolder(args.speed_model).spec

    ref, _ = _session(quality["fp32"], spec_q, "fp32")
    reference = [greedy(ref, np.array([p], np.int64), GREEDY) for p in prompts]
    base_ppl = perplexity(ref, text)
    for precision in ("int8", "int4"):
        nncf_q, nncf_s = work / f"nncf-q-{precision}", work / f"nncf-s-{precision}"
        results["nncf"] = _nncf(args.nncf_python, quality["fp32"], nncf_q, precision)
        _nncf(args.nncf_python, speed["fp32"], nncf_s, precision)
        for who, q_xml, s_xml in (
            ("tinylm", quality[precision], speed[precision]),
            ("nncf", nncf_q / "openvino_model.xml", nncf_s / "openvino_model.xml"),
        ):
            q_sess, _ = _session(q_xml, spec_q, precision)
            tokens = [greedy(q_sess, np.array([p], np.int64), GREEDY) for p in prompts]
            agree = float(np.mean([np.mean(np.equal(a, b)) for a, b in zip(tokens, reference)]))
            ppl = perplexity(q_sess, text)
            q_sess.close()
            s_sess, compile_s = _session(s_xml, spec_s, precision)
            rate = _decode_speed(s_sess, spec_s.vocab_size)
            s_sess.close()
            results["rows"].append({
                "precision": precision, "compressor": who, "greedy_agreement": agree, "perplexity": ppl,
                "fp32_perplexity": base_ppl, "decode_tps": rate, "compile_s": compile_s,
                "mb": _folder_mb(s_xml),
            })  # fmt: skip
            print(results["rows"][-1], file=sys.stderr, flush=True)
    results["machine"] = machine_line(f"nncf {results.get('nncf', '?')}")
    return results


def table(results: dict) -> str:
    lines = [
        "| precision | compressor | greedy agreement with fp32 | perplexity (fp32's) | decode tok/s | compile (s) "
        "| IR (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['precision']} | {r['compressor']} | {r['greedy_agreement']:.1%} | {r['perplexity']:.3f} "
            f"({r['fp32_perplexity']:.3f}) | {r['decode_tps']:.1f} | {r['compile_s']:.2f} | {r['mb']:.0f} |"
        )
    return "\n".join(lines)


def page(results: dict) -> str:
    return (
        "# tinylm-openvino's weight compression vs NNCF\n\n"
        f"Measured {results['date']} with `python benchmarks/openvino_nncf.py --write-docs`.\n\n"
        f"Machine: {results['machine']}.\n\n"
        + "\n\n".join(p.replace("\n", " ") for p in __doc__.split("\n\n")[2:4]).replace(
            "over N chat prompts", f"over {results['prompts']} chat prompts"
        )
        + "\n\n"
        + table(results)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--quality-model", default="support-assistant")
    parser.add_argument("--speed-model", type=Path, help="default: the SmolLM2-135M-shaped model, built here")
    parser.add_argument("--nncf-python", default=os.environ.get("TINYLM_NNCF_PYTHON", "/tmp/ovgenai-venv/bin/python"))
    args = parser.parse_args()
    if not Path(args.nncf_python).exists():
        parser.error(f"no NNCF interpreter at {args.nncf_python}: pass --nncf-python (a venv with nncf and openvino)")
    with tempfile.TemporaryDirectory(prefix="tinylm-nncf-") as tmp:
        work = Path(tmp)
        if args.speed_model is None:
            args.speed_model = work / "smollm2-135m-random"
            build = [sys.executable, str(HERE / "torch_vs_transformers.py"), "--build", str(args.speed_model)]
            subprocess.run(build, check=True)
        results = measure(args, work)
    print(table(results))
    if args.write_docs:
        DOCS.write_text(page(results))
        print(f"wrote {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
