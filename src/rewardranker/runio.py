"""JSONL reading and writing with errors that name file and line, plus run-directory helpers."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from rewardranker.errors import RecordError


def _open_text(path: Path, mode: str = "rt"):
    return gzip.open(path, mode, encoding="utf-8") if path.suffix == ".gz" else open(path, mode, encoding="utf-8")


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line as text; a line that is not UTF-8 or holds a NUL byte is a RecordError naming file and line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(path, lineno, None, f"is not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                              f"{e.start + 1})") from None
    if "\0" in line:
        raise RecordError(path, lineno, None, f"holds a NUL byte at column {line.index(chr(0)) + 1} (write it "
                                              "as \\u0000 inside a JSON string)")
    return line


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; gzip-aware.

    Raises RecordError naming the file and line for a line that is not a JSON object.
    A truncated last line (a run killed mid-write) is also reported, never silently skipped, and so are bytes
    that are not UTF-8 and raw NUL bytes.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError(path, None, None, "file does not exist")
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = _decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(path, lineno, None, f"not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise RecordError(path, lineno, None, f"expected a JSON object, found {type(obj).__name__}")
            yield lineno, obj


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole JSONL file as a list of dicts."""
    return [obj for _, obj in iter_jsonl(path)]


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records atomically: a temporary file is renamed over the target, so a crash loses nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _open_text(tmp, "wt") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records and fsync; used by resumable stages that write as they go."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl_tolerant(path: str | Path) -> list[dict[str, Any]]:
    """Read an append-only log written by this project, dropping only a torn final line.

    A SIGKILL during `append_jsonl` can leave a partial last line; every earlier line must parse.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines) or (lineno == len(lines) - 1 and lines[-1] == ""):
                break
            raise RecordError(path, lineno, None, "not valid JSON in the middle of the file") from None
    return out


def content_hash(*parts: str) -> str:
    """SHA-256 hex digest of the parts, separated so that ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p.encode("utf-8"))
    return h.hexdigest()


def write_json(path: str | Path, obj: Any) -> Path:
    """Write one JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
