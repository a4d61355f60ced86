"""The procedural task suite: split by composition, MultiPL-E shapes, and references that pass through the executor."""

from __future__ import annotations

import pytest

from rewardranker.errors import RewardRankerError
from rewardranker.execution import ExecutionConfig, execute
from rewardranker.problems import load_problems, truncate
from rewardranker.records import Sample
from rewardranker.tasks import SUITE_LANGUAGES, split_compositions
from rewardranker.tasks.grammar import Composition
from rewardranker.tasks.render import cases_for, reference_function


def _ops(comp: Composition) -> set[str]:
    return {op.kind for op in (comp.filter, comp.map) if op} | {comp.reducer.kind}


def test_heldout_compositions_are_new_but_every_operation_is_trained():
    split = split_compositions()
    train_kinds = {c.kind_key for c in split["train"]}
    heldout_kinds = {c.kind_key for c in split["heldout"]}
    assert heldout_kinds and not train_kinds & heldout_kinds
    trained_ops = set().union(*(_ops(c) for c in split["train"]))
    assert set().union(*(_ops(c) for c in split["heldout"])) <= trained_ops
    assert 0.1 < len(split["heldout"]) / len(split["all"]) < 0.25


def test_loader_specs_give_disjoint_problem_sets_per_language():
    train = load_problems("procedural:train:py")
    heldout = load_problems("procedural:heldout:py")
    assert {p.language for p in train} == {"py"}
    assert not {p.problem_id for p in train} & {p.problem_id for p in heldout}
    assert not {p.prompt for p in train} & {p.prompt for p in heldout}
    everything = load_problems("procedural")
    assert len(everything) == len(SUITE_LANGUAGES) * (len(train) + len(heldout))


@pytest.mark.parametrize("spec", ["procedural:test", "procedural:train:rb", "procedural:train:py:extra"])
def test_bad_specs_are_refused(spec):
    with pytest.raises(RewardRankerError, match="procedural"):
        load_problems(spec)


def test_prompts_are_multipl_e_shaped_and_solutions_contain_no_stop_token():
    for p in load_problems("procedural:train")[:300]:
        assert p.canonical_solution and p.entry_point in p.prompt
        assert truncate(p.canonical_solution, p.stop_tokens) == p.canonical_solution
        if p.language == "py":
            assert p.prompt.rstrip().endswith('"""') and p.tests.rstrip().endswith("test_check()")
            assert p.canonical_solution.count("\n") == 1  # a one-liner the small model can learn
        elif p.language == "js":
            assert p.prompt.startswith("//") and p.prompt.endswith("{\n") and "assert.deepEqual" in p.tests
        else:
            assert p.prompt.startswith("<?php\n//") and p.tests.startswith("function candidate(...$args)")


def test_description_and_expected_outputs_agree():
    comp = next(c for c in split_compositions()["all"] if c.name == "even_square_sum")
    assert comp.description == "Keep the even numbers, square each, and return the sum."
    assert reference_function(comp)([1, 2, 3, 4, -2]) == 4 + 16 + 4
    assert all(isinstance(expected, int) for _, expected in cases_for(comp))


def _run(problems, completions):
    samples = [Sample(p.problem_id, 0, c) for p, c in zip(problems, completions)]
    return execute(problems, samples, ExecutionConfig(workers=2, use_cache=False), progress=False)


@pytest.mark.slow
def test_every_reference_solution_passes_in_every_language():
    problems = load_problems("procedural")
    verdicts = _run(problems, [p.canonical_solution for p in problems])
    failed = [(v.problem_id, v.status, v.stderr[:200]) for v in verdicts if not v.passed]
    assert not failed, failed[:5]


def _wrong_partner(problems):
    """For each problem, another problem's solution whose function gives a different answer on the tests."""
    by_name = {c.name: c for c in split_compositions()["all"]}
    out = []
    for p in problems:
        comp = by_name[p.entry_point]
        cases = cases_for(comp)[1:]
        for q in problems:
            other = by_name[q.entry_point]
            if q.language == p.language and other.family == comp.family and other is not comp:
                fn = reference_function(other)
                if any(fn(list(a)) != e for a, e in cases):
                    out.append(q.canonical_solution.replace(f"{q.entry_point}(", f"{p.entry_point}("))
                    break
    return out


def test_wrong_solutions_fail_in_every_language():
    problems = load_problems("procedural:heldout")[::7]
    assert {p.language for p in problems} == set(SUITE_LANGUAGES)
    verdicts = _run(problems, _wrong_partner(problems))
    assert not [v.problem_id for v in verdicts if v.passed]
    null = {"py": "    return None\n", "js": "  return null;\n}", "php": "    return null;\n}"}
    verdicts = _run(problems, [null[p.language] for p in problems])
    assert not [v.problem_id for v in verdicts if v.passed]


def test_validation_split_is_carved_out_of_train_by_composition():
    train = load_problems("procedural:train:py")
    fit, validation = load_problems("procedural:fit:py"), load_problems("procedural:validation:py")
    assert {p.problem_id for p in fit} | {p.problem_id for p in validation} == {p.problem_id for p in train}
    assert not {p.problem_id for p in fit} & {p.problem_id for p in validation}
    kinds = {name: {c.kind_key for c in split_compositions()[name]} for name in ("fit", "validation", "heldout")}
    assert kinds["validation"] and not kinds["fit"] & kinds["validation"] and not kinds["validation"] & kinds["heldout"]
    assert 0.1 < len(validation) / len(train) < 0.25
