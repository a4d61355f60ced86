from __future__ import annotations

import pytest

from rewardranker.errors import RewardRankerError
from rewardranker.records import Problem, Sample
from rewardranker.reward.evaluate import collect, evaluate, kfold_problems, plot_pass_at_1, plot_reliability


def test_kfold_by_problem_never_puts_a_problem_in_train_and_eval():
    ids = [f"p{i}" for i in range(23)]
    folds = kfold_problems(ids * 3, k=5, seed=1)
    assert len(folds) == 5
    seen = []
    for train, ev in folds:
        assert not set(train) & set(ev) and set(train) | set(ev) == set(ids)
        seen += ev
    assert sorted(seen) == sorted(ids)
    with pytest.raises(RewardRankerError, match="k-fold"):
        kfold_problems(ids, k=1)


def _rows():
    problems = {p: Problem(p, "py", "", "") for p in ("a", "b")}
    samples = [Sample("a", i, "", language="py") for i in range(4)] + [Sample("b", i, "", language="py") for i in range(2)]
    passed = {("py", "a", 0): False, ("py", "a", 1): True, ("py", "a", 2): False, ("py", "a", 3): False,
              ("py", "b", 0): False, ("py", "b", 1): False}
    good = {("py", "a", 0): 0.0, ("py", "a", 1): 5.0, ("py", "a", 2): 1.0, ("py", "a", 3): 1.0, ("py", "b", 0): 0.0,
            ("py", "b", 1): 0.0}
    tied = {k: 0.0 for k in passed}
    return problems, samples, passed, {"rm": good, "agreement": tied}


def test_report_has_random_ranked_oracle_and_pairwise_numbers():
    problems, samples, passed, scores = _rows()
    report = evaluate(collect(problems, samples, passed, scores))["overall"]
    assert report["random pass@1"] == pytest.approx(12.5)  # (1/4 + 0) / 2
    assert report["oracle pass@n"] == pytest.approx(50.0)
    assert report["modes"]["rm"]["ranked pass@1"] == pytest.approx(50.0)
    assert report["modes"]["agreement"]["ranked pass@1"] == pytest.approx(12.5)  # all tied: expectation
    assert report["modes"]["rm"]["pairwise accuracy"] == pytest.approx(1.0)
    assert report["modes"]["rm"]["vs agreement"] == pytest.approx(37.5)


def test_mismatched_ids_are_reported(tmp_path):
    problems, samples, passed, scores = _rows()
    del scores["rm"][("py", "a", 2)]
    with pytest.raises(RewardRankerError, match=r"mode 'rm' have no entry.*\('py', 'a', 2\)"):
        collect(problems, samples, passed, scores)
    del passed[("py", "b", 1)]
    with pytest.raises(RewardRankerError, match=r"no verdict.*\('py', 'b', 1\)"):
        collect(problems, samples, passed, {})


def test_plots_are_written(tmp_path):
    problems, samples, passed, scores = _rows()
    rows = collect(problems, samples, passed, scores)
    assert plot_pass_at_1(evaluate(rows), tmp_path / "p.png").stat().st_size > 1000
    assert plot_reliability(rows, ["rm"], tmp_path / "r.png").stat().st_size > 1000
