"""docs/benchmarks.md and its plot from the results of benchmarks/peers.py: the tables, the goals checked
against the measured numbers, and where tinylm is behind. Every sentence that states a result is generated
from the numbers, so the page cannot go stale: rerun `python benchmarks/peers.py --write-docs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "benchmarks.md"
PLOT = DOCS / "img" / "benchmarks.png"
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
BUSY_LOAD = 0.5  # a 1-minute load average above this at the start gets a warning on the page
# the other pages under docs/ that a script under benchmarks/ writes (listed when they exist)
OTHER_PAGES = (
    ("benchmarks-torch.md", "tinylm-torch vs transformers", "torch_vs_transformers.py"),
    ("benchmarks-onnx.md", "ONNX Runtime vs its peers", "onnx_peers.py"),
    ("benchmarks-openvino.md", "OpenVINO vs openvino-genai", "openvino_peers.py"),
    ("benchmarks-openvino-nncf.md", "OpenVINO weight compression vs NNCF", "openvino_nncf.py"),
    ("structured-output.md", "Structured output overhead", "structured_overhead.py"),
    ("server-load.md", "Server load test", "serve_load.py"),
)
# what each runtime's warm load covers (the figure is the child's own timer)
LOAD_SCOPE = {
    "tinylm": "`tinylm.load` (it imports the backend)",
    "transformers": "`from_pretrained` (torch and transformers already imported)",
    "optimum": "importing torch, onnxruntime and optimum, then `from_pretrained`",
    "onnxruntime-genai": "importing onnxruntime_genai, then `og.Model`",
    "openvino-genai": "importing openvino_genai, then `LLMPipeline`",
    "llama-cpp-python": "importing llama_cpp, then `Llama(...)`",
    "sentence-transformers": "the `SentenceTransformer` constructor (torch already imported)",
}


@dataclass(frozen=True)
class Goals:
    """The targets of the benchmark issue, checked for every tinylm row."""

    peer_ratio: float = 1.2  # decode >= 1.2 x the fastest peer at the same precision ...
    roofline_cap: float = 0.9  # ... where that stays under 90% of the roofline,
    roofline_floor: float = 0.85  # else >= 85% of the roofline
    ttft_ms: float = 30.0
    warm_load_s: float = 0.15
    rss_ratio: float = 1.3  # peak RSS <= 1.3 x the weight bytes


GOALS = Goals()


@dataclass(frozen=True)
class Cause:
    """What limits a tinylm row on one goal, found by measuring it apart from the run (the text names how). The
    page shows it only while a row it covers misses that goal in the results being rendered."""

    goal: str  # "decode", "ttft", "warm_load" or "rss"
    runtime: str
    precisions: tuple[str, ...]
    text: str
    model: str = "smollm2"


CAUSES_MACHINE = (
    "Each cause below was measured apart from this run, with the command it names, on a 2-core AMD EPYC (Zen 4) "
    "VM (from 2026-11-29), which need not be this run's machine; its figures are that machine's."
)
CAUSES = (
    Cause("warm_load", "tinylm-onnx", ("fp32", "int8", "int4"),
          "Creating the ONNX Runtime session is optimizing the graph and pre-packing every weight into the CPU "
          "kernels' layout; tinylm keeps this machine's optimized, pre-packed copy of the artifact (compiled_cache), "
          "so a warm load maps it: session creation 0.31 s at fp32, 0.15 s at int8, 0.12 s at int4 (0.54, 0.23 and "
          "0.19 s on the artifact itself; `python benchmarks/onnx_compiled_cache.py`). Importing numpy and "
          "onnxruntime adds 0.08 s, tinylm's imports and plugin discovery 0.05 s (docs/backends/onnx.md, Loading)."),
    Cause("warm_load", "tinylm-openvino", ("fp32", "bf16", "fp16", "int8", "int4"),
          "Importing numpy and openvino takes about 0.09 s before any model is read (0.16 s with openvino's "
          "model-conversion API, openvino.tools.ovc with its telemetry, which `import openvino` loads unless it "
          "fails to import and which tinylm leaves to first use: tinylm_openvino/runtime.py); importing "
          "the compiled blob then takes 0.1-0.2 s (bf16, int8, int4) to 0.35 s at fp32, where the CPU plugin "
          "copies 540 MB of f32 weights into freshly allocated memory, against 1.1-1.5 s to compile without it "
          "(docs/backends/openvino.md, Compiled-model cache)."),
    Cause("ttft", "tinylm-openvino", ("fp32",),
          "A 32-token prefill multiplies the 106M weights of the linear layers by 32 tokens (the embedding is a "
          "lookup, the LM head runs for the last token only): 2 × 106M × 32 = 6.8 GFLOP, so at fp32 it is "
          "compute-bound: OpenVINO spends 43 of its 44 ms in FullyConnected (gemm_mlas_f32, "
          "brgconv_avx512_1x1_f32), 158 GFLOP/s, 82% of the f32 FMA peak of its 2 Zen 4 cores (2 × 32 FLOP a cycle "
          "at about 3 GHz: 190 GFLOP/s), at which the prefill alone would still take 36 ms "
          "(`python benchmarks/op_profile.py MODEL --backend openvino --precision fp32`)."),
    Cause("ttft", "tinylm-onnx", ("fp32", "int8", "int4"),
          "The prefill is the linear layers: MatMulNBits is 88% of an int4 prefill (31.8 of 36.2 ms in operators; "
          "`python benchmarks/op_profile.py MODEL --backend onnx --precision int4`), and fp32 is compute-bound as "
          "for OpenVINO (6.8 GFLOP)."),
    Cause("decode", "tinylm-openvino", ("bf16",),
          "OpenVINO's bf16 FullyConnected (brgemm_avx512_bf16) is 88% of a decode step (15.8 ms a step; op_profile "
          "--precision bf16): it reads the 270 MB of weights at about 18 GB/s on that CPU (AVX512-BF16, no AMX). "
          "Storing the weights as bf16 instead of f16 changed nothing (measured 2026-11-29). tinylm-onnx has no "
          "bf16: ONNX Runtime's CPU provider has no bf16 MatMul."),
    Cause("decode", "tinylm-onnx", ("int4",),
          "MatMulNBits is 73% of an int4 decode step (4.5 of 6.1 ms in operators; op_profile --precision int4): "
          "68 MB of int4 weights at about 15 GB/s, under the copy bandwidth, as each block is unpacked and the "
          "activations quantized to int8 before the dot products; the other 27% is 270 small operators "
          "(attention, norms, activation)."),
    Cause("decode", "tinylm-onnx", ("fp32", "int8", "int4"),
          "Between two ONNX Runtime runs, `Model.generate` spends 0.08 ms in Python (the generation loop and the "
          "session's `step`, which rebinds and copies nothing; the text is decoded once at the end): about 1% of "
          "an int8 step, 1.5% of an int4 one (op_profile prints it last; 0.21-0.23 ms before `Session.step`). "
          "onnxruntime-genai's loop is C++, and where both runtimes' kernels are the same (MatMulNBits at "
          "int8/int4, MatMul at fp32) single rounds on this VM swing 10-20% either way. "
          "MatMulNBits blocks of 64-256 instead of 32 decode 11-24% faster at int8 but fail the quality bar on "
          "the trained test llama (`python benchmarks/onnx_block_size.py`; docs/backends/onnx.md, Options)."),
    Cause("rss", "tinylm-onnx", ("fp32", "int8", "int4"),
          "The packed weights are a second copy beside the original ones, which ONNX Runtime reads to key them: "
          "creating the session on this machine's compiled copy peaks at 804 MB RSS at fp32 and 300 MB at int8 "
          "(696 and 239 MB once open), nearly all of it pages of the memory-mapped copy (43 and 29 MB anonymous), "
          "which processes serving the same model share and the kernel can reclaim; on the artifact itself the "
          "packed weights are anonymous heap (539 and 190 MB)."),
)  # fmt: skip


# reading the results ----------------------------------------------------------------------------------------


def _is_tinylm(row: dict) -> bool:
    return row["runtime"].startswith("tinylm")


def _speed(row: dict) -> float | None:
    """Decode tokens/s, or sentences/s at batch 32 for an embedder."""
    return row.get("decode_tps") or row.get("sentences_per_s_32")


def _measured(results: dict, model: str) -> list[dict]:
    rows = [r for r in results["rows"] if r["model"] == model]
    order = {p: i for i, p in enumerate(PRECISIONS)}
    return sorted(rows, key=lambda r: (order.get(r["precision"], -1), not _is_tinylm(r), r["runtime"]))


def _roofline(results: dict, record: dict, precision: str) -> float | None:
    """Decode tokens/s if every weight byte is read once per token at the measured bandwidth (decoders only)."""
    weight_bytes = record.get("weight_bytes", {}).get(precision)
    if record["kind"] != "decoder" or not weight_bytes:
        return None
    return results["bandwidth_gbs"] * 1e9 / weight_bytes


def _fastest(rows: list[dict], precision: str, *, tinylm: bool) -> dict | None:
    found = [r for r in rows if r["precision"] == precision and _is_tinylm(r) == tinylm and _speed(r)]
    return max(found, key=lambda r: _speed(r) or 0.0, default=None)


# tables ------------------------------------------------------------------------------------------------------


def _num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(value * scale, fmt)


def decoder_table(results: dict, record: dict) -> str:
    lines = [
        "| runtime | precision | cold load (s) | warm load (s) | first token (ms) | decode tok/s: median [min–max] "
        "| of roofline | peak RSS (MB) | artifact (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _measured(results, record["name"]):
        if r["error"]:
            lines.append(f"| {r['runtime']} | {r['precision']} | not measured: {_cell(r['error'])} |||||||")
            continue
        roofline = _roofline(results, record, r["precision"])
        decode = f"{r['decode_tps']:.1f} [{r['decode_tps_min']:.1f}–{r['decode_tps_max']:.1f}]"
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {_num(r['cold_load_s'], '.1f')} | {r['warm_load_s']:.2f} "
            f"| {r['ttft_ms']:.1f} | {decode} | {_num(roofline and r['decode_tps'] / roofline, '.0%')} "
            f"| {r['peak_rss_mb']:.0f} | {_num(r['artifact_bytes'], '.1f', 1e-6)} |"
        )
    return "\n".join(lines)


def encoder_table(results: dict, record: dict) -> str:
    lines = [
        "| runtime | precision | cold load (s) | warm load (s) | sentences/s, batch 1 | sentences/s, batch 32 "
        "| peak RSS (MB) | artifact (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _measured(results, record["name"]):
        if r["error"]:
            lines.append(f"| {r['runtime']} | {r['precision']} | not measured: {_cell(r['error'])} ||||||")
            continue
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {_num(r['cold_load_s'], '.1f')} | {r['warm_load_s']:.2f} "
            f"| {r['sentences_per_s_1']:.0f} | {r['sentences_per_s_32']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {_num(r['artifact_bytes'], '.1f', 1e-6)} |"
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    """An error's first sentence (the saved results keep all of it), safe in a table cell."""
    first = text.replace("\n", " ").split(". ")[0].rstrip(".")
    return first.replace("|", "/")


def tables(results: dict) -> str:
    """Every measured model's table, for the terminal and the page."""
    parts = []
    for record in results["models"]:
        parts.append(f"### {record['name']}: {record['title']}\n")
        if record["status"]:
            parts.append(f"Not measured, {record['status']}.\n")
            continue
        table = decoder_table if record["kind"] == "decoder" else encoder_table
        parts.append(table(results, record) + "\n")
    return "\n".join(parts)


# goals -------------------------------------------------------------------------------------------------------


def _verdict(ok: bool, detail: str) -> str:
    return f"met ({detail})" if ok else f"**not met** ({detail})"


def speed_goal(results: dict, record: dict, rows: list[dict], row: dict) -> str:
    """1.2x the fastest peer at the row's precision while that stays under 90% of the roofline, else 85% of it."""
    speed, peer = _speed(row) or 0.0, _fastest(rows, row["precision"], tinylm=False)
    roofline = _roofline(results, record, row["precision"])
    peer_speed = _speed(peer) if peer else None
    if peer_speed and (roofline is None or GOALS.peer_ratio * peer_speed <= GOALS.roofline_cap * roofline):
        target, why = GOALS.peer_ratio * peer_speed, f"{GOALS.peer_ratio}× {peer['runtime']}"
    elif roofline:
        target, why = GOALS.roofline_floor * roofline, f"{GOALS.roofline_floor:.0%} of roofline"
    else:
        return "no peer measured"
    return _verdict(speed >= target, f"{speed:.1f} vs {target:.1f} = {why}")


def _misses(results: dict, record: dict, rows: list[dict], row: dict, goal: str) -> bool:
    """Whether `row` misses `goal` (as goals_table judges it)."""
    weights_mb = record["all_weight_bytes"].get(row["precision"], 0) / 1e6
    if goal == "decode":
        return not speed_goal(results, record, rows, row).startswith("met")
    if goal == "ttft":
        return row.get("ttft_ms") is not None and row["ttft_ms"] > GOALS.ttft_ms
    if goal == "warm_load":
        return row["warm_load_s"] > GOALS.warm_load_s
    return row["peak_rss_mb"] > GOALS.rss_ratio * weights_mb


def causes(results: dict, record: dict) -> list[str]:
    """One bullet per known cause (CAUSES) that covers a row of this model missing its goal, naming the rows."""
    rows = _measured(results, record["name"])
    ours = [r for r in rows if _is_tinylm(r) and not r["error"]]
    names = {"decode": "decode", "ttft": "first token", "warm_load": "warm load", "rss": "peak RSS"}
    out = []
    for cause in CAUSES:
        hit = [
            r["precision"]
            for r in ours
            if cause.model == record["name"]
            and r["runtime"] == cause.runtime
            and r["precision"] in cause.precisions
            and _misses(results, record, rows, r, cause.goal)
        ]
        if hit:
            out.append(f"- **{cause.runtime} {names[cause.goal]}** ({record['name']}, {', '.join(hit)}): {cause.text}")
    return out


def goals_table(results: dict, record: dict) -> str:
    rows = _measured(results, record["name"])
    decoder = record["kind"] == "decoder"
    unit = "decode tok/s" if decoder else "sentences/s (batch 32)"
    lines = [
        f"| runtime | precision | {unit} | first token ≤ {GOALS.ttft_ms:.0f} ms | warm load ≤ {GOALS.warm_load_s} s "
        f"| peak RSS ≤ {GOALS.rss_ratio}× weights |",
        "|---|---|---|---|---|---|",
    ]
    ours = [r for r in rows if _is_tinylm(r) and not r["error"]]
    if not ours:
        return "No tinylm row was measured."
    for r in ours:
        weights_mb = record["all_weight_bytes"].get(r["precision"], 0) / 1e6
        ttft = "–" if not decoder else _verdict(r["ttft_ms"] <= GOALS.ttft_ms, f"{r['ttft_ms']:.1f} ms")
        load = _verdict(r["warm_load_s"] <= GOALS.warm_load_s, f"{r['warm_load_s']:.2f} s")
        limit = GOALS.rss_ratio * weights_mb
        rss = _verdict(r["peak_rss_mb"] <= limit, f"{r['peak_rss_mb']:.0f} vs {limit:.0f} MB")
        speed = speed_goal(results, record, rows, r)
        lines.append(f"| {r['runtime']} | {r['precision']} | {speed} | {ttft} | {load} | {rss} |")
    return "\n".join(lines)


# where tinylm is behind ------------------------------------------------------------------------------------


def behind(results: dict, record: dict) -> list[str]:
    """One bullet per precision where the fastest peer beats tinylm's best backend, with the measured reasons;
    then one line for the precisions where tinylm leads and those without a peer."""
    rows = _measured(results, record["name"])
    bullets, ahead, alone = [], [], []
    for precision in PRECISIONS:
        ours, peer = _fastest(rows, precision, tinylm=True), _fastest(rows, precision, tinylm=False)
        if ours is None:
            continue
        if peer is None:
            alone.append(precision)
            continue
        ratio = (_speed(ours) or 0.0) / (_speed(peer) or 1.0)
        if ratio >= 1:
            ahead.append(f"{precision} ({ours['runtime']} {ratio:.2f}× {peer['runtime']})")
            continue
        bullets.append(f"- **{precision}**: " + " ".join(_reasons(results, record, ours, peer, ratio)))
    if ahead:
        bullets.append("- tinylm's best backend leads at " + ", ".join(ahead) + ".")
    if alone:
        bullets.append("- No peer measured at " + ", ".join(alone) + ".")
    return bullets or ["- Nothing to compare: no tinylm or no peer row was measured."]


def _reasons(results: dict, record: dict, ours: dict, peer: dict, ratio: float) -> list[str]:
    unit = "tok/s" if record["kind"] == "decoder" else "sentences/s at batch 32"
    said = [
        f"{ours['runtime']} (tinylm's fastest) {_speed(ours):.1f} {unit} vs {peer['runtime']} {_speed(peer):.1f}: "
        f"{ratio:.2f}×."
    ]
    roofline = _roofline(results, record, ours["precision"])
    if roofline:
        mine, theirs = _speed(ours) / roofline, _speed(peer) / roofline
        said.append(f"Of the roofline ({roofline:.0f} tok/s): tinylm {mine:.0%}, the peer {theirs:.0%}.")
        if theirs > 1 and mine >= GOALS.roofline_floor:
            said.append(
                "Both run at or above the roofline (a decode step only reads its weights, while the copy that "
                "measures the bandwidth also writes), so both are memory-bound"
                + (f"; the runs spread {ours['decode_tps_min']:.1f}–{ours['decode_tps_max']:.1f} tok/s for tinylm."
                   if ours.get("decode_tps_min") else ".")
            )  # fmt: skip
        elif theirs > 1:
            said.append(
                f"The peer beats the {ours['precision']} roofline while tinylm does not, so the peer is not limited "
                "by reading its weights once per token and tinylm's kernels are."
            )
        elif mine >= GOALS.roofline_floor:
            said.append("tinylm is memory-bound here: only reading fewer bytes per token would close the gap.")
        else:
            said.append("tinylm is not memory-bound here: per-token overhead or kernels, not bandwidth, limit it.")
    if ours.get("artifact_bytes") and peer.get("artifact_bytes") and peer["artifact_bytes"] < ours["artifact_bytes"]:
        said.append(f"The peer's files are smaller ({peer['artifact_bytes'] / 1e6:.0f} vs "
                    f"{ours['artifact_bytes'] / 1e6:.0f} MB).")  # fmt: skip
    if ours.get("ttft_ms") and peer.get("ttft_ms") and peer["ttft_ms"] < ours["ttft_ms"]:
        said.append(f"Its first token is also sooner ({peer['ttft_ms']:.1f} vs {ours['ttft_ms']:.1f} ms).")
    if record["kind"] == "encoder" and ours.get("sentences_per_s_1") and peer.get("sentences_per_s_1"):
        said.append(f"At batch 1: {ours['sentences_per_s_1']:.0f} vs {peer['sentences_per_s_1']:.0f} sentences/s.")
    return said


# the plot ---------------------------------------------------------------------------------------------------


def plot(results: dict, out: Path) -> None:
    """One panel per measured model: bars per precision, one per runtime (decode tok/s with min–max, or
    sentences/s at batch 32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [
        m for m in results["models"] if not m["status"] and any(_speed(r) for r in _measured(results, m["name"]))
    ]
    runtimes = sorted(
        {r["runtime"] for r in results["rows"] if _speed(r)}, key=lambda n: (not n.startswith("tinylm"), n)
    )
    ours = [n for n in runtimes if n.startswith("tinylm")]
    colors = {n: plt.get_cmap("Blues")(0.45 + 0.5 * i / max(1, len(ours) - 1)) for i, n in enumerate(ours)}
    colors |= {n: plt.get_cmap("tab10")(1 + i % 9) for i, n in enumerate(runtimes[len(ours) :])}  # not tab10's blue
    fig, axes = plt.subplots(len(records) or 1, 1, figsize=(10, 0.6 + 2.8 * max(1, len(records))), squeeze=False)
    for ax, record in zip(axes[:, 0], records):
        _panel(ax, results, record, colors)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in runtimes]
    fig.legend(handles, runtimes, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def _panel(ax, results: dict, record: dict, colors: dict) -> None:  # type: ignore[no-untyped-def]
    rows = [r for r in _measured(results, record["name"]) if _speed(r)]
    precisions = [p for p in PRECISIONS if any(r["precision"] == p for r in rows)]
    groups = [[r for r in rows if r["precision"] == p] for p in precisions]
    width = 0.8 / max(len(g) for g in groups)
    for x, group in enumerate(groups):
        for i, r in enumerate(group):
            pos, value = x + width * (i - (len(group) - 1) / 2), _speed(r) or 0.0
            err = None
            if r.get("decode_tps_min") is not None:
                err = [[value - r["decode_tps_min"]], [r["decode_tps_max"] - value]]
            ax.bar(pos, value, width, color=colors[r["runtime"]], yerr=err, capsize=2)
    ax.set_xticks(range(len(precisions)), precisions)
    ax.set_ylabel("decode tok/s" if record["kind"] == "decoder" else "sentences/s (batch 32)")
    ax.set_title(f"{record['name']}: {record['title']}", fontsize=9)


# the page ---------------------------------------------------------------------------------------------------


def _method(results: dict) -> str:
    runs, new, prompt, threads = results["runs"], results["new_tokens"], results["prompt_tokens"], results["threads"]
    scopes = "; ".join(f"{name}: {scope}" for name, scope in LOAD_SCOPE.items())
    return (
        f"Every row runs in its own processes with {threads} threads. tinylm rows are `tinylm bench MODEL --json` "
        "for every available backend and precision (a backend that cannot run here is a row saying why). "
        f"Decoders: greedy generation from the same {prompt}-token prompt (the one `tinylm bench` uses), {new} new "
        f"tokens with EOS ignored; decode is the median tokens/s after the first token over {runs} run(s) after "
        f"a warm-up, [min–max] beside it{_rounds(results)}; time to first token "
        "is prefill plus the first token, with the whole prompt "
        "prefilled every run (openvino-genai's LLMPipeline turns on a prefix cache by default: repeating the prompt, "
        "its timed runs would prefill one token, so it is turned off; llama-cpp-python is reset for the same "
        "reason). Embedders: "
        "sentences/s encoding the same short texts at batch 1 and 32, each timed for 2 s after a warm-up.\n\n"
        "Cold load is the first load into an empty cache for tinylm (conversion, parity check included) and "
        "the conversion process for a peer that needs one (optimum's export [+ dynamic quantization], "
        "onnxruntime-genai's model builder, optimum-intel's OpenVINO export, llama.cpp's `convert_hf_to_gguf.py` "
        "[+ its q4_0 quantizer]); peers that read the model folder as it is have none (–). Warm load is a fresh "
        f"process opening the converted model, with Python's bytecode cache as the earlier processes left it (as on "
        f"a default Python; an editable install under PYTHONDONTWRITEBYTECODE would recompile tinylm every load); "
        f"it covers {scopes}. Peak RSS is the measuring process's VmHWM. "
        "Artifact is the bytes of the converted files (tinylm: its artifact's files, as `tinylm convert` writes "
        "them; the copy tinylm-onnx and tinylm-openvino keep beside it for this machine on their first load, ONNX "
        "Runtime's optimized graph with its pre-packed weights or OpenVINO's compiled blob, is a cache of 1-2x the "
        "artifact on disk and is not counted: docs/concepts.md).\n\n"
        "The roofline is the measured memory bandwidth (numpy copy, read + write) divided by the bytes of weights "
        "one decode step reads at the row's precision (every linear layer and the LM head, as `tinylm bench` counts "
        "them: 4, 2, 1 and 0.5 bytes a weight for fp32, bf16/fp16, int8, int4; llama.cpp's q8_0 and q4_0 store "
        "8.5 and 4.5 bits). Precisions of the peers: transformers and sentence-transformers run the torch dtype; "
        "optimum int8 is dynamic quantization (MatMulInteger); onnxruntime-genai int8/int4 are MatMulNBits; "
        "openvino-genai runs an optimum-intel export (fp32; fp16 for the bf16 row; int8; int4 with group 64) with "
        "f32 forced at fp32, bf16 forced at bf16 and its CPU defaults otherwise; llama-cpp-python runs f32, bf16, "
        "q8_0 and q4_0 GGUFs, built from source for the machine's CPU without llama.cpp's AMX kernels (on an AMX "
        "Xeon VM its q8_0 and q4_0 decoding segfaulted in them)."
    )


def _rounds(results: dict) -> str:
    rounds = results.get("rounds", 1)
    if rounds < 2:
        return ""
    return (
        f" (every row was measured in {rounds} rounds; in each, every tinylm backend ran back to back with the "
        "peers it is compared with (torch with transformers and sentence-transformers, onnx with optimum and "
        "onnxruntime-genai, openvino with openvino-genai), tinylm first in one round and last in the next; a row's "
        "figures are the medians of its rounds, min–max over all its runs)"
    )


def _goals_rule() -> str:
    g = GOALS
    return (
        f"For every tinylm row: decode at least {g.peer_ratio}× the fastest peer at the same precision where that "
        f"stays under {g.roofline_cap:.0%} of the roofline, else at least {g.roofline_floor:.0%} of the roofline "
        f"(embedders: sentences/s at batch 32, {g.peer_ratio}× the fastest peer); first token within "
        f"{g.ttft_ms:.0f} ms; warm load within {g.warm_load_s} s; peak RSS within {g.rss_ratio}× the bytes of all "
        "the weights at that precision."
    )


def _models(results: dict) -> str:
    lines = []
    for m in results["models"]:
        if m["status"]:
            lines.append(f"- **{m['name']}** ({m['title']}): {m['status']}.")
        else:
            total, read = m["all_weight_bytes"]["fp32"] / 4e6, m["weight_bytes"]["fp32"] / 4e6
            part = "read by each decode step" if m["kind"] == "decoder" else "outside the embedding tables"
            lines.append(f"- **{m['name']}**: {m['title']}; {total:.1f}M weights, {read:.1f}M of them {part}.")
    return "\n".join(lines)


def _peer_versions(results: dict) -> str:
    found = sorted({(r["runtime"], r["version"]) for r in results["rows"] if r.get("version")})
    return ", ".join(f"{name} {version}" for name, version in found) or "none measured"


def page(results: dict, plot_path: Path | None) -> str:
    parts = [
        "# Benchmarks\n",
        "<!-- generated by benchmarks/peers.py: edit that script, then rerun it; never edit this page -->\n",
        f"Measured {results['date']} with `python benchmarks/peers.py --write-docs` "
        f"(in {results.get('minutes', 0):.0f} min); every figure and every sentence about a result on this page "
        "comes from that run. Every figure in the benchmark pages comes from a script under `benchmarks/` run on "
        "the machine and date its page names; none comes from a timed assertion in a test.\n",
    ]
    if results["quick"]:
        parts.append(
            '!!! warning "A smoke run"\n    These figures come from `--quick` (one run, few tokens): they show '
            "the page works, not how fast anything is.\n"
        )
    load = results.get("load_average", 0.0)
    if load > BUSY_LOAD:
        parts.append(
            f'!!! warning "A busy machine"\n    The 1-minute load average was {load:.1f} when the run started: other '
            "work competed for the cores, and runtimes whose threads spin-wait for each other suffer most.\n"
        )
    parts += [
        "## Machine\n",
        f"{results['machine']}. Memory bandwidth (numpy copy, read + write): {results['bandwidth_gbs']:.1f} GB/s; "
        f"1-minute load average at the start: {load:.1f}. Peers: {_peer_versions(results)}.\n",
        "## Method\n",
        _method(results) + "\n",
        "## Models\n",
        _models(results) + "\n",
        "## Results\n",
    ]
    if plot_path is not None:
        parts.append(f"![Decode tokens/s (embedders: sentences/s) by runtime and precision]({plot_path})\n")
    parts += [tables(results), "## Goals\n", _goals_rule() + "\n"]
    for record in results["models"]:
        if not record["status"]:
            parts += [f"### {record['name']}\n", goals_table(results, record) + "\n"]
    parts.append("## Where tinylm is behind, and why\n")
    for record in results["models"]:
        if not record["status"]:
            parts += [f"### {record['name']}\n", "\n".join(behind(results, record)) + "\n"]
    limits = [line for record in results["models"] if not record["status"] for line in causes(results, record)]
    if limits:
        parts += ["## What limits tinylm where a goal is missed\n", CAUSES_MACHINE + "\n", "\n".join(limits) + "\n"]
    parts += ["## Other benchmark pages\n", _other_pages()]
    return "\n".join(parts)


def _other_pages() -> str:
    lines = ["| page | command |", "|---|---|"]
    for file, title, script in OTHER_PAGES:
        if (DOCS / file).is_file():
            lines.append(f"| [{title}]({file}) | `python benchmarks/{script} --write-docs` |")
    lines.append("| any model, every backend and precision here | `tinylm bench MODEL [--plot bench.png]` |")
    return "\n".join(lines) + "\n"


def write(results: dict) -> None:
    """docs/benchmarks.md and docs/img/benchmarks.png."""
    plot(results, PLOT)
    PAGE.write_text(page(results, PLOT.relative_to(DOCS)), encoding="utf-8")
    print(f"wrote {PAGE} and {PLOT}", flush=True)
