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


def _diff(d):
    return {"diff": d, "ci95": [d - 1.0, d + 1.0], "problems": 10}


def _row(k, sampled, reranked, exploitation=None, robust=None):
    row = {"iteration": k, "problems": 10, "sampled_pass@1": sampled, "reranked_pass@1": reranked,
           "sampled_vs_sft": _diff(sampled - 30.0), "reranked_vs_iter0": _diff(reranked - 35.0),
           "fixed_reranked_pass@1": 35.0, "fixed_vs_rm0": _diff(0.0), "per_language": {}}
    if k:
        row["exploitation"] = exploitation
        row["robust_ranked_pass@1"] = _diff(robust)
        row["robust_pairwise_acc"] = row["robust_auroc"] = _diff(robust)
    return row


def test_findings_name_the_broken_link_plainly():
    rows = [_row(0, 30.0, 35.0), _row(1, 32.0, 38.0, exploitation=40.0, robust=2.0),
            _row(2, 33.0, 36.5, exploitation=45.0, robust=-1.0)]
    notes = findings(rows)
    assert "Exploitation does NOT fall from iteration 1 to 2: 40.00 -> 45.00 (+5.00 points)." in notes
    assert any("RM_2 vs RM_1" in n and "(NOT a gain)" in n for n in notes)
    assert notes[-1].startswith("Chain breaks: exploitation does not fall at iteration 2; RM_2 is not more robust")
    table = markdown_table(rows)
    assert table.count("\n") == 4 and "| 2 | 45.00 | -1.00 [-2.00, +0.00] |" in table


def test_findings_say_the_chain_holds_when_every_link_does():
    rows = [_row(0, 30.0, 35.0), _row(1, 32.0, 38.0, exploitation=40.0, robust=2.0),
            _row(2, 33.0, 39.0, exploitation=30.0, robust=3.0)]
    assert findings(rows)[-1] == "Chain holds in this run."


def test_failures_scored_above_the_reference_solution_are_hard_even_when_nothing_passed():
    samples, passed, scores = _case([("a", 0, False, 3.0), ("a", 1, False, 1.0)])
    hard = mine_hard_negatives(samples, passed, scores, reference_scores={("", "a"): 2.0})
    assert [(h.sample_id, h.reason, h.threshold) for h in hard] == [(0, "above_passing", 2.0)]
