"""Run-directory I/O: atomic writes keep the old file when writing fails, gzip by suffix, torn-tail tolerance."""

from __future__ import annotations

import gzip
import json

import pytest

from rewardranker.errors import RecordError
from rewardranker.runio import read_jsonl, read_jsonl_tolerant, write_json, write_jsonl


def _records():
    yield {"problem_id": "a", "language": "py"}
    raise RuntimeError("generator failed midway")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_jsonl(tmp_path / "samples.jsonl", [{"problem_id": "old"}])
    with pytest.raises(RuntimeError):
        write_jsonl(path, _records())
    assert read_jsonl(path) == [{"problem_id": "old"}]
    assert [p.name for p in tmp_path.iterdir()] == ["samples.jsonl"]


def test_gz_suffix_writes_gzip_and_json_is_indented(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl.gz", [{"k": "é"}, {"k": 2}])
    assert gzip.decompress(path.read_bytes()).decode() == '{"k": "é"}\n{"k": 2}\n'
    assert read_jsonl(path) == [{"k": "é"}, {"k": 2}]
    doc = write_json(tmp_path / "m.json", {"a": [1]})
    assert json.loads(doc.read_text()) == {"a": [1]} and "\n  " in doc.read_text()


def test_tolerant_read_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_jsonl_tolerant(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(RecordError, match=r"log.jsonl:2: not valid JSON"):
        read_jsonl_tolerant(path)
