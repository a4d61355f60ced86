from __future__ import annotations

from conftest import toy_task

from rewardranker.reward import RewardConfig
from rewardranker.reward import train as train_module
from rewardranker.reward.crossval import cross_validate


def test_cross_validation_scores_every_candidate_out_of_fold(tiny_gpt2, tmp_path, monkeypatch):
    problems, samples, passed = toy_task(n_problems=6)
    trained_on: list[set[str]] = []
    real = train_module.train_reward_model

    def spy(cfg, probs, smp, *args, **kwargs):
        trained_on.append({s.problem_id for s in smp})
        return real(cfg, probs, smp, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_reward_model", spy)
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", bf16=False, max_steps=3)
    oof = cross_validate(cfg, problems, samples, passed, k=3, work_dir=tmp_path, progress=False)
    assert set(oof) == {s.key for s in samples}
    assert len(trained_on) == 3
    for train_ids in trained_on:
        assert len(train_ids) == 4  # the other two folds' problems only
    assert set.union(*[set(problems) - t for t in trained_on]) == set(problems)
