"""The safetensors reader: memory-mapped, bf16 widened exactly, every lie in a file caught."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from tinylm.errors import WeightsError
from tinylm.weights import CheckpointWeights, SafetensorsFile, weight_files


def test_reads_what_safetensors_wrote(tmp_path):
    tensors = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(5, dtype=np.float16)}
    save_file(tensors, tmp_path / "model.safetensors")
    f = SafetensorsFile(tmp_path / "model.safetensors")
    assert sorted(f.keys()) == ["a", "b"]
    np.testing.assert_array_equal(f.get("a"), tensors["a"])
    assert f.get("b").dtype == np.float16
    a = f.get("a")
    assert not a.flags.owndata and not a.flags.writeable  # a view of the read-only map, not a copy


def test_bfloat16_is_widened_exactly(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 65280.0], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact: these values fit in bf16
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bf16.tobytes())
    np.testing.assert_array_equal(SafetensorsFile(tmp_path / "model.safetensors").get("w"), values)


def _write(path, header: dict, data: bytes, header_len: int | None = None):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", header_len if header_len is not None else len(raw)) + raw + data)


@pytest.mark.parametrize(
    "header,data,header_len,match",
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "ends at byte 16"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, b"\0" * 16, None, "spans 12 bytes"),
        ({"w": {"dtype": "F32", "shape": [4]}}, b"\0" * 16, None, "malformed"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 10**9, "header length"),
        ({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, b"\0", None, "dtype Q4"),
    ],
    ids=["truncated", "size-lie", "malformed", "header-too-long", "unknown-dtype"],
)
def test_lying_files_are_typed_errors(tmp_path, header, data, header_len, match):
    path = tmp_path / "model.safetensors"
    _write(path, header, data, header_len)
    with pytest.raises(WeightsError, match=match) as err:
        SafetensorsFile(path)
    assert "model.safetensors" in str(err.value) and "Fix" in str(err.value)


def test_tiny_and_non_json_files(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"abc")
    with pytest.raises(WeightsError, match="shorter"):
        SafetensorsFile(path)
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(WeightsError, match="JSON"):
        SafetensorsFile(path)


def test_pickle_only_folders_are_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(WeightsError, match="never loads pickle"):
        weight_files(tmp_path)


def test_shards_are_all_required(tmp_path):
    save_file({"a": np.zeros(2, np.float32)}, tmp_path / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="00002-of-00002"):
        weight_files(tmp_path)
    save_file({"b": np.ones(2, np.float32)}, tmp_path / "model-00002-of-00002.safetensors")
    weights = CheckpointWeights(weight_files(tmp_path))
    assert sorted(weights) == ["a", "b"] and weights["b"].sum() == 2
