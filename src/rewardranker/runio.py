"""JSONL reading and writing with errors that name file and line, plus run-directory helpers."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rewardranker.errors import RecordError, RewardRankerError


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
    if path.is_dir():
        raise RecordError(path, None, None, "is a folder; expected a JSONL file")
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


def check_output(out: str | Path, *inputs: str | Path | None, option: str = "--out") -> Path:
    """Refuse an output path that is one of the inputs (it would replace them) or an existing folder."""
    out = Path(out)
    if out.is_dir():
        raise RewardRankerError(f"{option} {out} is a folder; give a file path")
    for given in inputs:
        if given is None or not str(given) or not Path(given).exists():
            continue
        if out.exists() and os.path.samefile(out, given) or out.resolve() == Path(given).resolve():
            raise RewardRankerError(f"{option} {out} is also an input ({given}); writing it would replace that "
                                    "input: choose another output path")
    return out


def check_output_folder(out: str | Path, option: str = "--out") -> Path:
    """Refuse an output folder path that is an existing file (it would fail midway, after the work)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RewardRankerError(f"{option} {out} is a file; give a folder path")
    return out


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records atomically: a temporary file is renamed over the target, so a crash loses nothing."""
    return _write_atomically(path, (json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _write_atomically(path: str | Path, chunks: Iterable[str]) -> Path:
    """Write text to a temporary file beside `path` (gzip if it ends in .gz), fsync it, rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        with _open_text(tmp, "wt") as f:
            f.writelines(chunks)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _tmp_beside(path: Path) -> Path:
    """A fresh temporary name in the target's folder (same file system, so the rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (".gz" if path.suffix == ".gz" else ""),
                                dir=path.parent)
    os.close(fd)
    return Path(name)


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records and fsync; used by resumable stages that write as they go."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
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
    return _write_atomically(path, [json.dumps(obj, indent=2, ensure_ascii=False) + "\n"])


def json_keys(obj: Any) -> Any:
    """The same data with every dict key free of spaces ("ranked pass@1" -> "ranked_pass@1"), for JSON outputs."""
    if isinstance(obj, dict):
        return {str(k).replace(" ", "_"): json_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_keys(v) for v in obj]
    return obj


def run_metadata(command: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What produced a JSON output: package version, the command line, its settings, and the UTC date."""
    import datetime
    import shlex
    import sys

    from rewardranker import __version__

    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    return {"version": __version__, "command": command, "argv": shlex.join(argv),
            "config": json_keys({k: str(v) if isinstance(v, Path) else v for k, v in (config or {}).items()}),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def write_report(path: str | Path, report: dict[str, Any], command: str, config: dict[str, Any] | None = None) -> Path:
    """Write a JSON report with space-free keys and a `run` block of metadata (version, command, config, date)."""
    return write_json(path, {**json_keys(report), "run": run_metadata(command, config)})


def open_shared_sqlite(path: Path, schema: str, tries: int = 50):
    """A SQLite store several processes share (WAL, 60 s busy timeout, explicit commits), its schema created.

    Two processes that open a new file at the same moment can both need its exclusive lock to switch it to WAL;
    SQLite then answers one of them "database is locked" at once, without waiting, so opening is retried.
    """
    import random
    import sqlite3
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(tries):
        db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(schema)
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) and "busy" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(random.uniform(0.01, 0.1))
    raise AssertionError("unreachable")
