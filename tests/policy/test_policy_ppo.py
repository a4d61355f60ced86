"""PPO end to end on a tiny policy: an easy reward rises with bounded KL; resume continues the same run."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from policy_helpers import CORPUS, toy_problems

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation import build_local_generator
from rewardranker.policy import PPOConfig, run_ppo
from rewardranker.runio import read_jsonl


def digit_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """Fraction of the completion's characters that are digits: easy to find by chance, easy to raise."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def _cfg(**kw) -> PPOConfig:
    base = dict(steps=30, batch_size=16, max_new_tokens=16, learning_rate=1e-3, kl_coef=0.02, minibatch_size=8,
                save_every=10, seed=0)
    return PPOConfig(**{**base, **kw})


def test_ppo_raises_the_reward_with_bounded_kl(tiny_policy, tmp_path):
    probs = [replace(p, stop_tokens=()) for p in toy_problems(8)]  # full 16-token completions
    out = run_ppo(_cfg(), str(tiny_policy), digit_reward, probs, tmp_path / "ppo", progress=False)
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 31))
    first, last = sum(r["reward"] for r in log[:5]) / 5, sum(r["reward"] for r in log[-5:]) / 5
    assert last > first + 0.08, (first, last)
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the first rollout comes from the reference itself
    assert max(r["kl"] for r in log) < 16 * 1.0  # under one nat per token on average
    for key in ("entropy", "clip_frac", "value_loss", "policy_loss", "approx_kl", "response_len"):
        assert all(key in r for r in log)
    assert (out / "model.safetensors").exists() and (tmp_path / "ppo" / "reward_curve.png").stat().st_size > 0
    assert list((tmp_path / "ppo" / "tensorboard").glob("events.out.tfevents.*"))


def test_bounded_reward_with_a_group_baseline_still_climbs(tiny_policy, tmp_path):
    """reward_shaping=preference + baseline=group: the per-sequence reward is sigmoid(score - reference's score)
    minus the prompt's other samples' mean, so it stays in (-1, 1), and PPO still raises the raw score."""
    probs = [replace(p, stop_tokens=()) for p in toy_problems(8)]
    cfg = _cfg(batch_size=8, samples_per_prompt=4, minibatch_size=16, reward_shaping="preference",
               baseline="group")
    run_ppo(cfg, str(tiny_policy), digit_reward, probs, tmp_path / "ppo", progress=False)
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    first, last = sum(r["reward"] for r in log[:5]) / 5, sum(r["reward"] for r in log[-5:]) / 5
    assert last > first + 0.05, (first, last)
    assert all(abs(r["shaped_reward"]) < 1e-5 for r in log)  # a leave-one-out baseline centres each group


def test_execution_reward_alone_drives_the_policy_and_is_logged(tiny_policy, tmp_path, monkeypatch):
    """exec_reward_weight: the verdicts (here a stand-in executor: 'passes' when the completion holds a digit)
    are added to the shaped RM score, drive the update when the RM is flat, and are logged as pass_rate."""
    from rewardranker.policy import ppo

    def fake_executor(problems):
        return lambda prompts, comps: [float(any(ch.isdigit() for ch in c)) for c in comps]

    monkeypatch.setattr(ppo, "execution_reward_fn", fake_executor)
    probs = [replace(p, stop_tokens=()) for p in toy_problems(8)]
    cfg = _cfg(batch_size=8, samples_per_prompt=4, minibatch_size=16, reward_shaping="preference",
               baseline="group", exec_reward_weight=1.0)
    run_ppo(cfg, str(tiny_policy), lambda prompts, comps: [0.0] * len(comps), probs, tmp_path / "ppo",
            progress=False)
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    first, last = sum(r["pass_rate"] for r in log[:5]) / 5, sum(r["pass_rate"] for r in log[-5:]) / 5
    assert last > first + 0.1, (first, last)

def test_resume_continues_the_same_run(tiny_policy, tmp_path):
    probs = toy_problems(4)
    straight = tmp_path / "straight"
    run_ppo(_cfg(steps=4, batch_size=4, save_every=2), str(tiny_policy), digit_reward, probs, straight, progress=False)
    resumed = tmp_path / "resumed"
    run_ppo(_cfg(steps=2, batch_size=4, save_every=2), str(tiny_policy), digit_reward, probs, resumed, progress=False)
    with open(resumed / "ppo_log.jsonl", "a") as f:  # a step logged after the checkpoint by a killed run
        f.write(json.dumps({"step": 3, "reward": 99.0}) + "\n")
    run_ppo(_cfg(steps=4, batch_size=4, save_every=2), str(tiny_policy), digit_reward, probs, resumed, progress=False)
    a, b = read_jsonl(straight / "ppo_log.jsonl"), read_jsonl(resumed / "ppo_log.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, rel=1e-5, abs=1e-6)
    wa = torch.load(straight / "checkpoint" / "state.pt", weights_only=True)["model"]
    wb = torch.load(resumed / "checkpoint" / "state.pt", weights_only=True)["model"]
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_with_other_settings_is_refused(tiny_policy, tmp_path):
    probs = toy_problems(2)
    run_ppo(_cfg(steps=1, batch_size=2), str(tiny_policy), digit_reward, probs, tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match="kl_coef"):
        run_ppo(_cfg(steps=2, batch_size=2, kl_coef=0.5), str(tiny_policy), digit_reward, probs, tmp_path / "r",
                progress=False)


def test_lora_on_llama_uses_the_base_as_reference(tmp_path):
    policy = build_local_generator(CORPUS, tmp_path / "llama", arch="llama", size="tiny", vocab_size=300)
    out = run_ppo(_cfg(steps=2, batch_size=4, lora=True, lora_r=4), str(policy), digit_reward, toy_problems(4),
                  tmp_path / "ppo", progress=False)
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-4) and log[1]["kl"] != 0.0
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    assert not (out / "adapter_config.json").exists()  # merged into a plain checkpoint


def test_reward_function_must_score_every_completion(tiny_policy, tmp_path):
    with pytest.raises(RewardRankerError, match="returned 1 rewards for 2"):
        run_ppo(_cfg(steps=1, batch_size=2), str(tiny_policy), lambda p, c: [0.0], toy_problems(2), tmp_path / "r",
                progress=False)
    with pytest.raises(ConfigError, match="reward_model_dir"):
        run_ppo(_cfg(steps=1), str(tiny_policy), None, toy_problems(2), tmp_path / "r2", progress=False)


def test_ppo_command_scores_with_a_saved_reward_model(tiny_policy, tmp_path):
    """The CLI path: the RM (its own tokenizer and backbone) scores decoded completions."""
    from typer.testing import CliRunner

    from rewardranker.cli import app
    from rewardranker.reward import RewardConfig, RewardModel

    rm_dir = RewardModel.build(RewardConfig(backbone=str(tiny_policy))).save(tmp_path / "rm")
    probs = tmp_path / "p.jsonl"
    probs.write_text("".join(json.dumps({"task_id": p.problem_id, "prompt": p.prompt, "entry_point": "f",
                                         "test": "def check(f):\n    pass\n"}) + "\n" for p in toy_problems(4)))
    res = CliRunner().invoke(app, ["ppo", "--policy", str(tiny_policy), "--reward-model", str(rm_dir),
                                   "--problems", str(probs), "--out", str(tmp_path / "ppo"), "--steps", "2",
                                   "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    assert len(log) == 2 and all(isinstance(r["reward"], float) for r in log)
    assert (tmp_path / "ppo" / "policy" / "model.safetensors").exists()
    base = ["ppo", "--policy", str(tiny_policy), "--reward-model", str(rm_dir), "--problems", str(probs)]
    res = CliRunner().invoke(app, base + ["--out", str(tmp_path / "shaped"), "--reward-shaping", "preference"])
    assert res.exit_code == 1 and "reward_shaping" in res.output and "p.jsonl:1" in res.output  # no reference
    assert not (tmp_path / "shaped").exists()  # refused before any model loads
    res = CliRunner().invoke(app, base + ["--out", str(tmp_path / "group"), "--baseline", "group"])
    assert res.exit_code == 1 and "samples_per_prompt >= 2" in res.output
