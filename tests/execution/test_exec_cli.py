"""`rewardranker execute` through typer's CliRunner: happy paths and clear errors for malformed input."""

from __future__ import annotations

import json

import pytest
from exec_helpers import SHARED
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.errors import ConfigError, RewardRankerError, SandboxError
from rewardranker.execution import ExecutionConfig, execute
from rewardranker.records import Problem, Sample

runner = CliRunner()
PY_PROBLEMS = SHARED / "multipl-e" / "humaneval-py-reworded.jsonl"


def _write(path, lines):
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


def _run(*args):
    return runner.invoke(app, ["execute", *map(str, args)])


def test_execute_multipl_e_samples(tmp_path):
    samples = _write(tmp_path / "s.jsonl", [
        {"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "    return x + y\n"},
        {"problem_id": "HumanEval_53_add", "sample_id": 1, "completion": "    return x * y\n"},
        {"problem_id": "HumanEval_53_add", "sample_id": 2, "completion": "    return (\n"},
    ])
    out = tmp_path / "v.jsonl"
    res = _run("--problems", PY_PROBLEMS, "--samples", samples, "--out", out, "--workers", 2,
               "--cache", tmp_path / "c.sqlite")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["sample_id"], r["status"], r["passed"]) for r in rows] == [
        (0, "OK", True), (1, "Exception", False), (2, "SyntaxError", False)]
    assert {"problem_id", "exit_code", "duration_s", "stderr", "stdout", "program_hash", "cached"} <= set(rows[0])
    again = _run("--problems", PY_PROBLEMS, "--samples", samples, "--out", out, "--cache", tmp_path / "c.sqlite")
    assert again.exit_code == 0 and "(3 from cache)" in again.output


def test_execute_reranking_layout_needs_no_problems(tmp_path):
    line = json.loads((SHARED / "reranking" / "humaneval-codegen16b-dev.jsonl").open().readline())
    line["completions"], line["reference_passed"] = line["completions"][:3], line["reference_passed"][:3]
    samples = _write(tmp_path / "r.jsonl", [line])
    out = tmp_path / "v.jsonl"
    res = _run("--samples", samples, "--out", out, "--timeout", 3, "--cache", tmp_path / "c.sqlite")
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["passed"] for r in rows] == line["reference_passed"]


@pytest.mark.parametrize("lines, expected", [
    ([{"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "x"}, "{not json"], "s.jsonl:2"),
    ([{"problem_id": "HumanEval_53_add", "sample_id": 0}], "field 'completion'"),
    ([{"problem_id": "HumanEval_53_add", "sample_id": "zero", "completion": "x"}], "field 'sample_id'"),
    ([{"problem_id": "no_such_problem", "sample_id": 0, "completion": "x"}], "no_such_problem"),
])
def test_malformed_samples_give_a_clear_error(tmp_path, lines, expected):
    samples = _write(tmp_path / "s.jsonl", lines)
    res = _run("--problems", PY_PROBLEMS, "--samples", samples, "--out", tmp_path / "v.jsonl",
               "--cache", tmp_path / "c.sqlite")
    assert res.exit_code == 1 and expected in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "v.jsonl").exists()


def test_malformed_problems_file_names_file_and_line(tmp_path):
    problems = _write(tmp_path / "p.jsonl", [{"name": "a", "language": "cobol", "prompt": "", "tests": "",
                                              "stop_tokens": []}])
    samples = _write(tmp_path / "s.jsonl", [{"problem_id": "a", "sample_id": 0, "completion": "x"}])
    res = _run("--problems", problems, "--samples", samples, "--out", tmp_path / "v.jsonl")
    assert res.exit_code == 1 and "p.jsonl:1" in res.output and "language" in res.output


def test_samples_without_problems_need_problems_option(tmp_path):
    samples = _write(tmp_path / "s.jsonl", [{"problem_id": "a", "sample_id": 0, "completion": "x"}])
    res = _run("--samples", samples, "--out", tmp_path / "v.jsonl")
    assert res.exit_code == 1 and "--problems" in res.output


def test_refuses_to_run_unsandboxed_without_the_flag(tmp_path):
    p = Problem("p", "py", "", "")
    with pytest.raises(SandboxError, match="unsafe-no-sandbox"):
        execute([p], [Sample("p", 0, "pass\n")], ExecutionConfig(sandbox=False, cache_path=tmp_path / "c"))
    v = execute([p], [Sample("p", 0, "print('hi')\n")],
                ExecutionConfig(sandbox=False, allow_unsandboxed=True, cache_path=tmp_path / "c"), progress=False)[0]
    assert v.passed and v.stdout == "hi\n"


def test_config_is_validated():
    with pytest.raises(ConfigError, match="workers"):
        ExecutionConfig(workers=0)
    with pytest.raises(ConfigError, match="timeout_s"):
        ExecutionConfig(timeout_s=-1)
    with pytest.raises(RewardRankerError, match="missing"):
        execute([], [Sample("missing", 0, "x")], ExecutionConfig(cache_path=None, use_cache=False))
