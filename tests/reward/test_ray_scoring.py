"""Reward-model scoring on scorer actors of a real two-node Ray cluster gives the local scores, in order."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import toy_task

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.problems import CandidateSet
from rewardranker.records import Sample
from rewardranker.reward import RewardConfig, RewardModel, train_reward_model
from rewardranker.reward.score import ScoreConfig, score_candidates

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'rewardranker[ray]')")

from rewardranker.execution import ray_backend
from rewardranker.reward.ray_scoring import RayRewardModel, shard_by_problem


def test_shards_hold_whole_problems_and_balance_counts():
    _, samples, _ = toy_task(n_problems=5, n_good=2, n_bad=1)
    shards = shard_by_problem(samples[:-1], 2)  # problem sizes 3, 3, 3, 3, 2
    assert sorted(i for s in shards for i in s) == list(range(len(samples) - 1))
    for shard in shards:
        ids = {samples[i].problem_id for i in shard}
        assert all(sum(samples[j].problem_id == p for j in shard) == sum(s.problem_id == p for s in samples[:-1])
                   for p in ids), "a problem was split across shards"
    assert sorted(len(s) for s in shards) == [6, 8]


@pytest.mark.slow
def test_ray_scores_equal_local_scores(ray_cluster, tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task()
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", bf16=False, max_steps=3)
    model_dir = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    order = samples[::-1]  # problems interleaved differently from training: output follows the input order
    local = RewardModel.load(model_dir).score(problems, order, progress=False)
    # an executor pool of this process holds every CPU first: the scorers take the cluster over, then give it back
    exec_cfg = ExecutionConfig(ray=ray_cluster[0].address, cache_path=tmp_path / "verdicts.sqlite")
    probe = [Sample("toy/0", 99, "    return x + 1\n")]
    execute(problems, probe, exec_cfg, progress=False)
    rm = RayRewardModel(model_dir, ray_cluster[0].address)
    try:
        first = rm.score(problems, order, progress=False)
        assert len(rm.actors) == 2, "one scorer per free CPU once the executors stepped aside"
        via_api = score_candidates(CandidateSet(order, problems), ScoreConfig(mode="rm", model_dir=model_dir),
                                   progress=False, rm=rm)
        assert execute(problems, [Sample("toy/0", 98, "    return x + 2\n")], exec_cfg, progress=False)[0].passed
        again = rm.score(problems, order[:6], progress=False)  # restarts its scorers after the executors ran
    finally:
        rm.shutdown()
        ray_backend.shutdown_pools()
    np.testing.assert_allclose(again, local[:6], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first, local, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([s.score for s in via_api], local, rtol=1e-5, atol=1e-5)
    assert [(s.problem_id, s.sample_id) for s in via_api] == [(s.problem_id, s.sample_id) for s in order]
