"""What can be checked of a converted package without a Core ML runtime (any OS): the declared inputs,
outputs and states (names, dtypes, shapes, flexible ranges), the op types, and the weight sizes per precision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tinylm_coreml.compress import kmeans_lut
from tinylm_coreml.package import read_spec, weight_bytes

from tinylm.source import ModelFolder
from tinylm.testing.models import VARIANTS

ct = pytest.importorskip("coremltools")
from coremltools.proto import FeatureTypes_pb2 as ft  # noqa: E402

#: One variant per family tinylm describes (the fast suite converts each of these).
FAMILIES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "phi3-longrope",
    "gemma",
    "gpt2",
    "bert",
    "granite",
    "olmo2",
    "smollm3",
    "gemma2",
    "gemma3",
    "lfm2",
    "lfm2-k4",
    "xlm-roberta",
    "modernbert",
)

Converted = Callable[..., tuple[Path, dict[str, Any]]]

DTYPES = {
    ft.ArrayFeatureType.INT32: "int32",
    ft.ArrayFeatureType.FLOAT16: "float16",
    ft.ArrayFeatureType.FLOAT32: "float32",
}
#: Every MIL op the lowering may leave in a package (after coremltools' passes and compression).
MIL_OPS = {
    "add", "cast", "concat", "const", "expand_dims", "gather", "identity", "layer_norm", "linear", "matmul", "mul",
    "range_1d", "read_state", "reshape", "shape", "silu", "sigmoid", "slice_by_index", "slice_update", "softmax",
    "split", "squeeze", "stack", "sub", "transpose", "write_state", "gelu", "relu", "real_div", "select",
    "greater_equal", "tanh", "constexpr_blockwise_shift_scale", "constexpr_affine_dequantize", "constexpr_lut_to_dense",
}  # fmt: skip


def _spec(folder: Path, meta: dict[str, Any]) -> Any:
    return read_spec(folder / meta["package"])  # read-only: MLModel(path) would rewrite Manifest.json


def _array(feature: Any, kind: str = "multiArrayType") -> tuple[str, list[Any]]:
    """(dtype, shape) of a feature, a flexible dim as [lower, upper]."""
    array = feature.type.stateType.arrayType if kind == "state" else feature.type.multiArrayType
    ranges = list(array.shapeRange.sizeRanges) if kind != "state" else []
    if ranges:
        shape = [r.lowerBound if r.lowerBound == r.upperBound else [r.lowerBound, r.upperBound] for r in ranges]
    else:
        shape = list(array.shape)
    return DTYPES.get(array.dataType, str(array.dataType)), shape


def _ops(spec: Any) -> set[str]:
    main = spec.mlProgram.functions["main"]
    return {op.type for op in main.block_specializations[main.opset].operations}


def _model_spec(folder: Path) -> Any:
    return ModelFolder(folder).spec


@pytest.mark.parametrize("variant", FAMILIES)
def test_every_family_converts_with_its_declared_interface(
    variant: str, converted: Converted, model_folder: Callable[[str], Path]
) -> None:
    folder, meta = converted(variant)
    spec = _spec(folder, meta)
    ms = _model_spec(model_folder(variant))
    inputs = {f.name: _array(f) for f in spec.description.input}
    outputs = {f.name: _array(f) for f in spec.description.output}
    states = {f.name: _array(f, "state") for f in spec.description.state}
    assert {i["name"]: (i["dtype"], i["shape"]) for i in meta["inputs"]} == inputs  # metadata tells the truth
    if ms.kind == "decoder":
        C = meta["context_length"]
        assert spec.specificationVersion == 9 and meta["target"] == "iOS18"  # iOS 18 / macOS 15: states
        assert inputs == {"input_ids": ("int32", [1, [1, C]]), "causal_mask": ("float16", [1, 1, [1, C], [1, C]])}
        cache = ("float16", [len(ms.attention_layers), 1, ms.num_kv_heads, C, ms.head_dim])
        want_states = {"key_cache": cache, "value_cache": cache}
        if ms.conv is not None:  # LFM2: the conv layers' last kernel - 1 inputs, one more state
            want_states["conv_cache"] = ("float16", [len(ms.conv_layers), 1, ms.hidden_size, ms.conv.kernel - 1])
        assert states == want_states
        assert list(outputs) == ["logits"] and outputs["logits"][0] == "float32"
    else:
        T, B = ms.max_positions, meta["max_batch"]
        types = ("token_type_ids",) if ms.type_vocab_size else ()  # ModernBERT has no token types
        names = ("input_ids", "attention_mask", *types)
        want = {n: ("int32", [[1, B], [1, T]]) for n in names}
        assert inputs == want and states == {}
        assert list(outputs) == ["last_hidden_state"] and outputs["last_hidden_state"][0] == "float32"
    ops = _ops(spec)
    assert ops <= MIL_OPS, f"unexpected ops: {sorted(ops - MIL_OPS)}"
    assert not any("torch" in op or "aten" in op for op in ops)
    assert meta["op_types"] == sorted(ops)


def test_conv_layers_refuse_the_stateless_layout(model_folder: Callable[[str], Path]) -> None:
    """LFM2's conv state lives only in a Core ML state: stateful=False is a typed error before converting."""
    import tinylm
    from tinylm.errors import CapabilityError

    with pytest.raises(CapabilityError, match="stateful=True"):
        tinylm.convert(model_folder("lfm2"), backend="coreml", out=model_folder("lfm2").parent / "x", stateful=False)


def test_stateless_fallback_passes_the_cache_as_inputs_and_outputs(converted: Converted) -> None:
    folder, meta = converted("llama", stateful=False)
    spec = _spec(folder, meta)
    C = meta["context_length"]
    assert meta["target"] == "iOS16" and spec.specificationVersion == 7 and not meta["stateful"]
    assert list(spec.description.state) == []
    inputs = {f.name: _array(f) for f in spec.description.input}
    cache = ("float16", [2, 1, 2, C, 16])
    assert inputs == {
        "input_ids": ("int32", [1, [1, C]]),
        "position_ids": ("int32", [1, [1, C]]),
        "causal_mask": ("float16", [1, 1, [1, C], [C + 1, 2 * C]]),
        "key_cache": cache,
        "value_cache": cache,
    }
    outputs = {f.name: _array(f)[0] for f in spec.description.output}
    assert outputs == {"logits": "float32", "new_keys": "float16", "new_values": "float16"}
    assert not {"read_state", "write_state", "slice_update"} & _ops(spec)  # nothing newer than iOS 16


@pytest.mark.parametrize("variant", ["llama", "bert"])
def test_weight_sizes_shrink_with_precision(variant: str, converted: Converted) -> None:
    sizes = {}
    for precision, options in (("fp16", {}), ("int8", {}), ("int4", {}), ("int4", {"int4": "palettize"})):
        folder, meta = converted(variant, precision, **options)
        assert meta["weight_bytes"] == weight_bytes(folder / meta["package"]) > 0
        sizes[precision + options.get("int4", "")] = meta["weight_bytes"]
        ops = _ops(_spec(folder, meta))
        if precision == "int8":
            assert ops & {"constexpr_blockwise_shift_scale", "constexpr_affine_dequantize"}
        elif precision == "int4":
            assert ("constexpr_lut_to_dense" if options else "constexpr_blockwise_shift_scale") in ops
            assert meta["target"] == "iOS18"
    # The tiny models keep a larger share in fp16 than real ones (rotary tables, norms, per-channel
    # scales): about 0.6 and 0.4 of fp16 here, about 0.5 and 0.3 for models with hidden sizes in the hundreds.
    assert sizes["int8"] < 0.66 * sizes["fp16"]
    assert sizes["int4"] < 0.45 * sizes["fp16"] and sizes["int4palettize"] < 0.45 * sizes["fp16"]


def test_kmeans_lut_is_a_4_bit_palette() -> None:
    w = np.random.default_rng(0).normal(size=(16, 64)).astype(np.float16)
    lut, idx = kmeans_lut(w)
    assert lut.shape == (16,) and lut.dtype == np.float16 and idx.dtype == np.uint8 and idx.shape == (w.size,)
    err = np.abs(lut[idx].reshape(w.shape).astype(np.float32) - w).mean()
    assert err < 0.1 * np.abs(w.astype(np.float32)).mean()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8", "int4", "palettize"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_converts_at_every_precision(variant: str, precision: str, converted: Converted) -> None:
    options = {"int4": "palettize"} if precision == "palettize" else {}
    folder, meta = converted(variant, "int4" if options else precision, **options)
    ops = _ops(_spec(folder, meta))
    assert ops <= MIL_OPS and meta["weight_bytes"] > 0
