"""Checkpoints stored with int8 weights (compressed-tensors' int-quantized layout): read as float32, others refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tinylm
from tinylm.compressed import QUANTIZATION_CONFIG, Int8Storage, quantize_int8
from tinylm.errors import WeightsError
from tinylm.testing.models import build_model


def _everything(name: str, w: np.ndarray) -> bool:
    return True


def _store_int8(src, dest, *, config_update=None):
    """`src` copied to `dest` with every matrix int8 + per-row scale; returns the widened float weights."""
    shutil.copytree(src, dest)
    tensors = quantize_int8(load_file(str(src / "model.safetensors")), _everything)
    save_file(tensors, str(dest / "model.safetensors"))
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = config_update or QUANTIZATION_CONFIG
    (dest / "config.json").write_text(json.dumps(config))
    return dict(Int8Storage(tensors, where="test"))


def test_round_trip_error_is_half_a_step_per_row():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 16)).astype(np.float32) * rng.uniform(0.01, 5, size=(8, 1)).astype(np.float32)
    stored = quantize_int8({"m.weight": w, "v.bias": w[0]}, _everything)
    assert stored["m.weight"].dtype == np.int8 and stored["m.weight_scale"].shape == (8, 1)
    assert stored["v.bias"] is not None and "v.bias_scale" not in stored  # vectors are never quantized
    view = Int8Storage(stored, where="test")
    assert sorted(view) == ["m.weight", "v.bias"]  # scales are hidden
    back = view["m.weight"]
    step = stored["m.weight_scale"].astype(np.float32)
    assert back.dtype == np.float32
    assert np.all(np.abs(back - w) <= step / 2 + 1e-6 * np.abs(w))
    assert not np.array_equal(back, w)


def test_group_and_tensor_scales():
    q = np.arange(-8, 8, dtype=np.int8).reshape(2, 8)
    group = Int8Storage({"w": q, "w_scale": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}, where="t")["w"]
    assert np.array_equal(group[0], np.concatenate([q[0, :4] * 1.0, q[0, 4:] * 2.0]))
    assert np.array_equal(group[1], np.concatenate([q[1, :4] * 3.0, q[1, 4:] * 4.0]))
    tensor = Int8Storage({"w": q, "w_scale": np.array(0.5, np.float32)}, where="t")["w"]
    assert np.array_equal(tensor, q * 0.5)
    with pytest.raises(WeightsError, match="does not divide"):
        Int8Storage({"w": q, "w_scale": np.ones((2, 3), np.float32)}, where="t")["w"]
    with pytest.raises(WeightsError, match="no 'w_scale'"):
        Int8Storage({"w": q}, where="t")["w"]


@pytest.mark.parametrize("variant", ["bert", "llama"])
def test_an_int8_checkpoint_runs_as_its_widened_float_weights(tmp_path, variant):
    """The int8 folder gives exactly what a float32 folder of the widened weights gives."""
    src = build_model(variant, tmp_path / "src")
    widened = _store_int8(src, tmp_path / "int8")
    shutil.copytree(src, tmp_path / "float")
    save_file({k: np.ascontiguousarray(v) for k, v in widened.items()}, str(tmp_path / "float" / "model.safetensors"))
    with tinylm.load(tmp_path / "int8", backend="torch") as a, tinylm.load(tmp_path / "float", backend="torch") as b:
        if a.spec.kind == "encoder":
            assert np.array_equal(a.embed(["int8 storage", "hello"]), b.embed(["int8 storage", "hello"]))
        else:
            ids = a.tokenizer.encode("int8 storage")
            assert np.array_equal(a.logits(ids), b.logits(ids))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"quant_method": "gptq"}, "'gptq'"),
        ({"format": "pack-quantized"}, "'pack-quantized'"),
        (
            {
                "config_groups": {
                    "g": {"weights": {**QUANTIZATION_CONFIG["config_groups"]["group_0"]["weights"], "num_bits": 4}}
                }
            },
            "4-bit",
        ),
        (
            {
                "config_groups": {
                    "g": {"weights": {**QUANTIZATION_CONFIG["config_groups"]["group_0"]["weights"], "symmetric": False}}
                }
            },
            "symmetric: False",
        ),
        (
            {
                "config_groups": {
                    "g": {
                        "weights": {**QUANTIZATION_CONFIG["config_groups"]["group_0"]["weights"], "strategy": "block"}
                    }
                }
            },
            "'block'",
        ),
    ],
)
def test_other_quantized_checkpoints_are_refused_at_load(tmp_path, change, message):
    src = build_model("llama", tmp_path / "src")
    _store_int8(src, tmp_path / "q", config_update={**QUANTIZATION_CONFIG, **change})
    with pytest.raises(WeightsError, match=message) as info:
        tinylm.load(tmp_path / "q", backend="torch")
    assert "Fix:" in str(info.value)


def test_zero_points_are_refused(tmp_path):
    src = build_model("llama", tmp_path / "src")
    _store_int8(src, tmp_path / "q")
    tensors = load_file(str(tmp_path / "q" / "model.safetensors"))
    tensors["model.layers.0.mlp.up_proj.weight_zero_point"] = np.zeros((96, 1), np.int8)
    save_file(tensors, str(tmp_path / "q" / "model.safetensors"))
    with pytest.raises(WeightsError, match="zero points"):
        tinylm.load(tmp_path / "q", backend="torch")
