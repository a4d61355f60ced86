"""The verdict-rule plumbing: CLI option, cache keys, record fields, broken test files, training call sites."""

from __future__ import annotations

import json

from exec_helpers import SHARED
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.execution import ExecutionConfig, execute
from rewardranker.records import Problem, Sample

runner = CliRunner()
PY_PROBLEMS = SHARED / "multipl-e" / "humaneval-py-reworded.jsonl"

# A bash test file without `set -e`: MultiPL-E's rule sees only the exit status of the last command (`true`),
# so every sample of this problem passes under it, wrong ones included.
BROKEN_SH_TESTS = ('}\n\ncandidate() {\n    add "$@"\n}\n\nrun_test() {\n'
                   '    [[ $(candidate "0" "1") = "1" ]]\n    [[ $(candidate "2" "3") = "5" ]]\n    true\n}\n\n'
                   'run_test\n')


def test_broken_bash_test_file_does_not_pass_every_sample(tmp_path):
    problem = Problem("broken_sh", "sh", "#!/bin/bash\nadd() {\n", BROKEN_SH_TESTS)
    samples = [Sample("broken_sh", 0, "    echo $(( $1 * $2 ))\n"), Sample("broken_sh", 1, "    echo $(( $1 + $2 ))\n")]
    strict = execute([problem], samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)
    lenient = execute([problem], samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite",
                                                          verdict_rule="multipl-e"), progress=False)
    assert [v.passed for v in lenient] == [True, True]
    assert [(v.status, v.passed) for v in strict] == [("Exception", False), ("OK", True)]
    assert not any(v.cached for v in lenient)  # the rule is part of the cache key


def test_strict_verdicts_are_cached_under_their_own_key_and_carry_both_rules(tmp_path):
    problem = Problem("p", "py", "def f():\n", "assert f() == 1\n")
    samples = [Sample("p", 0, "    return 1\n"), Sample("p", 1, "    return 2\nimport os\nos._exit(0)\n")]
    cfg = ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite")
    first = execute([problem], samples, cfg, progress=False)
    again = execute([problem], samples, cfg, progress=False)
    for vs in (first, again):
        assert [(v.status, v.passed, v.passed_multipl_e, v.verdict_rule) for v in vs] == [
            ("OK", True, True, "strict"), ("Tampered", False, True, "strict")]
    assert all(v.cached for v in again) and not any(v.cached for v in first)


def test_tests_of_an_unknown_shape_run_under_multipl_e_and_say_so(tmp_path):
    problem = Problem("c", "cpp", "#include <cstdlib>\nint f() {\n", "}\nint run() { return f(); }\n"
                      "int main() { return run() == 1 ? 0 : 1; }\n")
    v = execute([problem], [Sample("c", 0, "    return 1;\n")],
                ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)[0]
    assert (v.passed, v.verdict_rule) == (True, "strict")  # `int main() {` is there: instrumented
    java = Problem("j", "java", "class Problem {\n", "}\n")
    w = execute([java], [Sample("j", 0, "    public static void main(String[] a) {}\n")],
                ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)[0]
    assert (w.passed, w.verdict_rule) == (True, "multipl-e")  # no main in the tests: nothing to instrument


def test_cli_verdict_rule_and_the_difference_line(tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(x) + "\n" for x in [
        {"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "    return x + y\n"},
        {"problem_id": "HumanEval_53_add", "sample_id": 1, "completion": "    return 0\nimport sys\nsys.exit(0)\n"}]))
    out = tmp_path / "v.jsonl"
    args = ["execute", "--problems", str(PY_PROBLEMS), "--samples", str(samples), "--out", str(out),
            "--workers", "1", "--cache", str(tmp_path / "c.sqlite")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # rich wraps long lines
    assert "1 passed (strict rule)" in text and "rule would pass 2: 1 program(s) exit 0" in text, text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["status"], r["passed"], r["passed_multipl_e"]) for r in rows] == [
        ("OK", True, True), ("Tampered", False, True)]
    res = runner.invoke(app, [*args, "--verdict-rule", "multipl-e"])
    assert res.exit_code == 0 and "2 passed (multipl-e rule)" in " ".join(res.output.split())
    bad = runner.invoke(app, [*args, "--verdict-rule", "lenient"])
    assert bad.exit_code == 1 and "verdict_rule" in bad.output and "Traceback" not in bad.output


def test_training_paths_refuse_or_pin_the_strict_rule(tmp_path):
    import pytest

    from rewardranker.errors import ConfigError
    from rewardranker.reward.mutants import build_rm_data
    from rewardranker.selftrain.config import SelfTrainConfig

    with pytest.raises(ConfigError, match="strict"):
        build_rm_data([], tmp_path, exec_cfg=ExecutionConfig(verdict_rule="multipl-e"))
    with pytest.raises(ConfigError, match="execution.verdict_rule"):
        SelfTrainConfig(execution={"verdict_rule": "multipl-e"}).stage_configs()


# Programs that patch the interpreter state the fork server once used to decide the exit status. A plain
# `python3 FILE` run fails each of them; the fork server must agree (item 4 of the threat list).
FORK_SERVER_STATE = {
    "patch_os_exit": "    return 0\nimport os\n_real = os._exit\nos._exit = lambda code: _real(0)\n",
    "fake_traceback": "    return 0\nimport sys, types, os\nm = types.ModuleType('traceback')\n"
                      "m.print_exception = lambda *a, **k: os._exit(0)\nsys.modules['traceback'] = m\n",
    "patch_system_exit": "    return 0\nimport builtins\nbuiltins.SystemExit = BaseException\n",
    "fake_atexit": "    return 0\nimport sys, types, os\nm = types.ModuleType('atexit')\n"
                   "m._run_exitfuncs = lambda: os._exit(0)\nsys.modules['atexit'] = m\n",
    "int_subclass_exit_code": "    return 0\nclass C(int):\n    def __and__(self, other):\n        return 0\n"
                              "raise SystemExit(C(1))\n",
    "patch_print": "    return 0\nimport builtins, os\nbuiltins.print = lambda *a, **k: os._exit(0)\nraise SystemExit('no')\n",
    "fake_sys_modules": "    return 0\nimport sys, os\nclass M(dict):\n    def get(self, *a):\n        os._exit(0)\n"
                        "sys.modules = M(sys.modules)\n",
    "sys_exit_0": "    return 0\nimport sys\nsys.exit(0)\n",  # passes in both (MultiPL-E's rule)
    "correct": "    return x + y\n",
}


def test_fork_server_exit_status_matches_plain_python3(tmp_path):
    from exec_helpers import multipl_e, sample

    problems = multipl_e("py", ("HumanEval_53_add",))
    samples = [sample("py/HumanEval_53_add", i, c) for i, c in enumerate(FORK_SERVER_STATE.values())]
    runs = [execute(problems, samples, ExecutionConfig(workers=1, use_cache=False, fast=fast, verdict_rule="multipl-e"),
                    progress=False) for fast in (True, False)]
    fast, plain = ([(v.status, v.passed, v.exit_code) for v in vs] for vs in runs)
    assert fast == plain, list(zip(FORK_SERVER_STATE, fast, plain))
    assert [p for p, _ in zip(FORK_SERVER_STATE, fast) if _[1]] == ["sys_exit_0", "correct"]


def test_python_tests_behind_a_main_guard_cannot_be_skipped(tmp_path):
    tests = "def check(candidate):\n    assert candidate() == 1\n\nif __name__ == '__main__':\n    check(f)\n"
    problem = Problem("guard", "py", "def f():\n", tests)
    samples = [Sample("guard", 0, "    return 2\n__name__ = 'skip'\n"), Sample("guard", 1, "    return 1\n")]
    verdicts = execute([problem], samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"),
                       progress=False)
    assert [(v.status, v.passed) for v in verdicts] == [("Tampered", False), ("OK", True)]


def test_python_tests_use_the_builtins_from_before_the_program(tmp_path):
    problem = Problem("absp", "py", "def f():\n", "def check(candidate):\n    assert abs(candidate() - 0.5) < 1e-6\n\n"
                      "check(f)\n")
    samples = [Sample("absp", 0, "    return 7.0\nimport builtins\nbuiltins.abs = lambda x: 0\n"),
               Sample("absp", 1, "    return 7.0\ndef abs(x):\n    return 0\n"), Sample("absp", 2, "    return 0.5\n")]
    lenient, strict = (execute([problem], samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite",
                                                                   verdict_rule=rule), progress=False)
                       for rule in ("multipl-e", "strict"))
    assert [v.passed for v in lenient] == [True, True, True]
    assert [(v.status, v.passed) for v in strict] == [("Exception", False), ("Exception", False), ("OK", True)]


def test_python_objects_whose_comparisons_are_python_code_are_tampered(tmp_path):
    problem = Problem("eq", "py", "def f():\n", "def check(candidate):\n    assert candidate() == 3\n\ncheck(f)\n")
    samples = [Sample("eq", 0, "    import fractions\n    fractions.Fraction.__eq__ = lambda s, o: True\n"
                               "    return fractions.Fraction(1, 2)\n"),
               Sample("eq", 1, "    class A:\n        __module__ = 'collections'\n"
                               "        def __eq__(self, other):\n            return True\n    return A()\n"),
               Sample("eq", 2, "    return 3\n")]
    verdicts = execute([problem], samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)
    assert [(v.status, v.passed) for v in verdicts] == [("Tampered", False), ("Tampered", False), ("OK", True)]
