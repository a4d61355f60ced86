"""Every language: correct solutions pass, wrong ones fail, syntax errors are SyntaxError (MultiPL-E's rules)."""

from __future__ import annotations

import pytest
from exec_helpers import multipl_e, sample
from exec_solutions import PROBLEMS, SOLUTIONS, SYNTAX_ERRORS

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.records import LANGUAGES


@pytest.mark.parametrize("lang", LANGUAGES)
def test_correct_pass_wrong_fail_syntax_error(lang, tmp_path):
    problems = multipl_e(lang, PROBLEMS)
    samples, expected = [], []
    for name in PROBLEMS:
        good, bad = SOLUTIONS[lang][name]
        samples += [sample(f"{lang}/{name}", 0, good), sample(f"{lang}/{name}", 1, bad)]
        expected += [("OK", True), (None, False)]
    samples.append(sample(f"{lang}/HumanEval_53_add", 2, SYNTAX_ERRORS[lang]))
    expected.append(("SyntaxError", False))
    verdicts = execute(problems, samples, ExecutionConfig(workers=2, cache_path=tmp_path / "c.sqlite"), progress=False)
    for v, (status, passed) in zip(verdicts, expected):
        where = f"{v.problem_id}#{v.sample_id}: {v.status} exit={v.exit_code} stderr={v.stderr[:400]!r}"
        assert v.passed is passed, where
        assert v.language == lang
        if status:
            assert v.status == status, where
        else:  # a wrong answer fails at run time: never a SyntaxError, never OK-with-exit-0
            assert v.status in ("Exception", "OK") and not (v.status == "OK" and v.exit_code == 0), where
    assert [(v.problem_id, v.sample_id) for v in verdicts] == [(s.problem_id, s.sample_id) for s in samples]


def test_failed_csharp_assert_is_exception_with_exit_zero(tmp_path):
    """Mono exits 0 on a failed Debug.Assert; MultiPL-E decides by the trace listener's stderr. (The strict
    rule's harness assertion throws instead: exit 1.)"""
    problems = multipl_e("cs", ("HumanEval_53_add",))
    samples = [sample("cs/HumanEval_53_add", 0, "        return 0;\n")]
    v = execute(problems, samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite",
                                                   verdict_rule="multipl-e"), progress=False)[0]
    assert (v.status, v.exit_code, v.passed) == ("Exception", 0, False)
    assert "DefaultTraceListener.Fail" in v.stderr
    strict = execute(problems, samples, ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)[0]
    assert (strict.status, strict.exit_code, strict.passed) == ("Exception", 1, False)


def test_php_parse_error_on_stderr_is_syntax_error(tmp_path):
    """Debian's php.ini prints 'PHP Parse error' on stderr, where MultiPL-E looks on stdout: we check both."""
    problems = multipl_e("php", ("HumanEval_53_add",))
    v = execute(problems, [sample("php/HumanEval_53_add", 0, "    return $x +;\n}\n")],
                ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)[0]
    assert v.status == "SyntaxError" and "PHP Parse error" in v.stderr


def test_stdout_is_captured_and_capped(tmp_path):
    problems = multipl_e("py", ("HumanEval_53_add",))
    body = "    print('result: ok')\n    print('x' * 100000)\n    return x + y\n"
    v = execute(problems, [sample("py/HumanEval_53_add", 0, body)],
                ExecutionConfig(workers=1, cache_path=tmp_path / "c.sqlite"), progress=False)[0]
    assert v.passed and v.stdout.startswith("result: ok\n") and 1000 < len(v.stdout) <= 2048
