"""One AUROC: within-problem, averaged over problems that have passing and failing candidates; `metrics --scores`
and `eval --scores` print the same number for the same scores."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from rewardranker.cli import app
from rewardranker.metrics import within_problem_auroc


def test_within_problem_auroc_by_hand():
    a = ([3.0, 1.0, 2.0], [True, False, False])  # passing on top: 1.0
    b = ([0.0, 5.0, 5.0], [True, False, True])  # pairs (0 vs 5) wrong, (5 vs 5) tie: 0.25
    c = ([1.0, 2.0], [True, True])  # one class only: left out
    assert within_problem_auroc([a, b, c]) == pytest.approx((1.0 + 0.25) / 2)
    assert within_problem_auroc([c]) is None
    # a per-problem offset (what a Bradley-Terry reward is free to have) does not change it
    shifted = ([s + 100 for s in a[0]], a[1])
    assert within_problem_auroc([shifted, b]) == within_problem_auroc([a, b])


def _files(tmp_path):
    """Four problems (one without a passing candidate) whose pooled AUROC differs from the within-problem one."""
    rows = [("HumanEval/0", [True, False, False, True], [9.0, 8.0, 7.0, 6.5]),
            ("HumanEval/2", [False, True, False, False], [0.1, 0.3, 0.2, 0.0]),
            ("HumanEval/4", [True, True, False, False], [-3.0, -5.0, -4.0, -6.0]),
            ("HumanEval/6", [False, False, False, False], [1.0, 2.0, 3.0, 4.0])]
    samples, verdicts, scores = tmp_path / "c.jsonl", tmp_path / "v.jsonl", tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": pid, "prompt": "def f(x):\n", "entry_point": "f",
                                           "completions": [f"    return {i}\n" for i in range(4)],
                                           "reference_passed": passed}) + "\n" for pid, passed, _ in rows))
    verdicts.write_text("".join(json.dumps({"problem_id": pid, "sample_id": i, "status": "OK" if p else "Exception",
                                            "passed": p, "language": "py"}) + "\n"
                                for pid, passed, _ in rows for i, p in enumerate(passed)))
    scores.write_text("".join(json.dumps({"problem_id": pid, "sample_id": i, "score": s}) + "\n"
                              for pid, _, ss in rows for i, s in enumerate(ss)))
    return samples, verdicts, scores


def test_metrics_and_eval_print_the_same_auroc(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at full width
    samples, verdicts, scores = _files(tmp_path)
    m = CliRunner().invoke(app, ["metrics", "--verdicts", str(verdicts), "--scores", str(scores), "--k", "1",
                                 "--json", str(tmp_path / "m.json")])
    assert m.exit_code == 0, m.output
    e = CliRunner().invoke(app, ["eval", "--samples", str(samples), "--scores", f"rm={scores}",
                                 "--out", str(tmp_path / "ev")])
    assert e.exit_code == 0, e.output
    expected = (0.5 + 1.0 + 0.75) / 3  # HumanEval/6 has no passing candidate: left out
    from_metrics = json.loads((tmp_path / "m.json").read_text())["overall"]["AUROC"]
    from_eval = json.loads((tmp_path / "ev" / "report.json").read_text())["overall"]["modes"]["rm"]["AUROC"]
    assert from_metrics == from_eval == pytest.approx(expected)
    printed = f"{expected:.3f}"
    assert re.search(rf"\b{printed}\b", m.output) and re.search(rf"\b{printed}\b", e.output), (m.output, e.output)
