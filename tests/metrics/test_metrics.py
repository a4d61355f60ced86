from __future__ import annotations

import json
from math import comb

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.metrics import (auroc, bootstrap_ci, group_outcomes, pairwise_accuracy, pass_at_k,
                                  ranked_pass_at_1, summarize, top1_index)
from rewardranker.records import Score, Verdict


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (100, 7, 10), (5, 0, 1), (5, 5, 3), (20, 18, 5)])
def test_pass_at_k_matches_the_combinatorial_definition(n, c, k):
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_edge_cases_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # C(2,2)/C(4,2)
    assert pass_at_k(3, 0, 2) == 0.0
    assert pass_at_k(3, 2, 2) == 1.0  # n - c < k
    assert pass_at_k(3, 1, 5) is None  # k > n is undefined, never silently 0


def test_ranked_pass_at_1_breaks_ties_by_expectation():
    assert ranked_pass_at_1([0.9, 0.1, 0.5], [True, False, False]) == 1.0
    assert ranked_pass_at_1([0.9, 0.1, 0.5], [False, True, True]) == 0.0
    assert ranked_pass_at_1([1, 1, 1, 0], [True, False, False, True]) == pytest.approx(1 / 3)
    assert top1_index([0.2, 0.7, 0.7]) == 1


def test_pairwise_accuracy_and_auroc():
    assert pairwise_accuracy([3, 2, 1], [True, True, False]) == 1.0
    assert pairwise_accuracy([1, 2, 3], [True, True, False]) == 0.0
    assert pairwise_accuracy([1, 1], [True, False]) == 0.5
    assert pairwise_accuracy([1, 2], [True, True]) is None
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)


def test_bootstrap_interval_contains_the_mean():
    lo, hi = bootstrap_ci([0, 1] * 50)
    assert lo < 0.5 < hi and hi - lo < 0.3


def _verdicts(spec):
    return [Verdict(pid, i, "OK" if p else "Exception", p, language=lang)
            for pid, lang, ps in spec for i, p in enumerate(ps)]


def test_summary_overall_and_per_language():
    verdicts = _verdicts([("a", "py", [True, False]), ("b", "cpp", [False, False])])
    scores = [Score("a", 0, 1.0), Score("a", 1, 0.0), Score("b", 0, 0.3), Score("b", 1, 0.3)]
    with pytest.warns(UserWarning, match="pass@10 is undefined"):
        report = summarize(group_outcomes(verdicts, scores), ks=(1, 10))
    overall = report["overall"]
    assert overall["pass@1"] == pytest.approx(25.0)
    assert overall["pass@10"] is None
    assert overall["ranked pass@1"] == pytest.approx(50.0)
    assert overall["oracle pass@n"] == pytest.approx(50.0)
    assert report["per_language"]["py"]["ranked pass@1"] == 100.0


def test_missing_score_is_an_error():
    from rewardranker.errors import RewardRankerError

    with pytest.raises(RewardRankerError, match="no entry for problem 'a'"):
        group_outcomes(_verdicts([("a", "py", [True, False])]), [Score("a", 0, 1.0)])


def test_metrics_cli_prints_table_and_writes_json(tmp_path):
    v = tmp_path / "v.jsonl"
    v.write_text("".join(json.dumps({"problem_id": "a", "sample_id": i, "status": "OK", "passed": i == 0,
                                     "language": "py"}) + "\n" for i in range(4)))
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["metrics", "--verdicts", str(v), "--k", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["overall"]["pass@1"] == pytest.approx(25.0)


def test_metrics_cli_bad_file_is_one_clear_line(tmp_path):
    v = tmp_path / "v.jsonl"
    v.write_text('{"problem_id": "a", "sample_id": 0, "status": "OK"}\n')
    result = CliRunner().invoke(app, ["metrics", "--verdicts", str(v)])
    assert result.exit_code == 1
    assert "v.jsonl:1: field 'passed' is missing" in result.output
