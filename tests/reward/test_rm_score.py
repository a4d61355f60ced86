from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.records import Problem, Sample, Score
from rewardranker.reward.agreement import (
    AgreementConfig,
    agreement_scores,
    group_scores,
    harness,
    parse_bitmask,
)
from rewardranker.reward.score import ScoreConfig, combine, top1


def test_top1_picks_the_highest_score_per_problem_and_the_first_among_ties():
    samples = [Sample("a", 0, "x"), Sample("a", 1, "y"), Sample("a", 2, "z"), Sample("b", 0, "u"), Sample("b", 1, "v")]
    scores = [Score("a", 0, 0.5), Score("a", 1, 2.0), Score("a", 2, 2.0), Score("b", 0, -1.0), Score("b", 1, -3.0)]
    chosen = top1(samples, scores)
    assert [(s.problem_id, s.sample_id, v) for s, v in chosen] == [("a", 1, 2.0), ("b", 0, -1.0)]


def test_top1_with_a_missing_score_is_a_clear_error():
    with pytest.raises(RewardRankerError, match=r"no score.*'a', 1\)"):
        top1([Sample("a", 0, "x"), Sample("a", 1, "y")], [Score("a", 0, 1.0)])


def test_codet_group_score_is_group_size_times_asserts_passed():
    s01, s0, none = frozenset({0, 1}), frozenset({0}), frozenset()
    assert group_scores([s01, s01, s0, s0, s0, none]) == [4.0, 4.0, 3.0, 3.0, 3.0, 0.0]
    samples = [Sample("a", 0, ""), Sample("b", 0, ""), Sample("a", 1, "")]
    assert agreement_scores(samples, [s0, s0, s0]) == [2.0, 1.0, 2.0]


def test_combined_score_lets_the_reward_break_agreement_ties_but_not_big_gaps():
    samples = [Sample("a", i, "") for i in range(4)]
    agreement = [6.0, 6.0, 60.0, 0.0]
    rm = [0.0, 1.0, -1.0, 5.0]
    out = combine(samples, rm, agreement, rm_weight=0.1)
    assert out[1] > out[0]  # tie broken by the reward
    assert max(range(4), key=out.__getitem__) == 2  # the big group still wins


def test_harness_reports_which_asserts_pass_and_survives_hangs_and_crashes(tmp_path):
    problem = Problem("p", "py", "def f(x):\n", "", entry_point="f")
    tests = ["assert f(1) == 2", "assert f(2) == 5", "assert f(-1) == 0", "assert f(g) == 1", "assert f(3) == 4"]
    completion = "    while x < 0:\n        pass\n    return x + 1\n"
    h = harness(problem, tests, AgreementConfig(per_test_timeout_s=0.1))
    program = h.prompt + completion + "\n" + h.tests
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False)
    assert parse_bitmask(run.stdout, len(tests)) == {0, 4}
    assert parse_bitmask("garbage", 5) == frozenset()


def test_score_config_validates_mode_and_model():
    with pytest.raises(ConfigError, match="mode"):
        ScoreConfig(mode="best")
    with pytest.raises(ConfigError, match="model_dir"):
        ScoreConfig(mode="rm")
    assert ScoreConfig(mode="agreement").model_dir is None


def _reranking_file(path, n_problems=3, labels=True):
    rows = []
    for p in range(n_problems):
        row = {"task_id": f"T/{p}", "prompt": f"def f{p}(x):\n", "entry_point": f"f{p}",
               "completions": ["    return x + 1\n", "    return x - 1\n", "    return x + 1\n"],
               "generated_tests": [f"assert f{p}(1) == 2", f"assert f{p}(0) == 1"]}
        if labels:
            row["reference_passed"] = [True, False, True]
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rewardranker", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900, check=False)


@pytest.mark.slow
def test_cli_train_score_rerank_eval_end_to_end(tiny_gpt2, tmp_path):
    data = _reranking_file(tmp_path / "cands.jsonl")
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"backbone: {tiny_gpt2}\nmax_length: 64\nconsensus: tfidf\nbf16: false\n")
    r = _cli("train-rm", "--samples", str(data), "--out", str(tmp_path / "rm"), "--config", str(cfg), "--max-steps", "2")
    assert r.returncode == 0, r.stderr
    r = _cli("score", "--samples", str(data), "--model", str(tmp_path / "rm"), "--out", str(tmp_path / "s.jsonl"))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and set(lines[0]) == {"problem_id", "sample_id", "score", "language"}
    unlabelled = _reranking_file(tmp_path / "unlabelled.jsonl", labels=False)
    r = _cli("score", "--samples", str(unlabelled), "--model", str(tmp_path / "rm"), "--out", str(tmp_path / "u.jsonl"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "u.jsonl").read_text() == (tmp_path / "s.jsonl").read_text()  # labels are never read
    r = _cli("rerank", "--samples", str(data), "--scores", str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "top.jsonl"))
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "top.jsonl").read_text().splitlines()) == 3
    r = _cli("eval", "--samples", str(data), "--scores", f"rm={tmp_path / 's.jsonl'}", "--out", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["overall"]["oracle_pass@n"] == 100.0  # JSON keys carry no spaces
    assert report["run"]["command"] == "eval" and report["run"]["version"]
    assert (tmp_path / "ev" / "pass_at_1.png").stat().st_size > 1000


def test_cli_bad_inputs_fail_with_one_clear_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = _cli("train-rm", "--samples", str(empty), "--out", str(tmp_path / "rm"))
    assert r.returncode == 1 and "no records" in r.stderr and "Traceback" not in r.stderr
    no_pass = tmp_path / "nopass.jsonl"
    rows = [json.loads(x) for x in _reranking_file(tmp_path / "c.jsonl").read_text().splitlines()]
    no_pass.write_text("".join(json.dumps({**row, "reference_passed": [False] * 3}) + "\n" for row in rows))
    r = _cli("train-rm", "--samples", str(no_pass), "--out", str(tmp_path / "rm"))
    assert r.returncode == 1 and "no preference pairs" in r.stderr
    unlabeled = _reranking_file(tmp_path / "u.jsonl", labels=False)
    r = _cli("train-rm", "--samples", str(unlabeled), "--out", str(tmp_path / "rm"))
    assert r.returncode == 1 and "no labels" in r.stderr
    scores = tmp_path / "s.jsonl"
    scores.write_text(json.dumps({"problem_id": "other", "sample_id": 0, "score": 1.0}) + "\n")
    r = _cli("rerank", "--samples", str(unlabeled), "--scores", str(scores), "--out", str(tmp_path / "t.jsonl"))
    assert r.returncode == 1 and "have no score" in r.stderr
    r = _cli("score", "--samples", str(unlabeled), "--mode", "rm", "--out", str(scores))
    assert r.returncode == 1 and "model_dir" in r.stderr


def test_soft_agreement_rewards_near_identical_behaviour_and_ignores_silent_candidates():
    from rewardranker.reward.agreement import soft_agreement

    a, a_noisy, b, none = frozenset({0, 1, 2}), frozenset({0, 1, 2, 3}), frozenset({4}), frozenset()
    # exact groups: {a} x1, {a_noisy} x1, {b} x2 -> CodeT prefers... sizes 3, 4, 2, 2; soft sees a ~ a_noisy
    scores = soft_agreement([a, a_noisy, b, b, none])
    assert scores[4] == 0.0
    assert scores[0] == pytest.approx((1 + 3 / 4) * 3 ** 0.5)
    assert scores[2] == pytest.approx(2 * 1 ** 0.5)
    assert min(scores[0], scores[1]) > scores[2]


def test_agreement_mode_runs_candidates_through_the_executor(tmp_path):
    from rewardranker.execution import ExecutionConfig
    from rewardranker.problems import load_candidates
    from rewardranker.reward.score import score_candidates

    path = tmp_path / "c.jsonl"
    row = {"task_id": "T/0", "prompt": "def f(x):\n", "entry_point": "f",
           "completions": ["    return x + 1\n", "    return x - 1\n", "    return x + 1\n", "    while True: pass\n"],
           "generated_tests": ["assert f(1) == 2", "assert f(0) == 1", "assert f(5) == 4"]}
    path.write_text(json.dumps(row) + "\n")
    cands = load_candidates(path)
    exec_cfg = ExecutionConfig(workers=1, cache_path=tmp_path / "cache.sqlite")
    scores = score_candidates(cands, ScoreConfig(mode="agreement"), exec_cfg=exec_cfg, progress=False)
    assert [s.score for s in scores] == [4.0, 1.0, 4.0, 0.0]  # group of 2 x 2 asserts; 1 x 1; the hang: none
