"""Infrastructure failures (threat model item 7) and robustness: InfraError is retried once on a fresh sandbox,
never cached, left out of metrics and training labels; overloaded timeouts are re-run; leftovers of killed or
concurrent executors, bad samples files and NUL bytes never break a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from rewardranker import metrics
from rewardranker.execution import ExecutionConfig, execute, runner, sandbox
from rewardranker.records import Problem, Sample

KILL_PARENT = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nraise SystemExit(1)\n"


def _run(programs: list[tuple[str, str]], cfg: ExecutionConfig) -> dict:
    problems = {name: Problem(name, "py", "", "") for name, _ in programs}
    samples = [Sample(name, 0, text) for name, text in programs]
    return {v.problem_id: v for v in execute(problems, samples, cfg, progress=False)}


def test_a_sandbox_that_dies_is_infra_error_retried_never_cached(tmp_path, monkeypatch):
    """Without the seccomp filters (a switch for benchmarks only) a program can kill its supervisor: that is
    InfraError after one retry on a fresh sandbox, not a verdict; it is not cached and the next program in the
    same worker is judged normally."""
    cfg = ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite", timeout_s=5.0, seccomp=False)
    asked: list[str] = []
    real_ask = sandbox.Sandbox._ask

    def counting_ask(self, req, timeout_s):
        asked.append(req["argv"][-1])
        return real_ask(self, req, timeout_s)

    monkeypatch.setattr(sandbox.Sandbox, "_ask", counting_ask)
    programs = [("killer", KILL_PARENT), ("after/ok", "assert 1 + 1 == 2\n"), ("after/wrong", "assert 1 + 1 == 3\n")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _run(programs, cfg)
    assert first["killer"].status == "InfraError" and not first["killer"].passed, first["killer"]
    assert "sandbox died" in first["killer"].stderr
    assert any("InfraError" in str(w.message) for w in caught)
    assert first["after/ok"].passed and first["after/wrong"].status == "Exception"
    assert len(asked) == 4  # killer twice (one retry), then the two innocent programs
    second = _run(programs, cfg)
    assert not second["killer"].cached and second["killer"].status == "InfraError"
    assert second["after/ok"].cached and second["after/wrong"].cached

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = metrics.group_outcomes(second.values())
    assert sorted(o.problem_id for o in outcomes) == ["after/ok", "after/wrong"]  # not in any denominator
    assert any("InfraError" in str(w.message) for w in caught)


def test_one_sandbox_death_is_retried_on_a_fresh_sandbox(tmp_path, monkeypatch):
    cfg = ExecutionConfig(workers=1, use_cache=False, timeout_s=5.0)
    real_ask = sandbox.Sandbox._ask
    deaths: list[int] = []

    def dying_ask(self, req, timeout_s):  # kill the live supervisor from outside, once
        if not deaths and self.proc is not None:
            deaths.append(self.proc.pid)
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        return real_ask(self, req, timeout_s)

    monkeypatch.setattr(sandbox.Sandbox, "_ask", dying_ask)
    v = _run([("warm", "pass\n"), ("flaky", "print('judged')\n")], cfg)
    assert deaths and v["flaky"].status == "OK" and v["flaky"].stdout == "judged\n", v["flaky"]


def test_a_timeout_on_an_overloaded_machine_is_run_again_before_caching(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    calls: list[str] = []
    real = runner._run_item_once

    def counting(slot, item, fast):
        calls.append(item.program)
        return real(slot, item, fast)

    monkeypatch.setattr(runner, "_run_item_once", counting)
    cfg = ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite", timeout_s=1.0)
    v = _run([("spin", "while True:\n    pass\n"), ("quick", "assert True\n")], cfg)
    assert v["spin"].status == "Timeout" and len(calls) == 3  # spin twice, quick once
    assert _run([("spin", "while True:\n    pass\n")], cfg)["spin"].cached  # the re-run's Timeout is cached


# ------------------------------------------------------------------ robustness
def test_job_dirs_a_program_or_a_crash_left_never_stop_a_run(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    (root / "j1").mkdir()
    (root / "j1-2").symlink_to(victim)
    fd = sandbox.open_dir(root)
    try:
        name = sandbox.make_job_dir(fd, "j1", None)
        assert name == "j1-3" and (root / name).is_dir() and not (root / name).is_symlink()
        # a tree with links out, a FIFO, a mode-000 directory and nesting deeper than the recursion limit
        job = root / name
        os.symlink(victim, job / "link")
        os.mkfifo(job / "fifo")
        (job / "locked").mkdir()
        (job / "locked" / "f").write_text("x")
        os.chmod(job / "locked", 0)
        deep_fd = os.open(job, os.O_RDONLY)
        for _ in range(1500):
            os.mkdir("d", dir_fd=deep_fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=deep_fd)
            os.close(deep_fd)
            deep_fd = nxt
        os.close(deep_fd)
        sandbox.remove_tree(fd, name)
        sandbox.remove_tree(fd, "j1-2")  # a link: removed as a link
    finally:
        os.close(fd)
    assert sorted(os.listdir(root)) == ["j1"] and (victim / "keep").read_text() == "keep"


def test_publish_ignores_leftovers_of_killed_executors(tmp_path):
    src = tmp_path / "tool.js"
    src.write_text("x")
    (tmp_path / "probe").mkdir()
    name = sandbox.publish(tmp_path / "probe", src, "tool").name  # the folder name this content version gets
    box = tmp_path / "box"
    box.mkdir()
    # what killed executors left: their pid-named staging folders (and a file) for this very content version
    for pid in (os.getpid(), os.getpid() + 1):
        (box / f"{name}.tmp{pid}").mkdir()
    (box / f".{name}.tmpleft").write_text("")
    published = sandbox.publish(box, src, "tool")
    assert published.name == name and (published / "tool.js").read_text() == "x"
    assert oct(published.stat().st_mode & 0o777) == "0o755"


def test_uid_blocks_never_collide(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("uid blocks are only used as root")
    with runner._uid_block() as a, runner._uid_block() as b:
        assert set(a).isdisjoint(b)
    mine = os.getpid() % runner.UID_BLOCKS
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open('{runner.UID_LOCKS}/block-{mine}', os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with runner._uid_block() as c:  # another process (e.g. one whose pid maps to the same block) holds it
            assert c != runner.uid_block() and len(c) == 2 * runner.MAX_WORKERS
    finally:
        holder.kill()
        holder.wait()


def test_bad_samples_file_is_one_line_error(tmp_path):
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"name": "p", "language": "py", "prompt": "", "tests": "", "stop_tokens": []})
                        + "\n")
    cases = {"latin1.jsonl": b'{"problem_id": "p", "sample_id": 0, "completion": "x"}\n'
                             b'{"problem_id": "p", "sample_id": 1, "completion": "caf\xe9"}\n',
             "nul.jsonl": b'{"problem_id": "p", "sample_id": 0, "completion": "a\x00b"}\n'}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        p = subprocess.run([sys.executable, "-m", "rewardranker", "execute", "--problems", str(problems),
                            "--samples", str(path), "--out", str(tmp_path / "v.jsonl"), "--workers", "1"],
                           capture_output=True, text=True, check=False)
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        assert p.returncode == 1 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        line = 2 if name == "latin1.jsonl" else 1
        assert f"{name}:{line}:" in lines[0], lines[0]


def test_nul_in_a_python_program_behaves_as_plain_python3(tmp_path):
    program = "print('before')\nx = 1\x00\nassert x == 1\n"
    f = tmp_path / "prog.py"
    f.write_text(program)
    ref = subprocess.run(["/usr/bin/python3", str(f)], capture_output=True, text=True, check=False)
    v = _run([("nul", program)], ExecutionConfig(workers=1, use_cache=False))["nul"]
    last = ref.stderr.strip().splitlines()[-1]  # CPython 3.11's tokenizer: "SyntaxError: invalid decimal literal"
    assert v.exit_code == ref.returncode == 1 and last.startswith("SyntaxError"), (ref.stderr, v)
    assert v.status == "SyntaxError" and v.stderr.strip().splitlines()[-1] == last, v


def test_bwrap_failing_to_start_a_plain_run_is_infra_error_not_the_programs_failure(tmp_path, monkeypatch):
    """MultiPL-E's per-program commands (fast=False) start a new bwrap per program; when bwrap itself fails (seen:
    "Can't fork for pid 1" while the last program's processes still counted against the uid's limit) the program
    was not judged: InfraError, retried once, never an `Exception` verdict for the program."""
    fake = tmp_path / "bwrap-that-fails"
    fake.write_text("#!/bin/sh\necho \"bwrap: Can't fork for pid 1: Resource temporarily unavailable\" >&2\nexit 1\n")
    fake.chmod(0o755)
    programs = [("plain/ok", "assert 1 + 1 == 2\n"), ("plain/wrong", "assert 1 + 1 == 3\n")]
    cfg = ExecutionConfig(workers=1, fast=False, use_cache=False, timeout_s=5.0)
    judged = _run(programs, cfg)
    assert judged["plain/ok"].passed and judged["plain/wrong"].status == "Exception"  # the real bwrap judges

    monkeypatch.setattr(sandbox, "BWRAP", str(fake))
    with pytest.warns(UserWarning, match="2 of 2 programs hit an infrastructure failure"):
        failed = _run(programs, cfg)
    for v in failed.values():
        assert v.status == "InfraError" and not v.passed, v
        assert "bwrap failed" in v.stderr
