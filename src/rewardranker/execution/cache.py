"""Verdict cache: SQLite in WAL mode, keyed by the program's content hash + language + timeout + toolchain.

Each finished program is committed within about half a second, so a run killed with SIGKILL loses at most the
programs in flight; WAL keeps the database consistent across such a kill, and several processes (parallel
runs by different people) may share one cache file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rewardranker.runio import content_hash, open_shared_sqlite

_SCHEMA = """CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY, status TEXT NOT NULL, passed INTEGER NOT NULL, exit_code INTEGER,
    duration_s REAL NOT NULL, stderr TEXT NOT NULL, stdout TEXT NOT NULL, created REAL NOT NULL)"""
_FIELDS = ("status", "passed", "exit_code", "duration_s", "stderr", "stdout")
UNCACHED = frozenset({"InfraError"})  # the program was not judged: run it again next time
SANDBOX_VERSION = "2"  # bumped when the sandbox changes what a program can do (v2: seccomp, clean state), so
# verdicts a program could forge under an older sandbox are not reused


def default_cache_path() -> Path:
    """$REWARDRANKER_CACHE, else ~/.cache/rewardranker/verdicts.sqlite."""
    env = os.environ.get("REWARDRANKER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rewardranker" / "verdicts.sqlite"


def cache_key(program_hash: str, language: str, timeout_s: float, toolchain: str, sandboxed: bool) -> str:
    """What makes two executions interchangeable: same program text, language, limits and toolchain."""
    return content_hash(program_hash, language, f"{timeout_s:g}", toolchain,
                        f"sandbox-v{SANDBOX_VERSION}" if sandboxed else "plain")


class VerdictCache:
    """A key -> verdict-fields store. Use from one thread; commits are batched by time."""

    def __init__(self, path: Path, commit_every_s: float = 0.5):
        self.path = Path(path)
        self.db = open_shared_sqlite(self.path, _SCHEMA)
        self.commit_every_s = commit_every_s
        self._pending: list[tuple] = []
        self._last_commit = time.monotonic()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        """Cached fields for whichever of `keys` are present."""
        out: dict[str, dict] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            rows = self.db.execute(f"SELECT key, {', '.join(_FIELDS)} FROM verdicts WHERE key IN "
                                   f"({', '.join('?' * len(chunk))})", chunk).fetchall()
            for row in rows:
                out[row[0]] = dict(zip(_FIELDS, row[1:]))
                out[row[0]]["passed"] = bool(out[row[0]]["passed"])
        return out

    def put(self, key: str, fields: dict) -> None:
        """Queue one verdict; it is committed within `commit_every_s`. InfraError verdicts are not stored."""
        if fields["status"] in UNCACHED:
            return
        self._pending.append((key, *(fields[f] for f in _FIELDS), time.time()))
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            with self.db:  # one transaction
                self.db.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting for it
                self.db.executemany(f"INSERT OR REPLACE INTO verdicts (key, {', '.join(_FIELDS)}, created) "
                                    f"VALUES ({', '.join('?' * (len(_FIELDS) + 2))})", self._pending)
            self._pending.clear()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.db.close()

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
