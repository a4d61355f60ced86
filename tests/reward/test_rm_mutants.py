from __future__ import annotations

import ast
import json
import random

from rewardranker.problems import load_problems
from rewardranker.records import Problem
from rewardranker.reward.mutants import build_mutant_samples, build_rm_data, mutate

BODY = "    total = 0\n    for x in xs:\n        if x > 2:\n            total += x * 2\n    return total\n"


def test_mutants_are_distinct_parseable_single_changes_printed_like_the_reference():
    reference, muts = mutate(BODY, 8, random.Random(0))
    assert reference == "    total = 0\n    for x in xs:\n        if x > 2:\n            total += x * 2\n    return total\n"
    assert len(muts) == 8 and len(set(muts)) == 8 and reference not in muts
    for m in muts:
        ast.parse("def f(xs):\n" + m)
        assert m.startswith("    ")


def test_reference_is_sample_zero_and_problems_without_solution_are_skipped():
    problems = [Problem("a", "py", "def f(xs):\n", "", canonical_solution=BODY), Problem("b", "py", "def g():\n", "")]
    samples = build_mutant_samples(problems, per_problem=3)
    assert {s.problem_id for s in samples} == {"a"}
    assert [s.sample_id for s in samples] == [0, 1, 2, 3]


def test_mbpp_mutants_are_labelled_by_execution(shared_data, tmp_path):
    problems = load_problems(shared_data / "mbpp" / "mbpp-sanitized.jsonl")[:2]
    stats = build_rm_data(problems, tmp_path, per_problem=4, progress=False)
    assert stats["references_passing"] == 2
    verdicts = [json.loads(x) for x in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert any(not v["passed"] for v in verdicts)
    assert len(load_problems(tmp_path / "problems.jsonl")) == 2
