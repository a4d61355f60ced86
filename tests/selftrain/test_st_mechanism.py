"""The chain metrics on hand-made candidates: exploitation, on-policy robustness, pooling seeds, paired intervals."""

from __future__ import annotations

import pytest

from rewardranker.selftrain import mechanism as mech
from rewardranker.selftrain.mechanism import ProblemCandidates as PC
from rewardranker.selftrain.steps import dedup_programs


def _table(rows):
    """rows: problem -> (passed list, scores list), all Python."""
    return {pid: PC("py", list(p), list(s)) for pid, (p, s) in rows.items()}


# RM_{k-1} ("prev") puts a failing program first on problems a and b; RM_k ("cur") fixes a.
PREV = _table({"a": ([True, False, False], [0.1, 0.9, 0.2]), "b": ([True, False], [0.0, 1.0]),
               "c": ([True, True], [1.0, 0.0])})
CUR = _table({"a": ([True, False, False], [0.8, 0.5, 0.2]), "b": ([True, False], [0.0, 1.0]),
              "c": ([True, True], [1.0, 0.0])})


def test_exploitation_is_the_share_of_problems_whose_top1_fails():
    assert mech.value(mech.units(PREV, "top1_fails")) == pytest.approx(66.67)
    assert mech.value(mech.units(CUR, "top1_fails")) == pytest.approx(33.33)


def test_pairwise_accuracy_pools_pairs_and_auroc_averages_problems():
    # prev: a has 2 pairs, 1 right (0.1 > 0.2 is wrong, 0.1 > 0.9 wrong) -> 0 of 2; b: 0 of 1; c has no pair
    assert mech.value(mech.units(PREV, "pairwise")) == 0.0
    # cur: a 2 of 2, b 0 of 1 -> 2/3 pooled; within-problem AUROC (1 + 0) / 2
    assert mech.value(mech.units(CUR, "pairwise")) == pytest.approx(66.67)
    assert mech.value(mech.units(CUR, "auroc_within")) == 50.0


def test_robustness_difference_and_its_paired_interval():
    t = {"cur": CUR, "prev": PREV, "base": PREV, "fixed": CUR}
    m = mech.mechanism(t)
    assert m["exploitation"] == pytest.approx(66.67)
    d = m["robust_ranked_pass@1"]
    assert d["diff"] == pytest.approx(33.33) and d["problems"] == 3
    assert d["ci95"][0] <= d["diff"] <= d["ci95"][1] and d["ci95"][1] > d["ci95"][0]
    assert m["robust_pairwise_acc"]["diff"] == pytest.approx(66.67)
    same = mech.paired_diff(mech.units(CUR, "ranked"), mech.units(CUR, "ranked"))
    assert same["diff"] == 0.0 and same["ci95"] == [0.0, 0.0]


def test_pooling_seeds_sums_per_problem_units():
    pooled = mech.pool([mech.units(PREV, "ranked"), mech.units(CUR, "ranked")])
    assert pooled["a"] == (1.0, 2.0)
    assert mech.value(pooled) == pytest.approx(50.0)


def test_per_language_units_keep_only_that_language():
    table = {**CUR, "js1": PC("js", [True, False], [0.0, 1.0])}
    assert set(mech.units(table, "ranked", "js")) == {"js1"}
    assert mech.languages({"cur": table}) == ["py", "js"]


def test_dedup_keeps_one_record_per_program_with_the_largest_weight():
    recs = [{"problem_id": "a", "sample_id": 1, "completion": "    return x\n", "passed": False, "weight": 1.0,
             "origin": "sample"},
            {"problem_id": "a", "sample_id": 7, "completion": "    return x   \n\n", "passed": False, "weight": 3.0,
             "origin": "hard_negative"},
            {"problem_id": "b", "sample_id": 2, "completion": "    return x\n", "passed": True, "weight": 1.0,
             "origin": "sample"}]
    out = dedup_programs(recs)
    assert [(r["problem_id"], r["sample_id"], r["weight"], r["origin"]) for r in out] == [
        ("a", 1, 3.0, "hard_negative"), ("b", 2, 1.0, "sample")]


def test_pooled_candidates_show_an_rm_fooled_by_a_policy_that_never_passes():
    sft = _table({"a": ([True, False], [0.5, 0.0])})
    collapsed = _table({"a": ([False, False], [2.0, 2.0])})  # RM_{k-1} loves the degenerate program
    fixed = _table({"a": ([False, False], [-1.0, -1.0])})  # RM_k has learned it fails
    u = {"cur": mech.merge(fixed, sft), "prev": mech.merge(collapsed, sft)}
    assert mech.value(mech.units(u["prev"], "top1_fails")) == 100.0
    assert mech.value(mech.units(u["cur"], "ranked")) == 100.0


def _write_run(run_dir, passed, scores):
    """A run directory with iteration 0's held-out verdicts and RM_0 scores for one Python problem."""
    import json

    for sub, rows in (("eval_execute/verdicts.jsonl",
                       [{"problem_id": "p", "sample_id": i, "language": "py", "status": "OK" if ok else "Exception",
                         "passed": ok} for i, ok in enumerate(passed)]),
                      ("eval_score/scores.jsonl",
                       [{"problem_id": "p", "sample_id": i, "language": "py", "score": s} for i, s in enumerate(scores)])):
        path = run_dir / "iter_0" / sub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_pooled_units_sum_a_problem_over_run_directories(tmp_path):
    _write_run(tmp_path / "seed0", [True, False], [0.9, 0.1])  # ranked top-1 passes
    _write_run(tmp_path / "seed1", [True, False], [0.1, 0.9])  # ranked top-1 fails
    u = mech.pooled_units([tmp_path / "seed0", tmp_path / "seed1"], 0)
    assert set(u) == {"cur", "base"}
    assert u["cur"]["ranked"][("py", "p")] == (1.0, 2.0)
    assert mech.value(u["cur"]["sampled"]) == 50.0


def test_status_shares_pool_verdict_files_in_percent(tmp_path):
    _write_run(tmp_path / "seed0", [True, False], [0.9, 0.1])
    _write_run(tmp_path / "seed1", [True, True], [0.1, 0.9])
    paths = [tmp_path / f"seed{s}/iter_0/eval_execute/verdicts.jsonl" for s in (0, 1)]
    assert mech.status_shares(paths) == {"Exception": 25.0, "OK": 75.0}
    assert mech.status_shares([]) == {}
