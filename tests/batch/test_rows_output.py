"""Reading input rows and the resumable output file (no model)."""

from __future__ import annotations

import pytest

from tinylm.batch import OutputFile, read_rows
from tinylm.errors import BatchError

from .conftest import read_jsonl


def test_ids_default_to_line_numbers_and_blank_lines_count(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"id": "x", "prompt": "b"}\n{"prompt": "c"}\n', encoding="utf-8")
    assert [(r.id, r.value) for r in read_rows(path, task="generate")] == [(1, "a"), ("x", "b"), (4, "c")]


@pytest.mark.parametrize(
    ("content", "task", "words"),
    [
        ('{"prompt": "a"}\nnot json\n', "generate", "in.jsonl:2 is not JSON"),
        ('{"text": "a"}\n', "generate", "no 'prompt' field"),
        ('{"messages": "hi"}\n', "chat", "'messages' must be a non-empty list"),
        ('{"id": 2, "text": "a"}\n{"text": "b"}\n', "embed", "the id 2 appears twice"),
        ('{"id": [1], "text": "a"}\n', "embed", "'id' must be a string or an integer"),
    ],
)
def test_bad_input_lines_are_typed_errors_with_a_fix(tmp_path, content, task, words):
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BatchError, match=words) as info:
        read_rows(path, task=task)
    assert "Fix:" in str(info.value)


def test_string_and_integer_ids_stay_distinct(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n', encoding="utf-8")
    assert [r.id for r in read_rows(path, task="embed")] == [1, "1"]


def test_output_writes_each_id_once_and_a_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "out.jsonl"
    with OutputFile.open(path) as out:
        assert out.write([{"id": 1, "text": "a"}, {"id": "x", "text": "b"}, {"id": 1, "text": "again"}]) == 2
    with open(path, "ab") as f:
        f.write(b'{"id": 3, "text": "half a li')  # what kill -9 in the middle of a write leaves
    with OutputFile.open(path) as out:
        assert out.done == {"1", '"x"'}
        assert out.write([{"id": "x", "text": "dup"}, {"id": 3, "text": "c"}]) == 1
    assert read_jsonl(path) == [{"id": 1, "text": "a"}, {"id": "x", "text": "b"}, {"id": 3, "text": "c"}]


def test_an_output_line_that_is_not_a_row_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": 1}\nhello\n', encoding="utf-8")
    with pytest.raises(BatchError, match=r"out.jsonl:2 is not a row"):
        OutputFile.open(path)
