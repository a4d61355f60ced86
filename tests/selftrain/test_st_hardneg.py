"""Hard-negative mining on hand-made scores and verdicts, and the report's honest findings."""

from __future__ import annotations

from rewardranker.records import Sample
from rewardranker.selftrain import mine_hard_negatives
from rewardranker.selftrain.report import findings, markdown_table


def _case(rows):
    """rows: (problem, sample, passed, score)."""
    samples = [Sample(p, i, f"c{i}") for p, i, _, _ in rows]
    passed = {("", p, i): ok for p, i, ok, _ in rows}  # keys: (language, problem_id, sample_id)
    scores = {("", p, i): s for p, i, _, s in rows}
    return samples, passed, scores


def test_failing_sample_above_a_passing_one_of_its_problem_is_hard():
    samples, passed, scores = _case([
        ("a", 0, True, 0.9), ("a", 1, True, 0.2), ("a", 2, False, 0.5), ("a", 3, False, 0.1),
        ("b", 0, True, 5.0), ("b", 1, False, 0.6),  # 0.6 is above a's lowest pass, but b's own pass is 5.0
    ])
    hard = mine_hard_negatives(samples, passed, scores, quantile=1.0)
    assert [(h.problem_id, h.sample_id, h.reason) for h in hard] == [("a", 2, "above_passing")]
    assert hard[0].threshold == 0.2


def test_quantile_catches_problems_where_nothing_passed():
    samples, passed, scores = _case([
        ("a", 0, True, 1.0), ("a", 1, True, 2.0), ("a", 2, True, 3.0),
        ("c", 0, False, 2.5), ("c", 1, False, 1.5), ("c", 2, False, -4.0),
    ])
    hard = mine_hard_negatives(samples, passed, scores, quantile=0.5)  # median passing score = 2.0
    assert [(h.problem_id, h.sample_id, h.reason) for h in hard] == [("c", 0, "above_quantile")]
    assert {h.sample_id for h in mine_hard_negatives(samples, passed, scores, quantile=0.0)} == {0, 1}


def test_no_passing_sample_anywhere_gives_no_hard_negatives():
    samples, passed, scores = _case([("a", 0, False, 3.0), ("a", 1, False, 1.0)])
    assert mine_hard_negatives(samples, passed, scores) == []


def test_ties_with_the_lowest_pass_are_not_hard():
    samples, passed, scores = _case([("a", 0, True, 1.0), ("a", 1, False, 1.0)])
    assert mine_hard_negatives(samples, passed, scores, quantile=1.0) == []


def _row(k, sampled, reranked, fixed):
    return {"iteration": k, "sampled_pass@1": sampled, "reranked_pass@1": reranked, "oracle_pass@n": 60.0,
            "reranked_pass@1_iter0_samples": fixed, "rm_pairwise_acc": 70.0, "rm_auroc": None,
            "hard_negatives": 3 * k, "rm_data": 100, "train_sampled_pass@1": 40.0}


def test_findings_state_a_worse_iteration_2_plainly():
    rows = [_row(0, 30.0, 35.0, 35.0), _row(1, 32.0, 38.0, 36.0), _row(2, 33.0, 36.5, 37.0)]
    notes = findings(rows)
    assert notes[0].startswith("Reranked pass@1 is above sampled pass@1 in 3 of 3")
    assert "WORSE than iteration 1 (-1.50 points)" in notes[1]
    table = markdown_table(rows)
    assert table.count("\n") == 4 and "| 2 | 33.00 | 36.50 |" in table and "| - |" in table
