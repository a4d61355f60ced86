"""The verdict cache: repeated runs cost nothing, and a run SIGKILLed mid-way resumes to identical verdicts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from exec_helpers import uid_processes

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.execution.runner import uid_block
from rewardranker.records import Problem, Sample


def _samples(n: int) -> tuple[Problem, list[Sample]]:
    problem = Problem("slow", "py", "import time\n", "")
    # distinct programs (the cache is keyed by content), a mix of outcomes, each taking ~0.15 s
    bodies = ["time.sleep(0.15)\nassert {i} % 3 != 0\n", "time.sleep(0.15)\nprint({i})\n",
              "time.sleep(0.15)\nx = (\n"]
    return problem, [Sample("slow", i, bodies[i % 3].format(i=i)) for i in range(n)]


def test_repeated_run_is_served_from_cache(tmp_path):
    problem, samples = _samples(6)
    cfg = ExecutionConfig(workers=2, cache_path=tmp_path / "c.sqlite")
    first = execute([problem], samples, cfg, progress=False)
    started = time.monotonic()
    second = execute([problem], samples, cfg, progress=False)
    assert time.monotonic() - started < 0.5
    assert not any(v.cached for v in first) and all(v.cached for v in second)
    strip = lambda vs: [(v.status, v.passed, v.exit_code, v.stdout, v.program_hash) for v in vs]
    assert strip(first) == strip(second)
    assert [v.status for v in first[:3]] == ["Exception", "OK", "SyntaxError"]


def test_sigkilled_run_resumes_with_identical_verdicts(tmp_path):
    problem, samples = _samples(60)
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"name": "slow", "language": "py", "prompt": problem.prompt, "tests": "",
                                    "stop_tokens": []}) + "\n")
    sfile = tmp_path / "s.jsonl"
    sfile.write_text("".join(json.dumps({"problem_id": s.problem_id, "sample_id": s.sample_id,
                                         "completion": s.completion}) + "\n" for s in samples))
    cache, out = tmp_path / "c.sqlite", tmp_path / "v.jsonl"
    cmd = [sys.executable, "-m", "rewardranker", "execute", "--problems", str(problems), "--samples", str(sfile),
           "--out", str(out), "--workers", "2", "--cache", str(cache)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _rows(cache) < 10:  # kill once some verdicts are committed, well before the end
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _rows(cache)
    assert 10 <= killed_at < 60 and not out.exists()
    for _ in range(100):  # bwrap's --die-with-parent and pid-namespace teardown are asynchronous
        if not uid_processes(uid_block(proc.pid)):
            break
        time.sleep(0.05)
    assert not uid_processes(uid_block(proc.pid)), "sandboxes outlived the killed run"
    assert sqlite3.connect(cache).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum(r["cached"] for r in resumed) >= killed_at
    fresh = execute([problem], samples, ExecutionConfig(workers=2, cache_path=tmp_path / "fresh.sqlite"),
                    progress=False)
    key = lambda r: (r["sample_id"], r["status"], r["passed"], r["exit_code"], r["stdout"])
    assert [key(r) for r in resumed] == [(v.sample_id, v.status, v.passed, v.exit_code, v.stdout) for v in fresh]
    assert _rows(cache) == len({s.completion for s in samples})  # identical programs share one entry


def _rows(cache) -> int:
    if not cache.exists():
        return 0
    try:
        return sqlite3.connect(f"file:{cache}?mode=ro", uri=True).execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _open_cache_when_released(path: str, barrier) -> str:
    """Open a VerdictCache at `path` the moment all processes are ready; '' on success, else the error."""
    from rewardranker.execution import VerdictCache

    barrier.wait()
    try:
        VerdictCache(path).close()
        return ""
    except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
        return repr(e)


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path):
    """Ray actors on two nodes open one new cache file together; SQLite refuses one of them at once unless retried."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    errors = []
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        for trial in range(15):
            barrier = manager.Barrier(4)
            path = str(tmp_path / f"new-{trial}.sqlite")
            errors += [e for e in pool.starmap(_open_cache_when_released, [(path, barrier)] * 4) if e]
    assert errors == []
