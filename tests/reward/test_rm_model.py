from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import toy_task

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.metrics import ranked_pass_at_1
from rewardranker.records import Sample
from rewardranker.reward import RewardConfig, RewardModel, train_reward_model
from rewardranker.reward.model import freeze_lower_layers, load_backbone


def _cfg(backbone, **kw) -> RewardConfig:
    base = dict(backbone=str(backbone), max_length=64, batch_size=8, lr=3e-3, head_lr=1e-2, epochs=5.0,
                train_top_layers=-1, consensus="none", bf16=False)
    return RewardConfig(**{**base, **kw})


def _ranked(problems, samples, passed, scores) -> float:
    by: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by.setdefault(s.problem_id, []).append(i)
    return float(np.mean([ranked_pass_at_1([scores[i] for i in idx], [passed[samples[i].key] for i in idx])
                          for idx in by.values()]))


def test_tiny_gpt2_learns_a_learnable_signal_and_ranks_held_out_problems(tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task(n_problems=10, seed=0)
    out = train_reward_model(_cfg(tiny_gpt2), problems, samples, passed, tmp_path / "rm", progress=False)
    test_problems, test_samples, test_passed = toy_task(n_problems=6, seed=1)
    test_samples = [Sample("held/" + s.problem_id, s.sample_id, s.completion, language="py") for s in test_samples]
    test_problems = {"held/" + k: dataclasses.replace(v, problem_id="held/" + k) for k, v in test_problems.items()}
    test_passed = {(k[0], "held/" + k[1], k[2]): v for k, v in test_passed.items()}
    scores = RewardModel.load(out).score(test_problems, test_samples, progress=False)
    assert _ranked(test_problems, test_samples, test_passed, scores) == 1.0
    head = json.loads((out / "reward_head.json").read_text())
    assert head["training"]["pairs"] == 10 * 9


def test_save_load_round_trip_gives_identical_scores(tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task(n_problems=4)
    cfg = _cfg(tiny_gpt2, max_steps=2, consensus="tfidf")
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    first = RewardModel.load(out)
    a = first.score(problems, samples, progress=False)
    first.save(tmp_path / "again")
    b = RewardModel.load(tmp_path / "again").score(problems, samples, progress=False)
    assert a == b
    assert len(set(a)) > 1


def test_lora_on_a_tiny_llama_trains_merges_and_reloads(tiny_llama, tmp_path):
    """The paper's setting (decoder LM + LoRA + bf16) on a randomly initialised Llama built from a config."""
    problems, samples, passed = toy_task(n_problems=4)
    cfg = RewardConfig.paper(backbone=str(tiny_llama), max_length=64, batch_size=4, grad_accum=1, max_steps=2,
                             consensus="none", gradient_checkpointing=False)
    assert cfg.lora and cfg.bf16
    rm = RewardModel.build(cfg)
    trainable = [n for n, p in rm.net.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and not any("q_proj.base_layer" in n for n in trainable)
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    assert not any("lora" in f.name for f in out.iterdir())  # adapters merged: a plain from_pretrained folder
    scores = RewardModel.load(out).score(problems, samples, progress=False)
    assert len(scores) == len(samples) and all(np.isfinite(scores))


def test_freezing_keeps_only_heads_and_top_blocks_trainable(tiny_llama):
    model, _ = load_backbone(str(tiny_llama))
    freeze_lower_layers(model, 1)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("score") for n in names)
    assert any(".layers.1." in n for n in names) and not any(".layers.0." in n for n in names)
    assert not any("embed_tokens" in n for n in names)
    freeze_lower_layers(model, 0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"score.weight"}


def test_minilm_default_reads_whitespace_visible_code():
    rm = RewardModel.build(RewardConfig(consensus="none"))
    assert rm.visible_whitespace
    problems, _, _ = toy_task(n_problems=1)
    flat = Sample("toy/0", 99, "    if x:\n        return 1\n    return 2\n")
    nested = Sample("toy/0", 98, "    if x:\n        return 1\n        return 2\n")
    a, b = rm.tokenize(problems, [flat, nested])
    assert a != b


def test_packaged_minilm_is_frozen_by_default_and_other_backbones_are_trained(tiny_gpt2):
    assert RewardConfig().top_layers == 0
    assert RewardConfig(backbone=str(tiny_gpt2)).top_layers == -1
    assert RewardConfig(backbone=str(tiny_gpt2), train_top_layers=1).top_layers == 1


def test_bad_config_and_unknown_problem_ids_give_clear_errors(tiny_gpt2):
    with pytest.raises(ConfigError, match="max_length"):
        RewardConfig(max_length=0)
    with pytest.raises(ConfigError, match="consensus"):
        RewardConfig(consensus="vibes")
    with pytest.raises(ConfigError, match="backbone"):
        RewardModel.build(RewardConfig(backbone="/nonexistent/model/folder"))
    rm = RewardModel.build(_cfg(tiny_gpt2))
    problems, _, _ = toy_task(n_problems=1)
    with pytest.raises(RewardRankerError, match="match no problem"):
        rm.score(problems, [Sample("other/1", 0, "x")], progress=False)
    with pytest.raises(RewardRankerError, match="not a reward-model folder"):
        RewardModel.load(tiny_gpt2)


def test_frozen_backbone_fast_path_trains_only_the_heads(tiny_gpt2, tmp_path):
    import torch

    problems, samples, passed = toy_task(n_problems=6)
    cfg = _cfg(tiny_gpt2, train_top_layers=0, consensus="tfidf", max_steps=30)
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    before, _ = load_backbone(str(tiny_gpt2))
    after = RewardModel.load(out)
    changed = {n for n, p in after.net.backbone.state_dict().items()
               if not torch.equal(p, before.state_dict()[n])}
    assert changed == {"score.weight"}
    assert any(w != 0.0 for w in json.loads((out / "reward_head.json").read_text())["feature_weights"])
