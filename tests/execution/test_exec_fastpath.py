"""The amortised path (PCH, persistent javac / tsc / mcs, Python fork server) gives the same verdicts as
MultiPL-E's plain per-program commands."""

from __future__ import annotations

import pytest
from exec_helpers import multipl_e, sample
from exec_solutions import PROBLEMS, SOLUTIONS, SYNTAX_ERRORS

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.records import Problem, Sample

# TypeScript programs whose global declarations collide with lib.d.ts (tsc then reports errors inside the lib
# files, which the persistent compiler must not skip), one that augments a global, and one that is fine.
TS_GLOBALS = {
    "collide": 'function escape(s: string): string { return s; }\nconst name = 3;\nlet q: number = escape("a");\n',
    "augment": 'declare global { interface String { bar(): void } }\nexport {};\nconsole.log("x".length);\n',
    "redeclare": "var NaN = 3;\nfunction parseInt(x: number): number { return x; }\n",
    "fine": "const xs: number[] = [1, 2, 3];\nconsole.log(xs.map((x) => x * 2).join(','));\n",
}


def _key(verdicts):
    return [(v.problem_id, v.sample_id, v.status, v.passed, v.exit_code) for v in verdicts]


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["py", "cpp", "java", "ts", "cs"])
def test_fast_path_matches_per_program_commands(lang, tmp_path):
    problems = multipl_e(lang, PROBLEMS)
    samples = [sample(f"{lang}/{n}", i, c) for n in PROBLEMS for i, c in enumerate(SOLUTIONS[lang][n])]
    samples.append(sample(f"{lang}/HumanEval_53_add", 2, SYNTAX_ERRORS[lang]))
    if lang == "ts":
        problems.update({f"ts/{k}": Problem(f"ts/{k}", "ts", "", "") for k in TS_GLOBALS})
        samples += [Sample(f"ts/{k}", 0, text) for k, text in TS_GLOBALS.items()]
    # one generous timeout on both sides: on a loaded machine a per-program `tsc` can pass MultiPL-E's 15 s
    timeout = 60 if lang == "ts" else None
    fast = execute(problems, samples, ExecutionConfig(workers=2, cache_path=tmp_path / "f.sqlite", timeout_s=timeout),
                   progress=False)
    plain = execute(problems, samples, ExecutionConfig(workers=2, fast=False, use_cache=False, timeout_s=timeout),
                    progress=False)
    assert _key(fast) == _key(plain)
    if lang == "ts":
        by_id = {v.problem_id: v for v in fast}
        assert [by_id[f"ts/{k}"].status for k in TS_GLOBALS] == ["SyntaxError", "OK", "SyntaxError", "OK"]
        assert "lib.dom.d.ts" in by_id["ts/collide"].stderr  # the lib file's own error is reported
