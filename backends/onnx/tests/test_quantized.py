"""int8 and int4: the packing matches MatMulNBits, artifacts record their parity and perplexity change, and on
a trained model int8 greedy continuations agree with fp32 (the issue's bar: >= 90% of 20 prompts x 32 tokens).

Measured on the trained 2-layer llama of conftest.py (loss 0.31): int8 19/20 continuations identical to fp32
(96.9% of tokens); int4 1/20 (35.9% of tokens) -- reported, not asserted beyond a sanity floor (a hidden size of
96 is three 32-wide blocks per row; sub-1B models lose quality fast at 4 bits).
"""

from __future__ import annotations

import numpy as np
import pytest
from tinylm_onnx.quantize import dequantize_blocks, quantize_blocks

import tinylm
from tinylm.artifacts import read_marker


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("k", [64, 48])  # 48: padded to a whole block
def test_block_quantization_round_trips(bits, k):
    w = np.random.default_rng(0).standard_normal((16, k)).astype(np.float32)
    q = quantize_blocks(w, bits=bits, block=32)
    assert q.packed.shape == (16, -(-k // 32), 32 * bits // 8) and q.packed.dtype == np.uint8
    back = dequantize_blocks(q)
    step = np.abs(w).max() / (2 ** (bits - 1))
    assert back.shape == w.shape and np.abs(back - w).max() <= step / 2 + 1e-6


@pytest.mark.parametrize("bits", [4, 8])
def test_matmulnbits_computes_the_dequantized_product(bits):
    """The packing is the one ONNX Runtime reads: its product equals x @ dequantize(W)^T (fp32 compute)."""
    import onnxruntime as ort
    from tinylm_onnx.graph import FLOAT, Graph
    from tinylm_onnx.linear import linear

    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((40, 48)).astype(np.float32), rng.standard_normal((3, 48)).astype(np.float32)
    g = Graph("mm")
    g.output(linear(g, g.input("x", FLOAT, [3, 48]), w, None, bits=bits, block=32, level=0, hint="l"), "y", FLOAT, None)
    y = ort.InferenceSession(g.model().SerializeToString()).run(None, {"x": x})[0]
    expected = x @ dequantize_blocks(quantize_blocks(w, bits=bits, block=32)).T
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("bits", "shared"), [(4, True), (8, False)])
def test_tied_lookup_reads_the_heads_codes_at_int4_only(bits, shared, model_folder):
    """qwen2 (tied, hidden 48: K padded to 64) -- at int4 the lookup dequantizes the LM head's codes
    (GatherBlockQuantized, the padding sliced off); at int8 it keeps the f32 table."""
    import onnxruntime as ort
    from tinylm_onnx.graph import FLOAT, INT64, Graph
    from tinylm_onnx.lowering import Lowering
    from tinylm_onnx.options import BuildOptions
    from tinylm_onnx.transformer import _embed

    from tinylm.source import ModelFolder

    folder = ModelFolder(model_folder("qwen2"))
    opts = BuildOptions(precision="int4" if bits == 4 else "int8", block_size=32)  # as the build resolves it
    lw = Lowering(Graph("embed"), folder.spec, opts, folder.weights())
    lw.g.output(_embed(lw, lw.g.input("input_ids", INT64, ["B", "T"]), None), "x", FLOAT, None)
    ids = np.array([[3, 17, 250, 9]])
    got = ort.InferenceSession(lw.g.model().SerializeToString()).run(None, {"input_ids": ids})[0]
    table = lw.w("embed.weight")
    expected = dequantize_blocks(quantize_blocks(table, bits=bits, block=32)) if shared else table
    np.testing.assert_allclose(got[0], expected[ids[0]], rtol=1e-6, atol=1e-6)
    assert (lw.head_stored is not None) == shared


@pytest.mark.parametrize("precision", ["int8", "int4"])
@pytest.mark.parametrize("variant", ["llama", "gpt2", "qwen2"])
def test_quantized_artifact_records_parity(variant, precision, model_folder):
    model = tinylm.load(model_folder(variant), backend="onnx", precision=precision)
    assert model.precision == precision
    ref = tinylm.load(model_folder(variant), backend="onnx")
    ids = np.random.default_rng(0).integers(3, 400, 32)
    got, expected = model.logits(ids), ref.logits(ids)
    relative = float(np.abs(got - expected).max() / np.abs(expected).max())
    # random tiny models amplify weight noise (torch's int8 measures 0.04-0.06 on them too); trained ones do not
    agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
    if precision == "int8":  # int4 on random tiny weights is noise-bound (0.5-0.8); its packing is tested above
        assert relative < 0.15 and agree >= 0.8, (relative, agree)
    assert np.isfinite(got).all() and agree >= 0.2, agree
    meta = read_marker(model.artifact)  # the entry this model loaded (others share its source)
    assert meta["parity"]["max_logit_diff"] > 0 and 0 <= meta["parity"]["greedy_agreement"] <= 1
    assert meta["perplexity"]["fp32"] > 1 and "change" in meta["perplexity"]
    bits = 8 if precision == "int8" else 4
    assert f"MatMulNBits (bits={bits}, block=32, accuracy_level=4)" in meta["onnx"]["fused_ops"]  # decoders' default


def test_encoder_int8_embeddings_stay_close(model_folder):
    """Encoders quantize in blocks of 128 by default (int8 then computes faster than fp32; docs/backends/onnx.md)."""
    texts = ["hello world", "café 東京 😀"]
    expected = tinylm.load(model_folder("bert"), backend="onnx").embed(texts)
    model = tinylm.load(model_folder("bert"), backend="onnx", precision="int8")
    assert ((model.embed(texts) * expected).sum(-1) > 0.99).all()
    meta = read_marker(model.artifact)
    assert "MatMulNBits (bits=8, block=128, accuracy_level=4)" in meta["onnx"]["fused_ops"]
    assert meta["parity"]["cosine_min"] > 0.99


def _continuations(model: tinylm.Model, prompts: list[list[int]]) -> list[list[int]]:
    return [list(model.generate(p, max_new_tokens=32, ignore_eos=True).token_ids) for p in prompts]


@pytest.mark.slow  # trains a model (~15 s) and converts it three times: ~35 s on 2 cores
def test_int8_greedy_agrees_with_fp32_on_a_trained_model(trained_model):
    folder, prompts = trained_model
    fp32 = _continuations(tinylm.load(folder, backend="onnx"), prompts)
    results = {}
    for precision in ("int8", "int4"):
        ours = _continuations(tinylm.load(folder, backend="onnx", precision=precision), prompts)
        same = float(np.mean([a == b for a, b in zip(ours, fp32)]))
        tokens = float(np.mean([np.mean(np.equal(a, b)) for a, b in zip(ours, fp32)]))
        results[precision] = (same, tokens)
        print(f"{precision}: {same:.0%} of {len(prompts)} continuations identical to fp32, {tokens:.1%} of tokens")
    assert results["int8"][0] >= 0.9, results
    assert results["int4"][1] >= 0.25, results  # reported, not a quality bar: a floor only a broken int4 misses


@pytest.mark.parametrize("dot_products", [True, False])
def test_an_encoder_loaded_with_nothing_named_runs_int8_only_where_the_cpu_has_int8_dot_products(
    dot_products, model_folder, monkeypatch
):
    """Without OpenVINO (ranked above it for encoders), ONNX Runtime's encoder rule: int8 where the CPU has VNNI/AMX/
    dotprod (injected), kept because its measured embeddings keep the quality bar; else fp32."""
    import tinylm_onnx.plugin

    from tinylm import plugins

    monkeypatch.setattr(tinylm_onnx.plugin, "dot_product_cpu", lambda: dot_products)
    monkeypatch.setenv("TINYLM_DISABLE_PLUGINS", "openvino,coreml")
    monkeypatch.delenv("TINYLM_BACKEND", raising=False)
    monkeypatch.delenv("TINYLM_AUTO_BENCH", raising=False)
    plugins.reset()
    try:
        model = tinylm.load(model_folder("bert"))
    finally:
        monkeypatch.undo()
        plugins.reset()
    assert (model.backend, model.precision) == ("onnx", "int8" if dot_products else "fp32")
    if dot_products:
        assert "int8: embeddings' least cosine with fp32 0.99" in model.chosen_by
    else:
        assert model.chosen_by.endswith("fp32: lossless")
