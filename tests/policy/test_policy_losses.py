"""PPO's pure pieces against hand-computed values: reward shaping, GAE, clipped losses, batching, stop cuts."""

from __future__ import annotations

import pytest
import torch

from rewardranker.errors import ConfigError
from rewardranker.policy.ppo import (
    PPOConfig,
    batch_indices,
    entropy,
    gae,
    kl_shaped_rewards,
    leave_one_out_baseline,
    masked_mean,
    masked_whiten,
    policy_loss,
    stop_cut,
    value_loss,
)


def test_kl_shaped_rewards_put_the_score_on_the_last_real_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.float)
    logp = torch.tensor([[-1.0, -1.0, -1.0, -9.0], [-2.0, -9.0, -9.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, 0.0], [-1.0, 0.0, 0.0, 0.0]])
    rewards, kl = kl_shaped_rewards(torch.tensor([1.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -0.5, 0.0], [-1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.0, 1.05, 0.0], [-1.0 + 0.1, 0.0, 0.0, 0.0]]))


def test_gae_matches_the_recursion_and_stops_at_the_mask():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.1, 7.0]])  # the last position is padding: its value must not leak in
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    gamma, lam = 0.9, 0.8
    d2 = 1.0 - 0.1
    d1 = 0.0 + gamma * 0.1 - 0.2
    d0 = 0.0 + gamma * 0.2 - 0.5
    a2, a1 = d2, d1 + gamma * lam * d2
    expected = torch.tensor([[d0 + gamma * lam * a1, a1, a2, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, expected)
    assert torch.allclose(ret[:, :3], expected[:, :3] + values[:, :3])


def test_policy_loss_clips_the_ratio_in_the_direction_of_the_advantage():
    mask = torch.ones(1, 2)
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.9, 0.1]]))  # ratios 1.8 and 0.2
    loss, m = policy_loss(new, old, torch.tensor([[1.0, -1.0]]), mask, clip=0.2)
    # A>0: gain capped at ratio 1.2; A<0: -A*r = 0.2 vs -A*clip = 0.8 -> max picks 0.8 (no credit past the clip)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert m["clip_frac"] == 1.0
    same, m0 = policy_loss(old, old, torch.tensor([[1.0, -1.0]]), mask, clip=0.2)
    assert same.item() == pytest.approx(0.0) and m0["clip_frac"] == 0.0 and m0["approx_kl"] == 0.0


def test_value_loss_takes_the_worse_of_clipped_and_unclipped():
    mask = torch.ones(1, 2)
    loss, m = value_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]]),
                         mask, clip=0.5)
    # token 0: unclipped error 0, clipped prediction 0.5 -> error 2.25; token 1: both 1.0
    assert loss.item() == pytest.approx(0.5 * (2.25 + 1.0) / 2)
    assert m["value_clip_frac"] == 0.5


def test_masked_helpers_and_entropy():
    x, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 2.0
    w = masked_whiten(x, mask)
    assert torch.allclose(w, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4)
    uniform = entropy(torch.zeros(1, 1, 8))
    assert uniform.item() == pytest.approx(torch.log(torch.tensor(8.0)).item())


def test_batch_indices_cover_every_problem_once_per_epoch_and_are_pure():
    seen = [i for step in range(5) for i in batch_indices(10, 4, step, seed=3)]  # 20 draws = 2 epochs
    assert sorted(seen) == sorted(list(range(10)) * 2)
    assert batch_indices(10, 4, 2, seed=3) == batch_indices(10, 4, 2, seed=3)
    assert batch_indices(10, 4, 0, seed=3) != batch_indices(10, 4, 0, seed=4)
    assert len(batch_indices(3, 8, 0, seed=0)) == 8  # a batch larger than the problem set wraps around


def test_stop_cut_keeps_the_tokens_through_the_stop_string(tiny_policy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy)
    ids = tok("    return x\ndef g():\n    pass")["input_ids"]
    n = stop_cut(tok, ids, ("\ndef",))
    assert tok.decode(ids[:n]).endswith("\ndef") or tok.decode(ids[:n]).startswith("    return x\ndef")
    assert not tok.decode(ids[:n - 1]).endswith("\ndef") and "\ndef" not in tok.decode(ids[:n - 1])
    assert stop_cut(tok, ids, ("@@",)) == len(ids)


@pytest.mark.parametrize("field,value", [("steps", 0), ("clip_range", 0.0), ("kl_coef", -0.1), ("top_p", 1.5),
                                         ("lam", 2.0), ("precision", "int8"), ("reward_shaping", "clip"),
                                         ("baseline", "group"), ("baseline", "mean")])
def test_bad_ppo_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        PPOConfig(**{field: value})


def test_unjudged_rewards_get_the_batch_mean_not_a_failure():
    """An InfraError (NaN reward) neither rewards nor punishes the policy: it gets the judged programs' mean."""
    from rewardranker.policy.ppo import _scores
    from rewardranker.records import Problem

    batch = [Problem(f"p{i}", "py", f"prompt {i}", "") for i in range(3)]
    rewards = _scores(lambda prompts, texts: [1.0, float("nan"), 0.0], batch, ["a", "b", "c"], "cpu")
    assert rewards.tolist() == [1.0, 0.5, 0.0]
    assert _scores(lambda p, t: [float("nan")] * 3, batch, ["a", "b", "c"], "cpu").tolist() == [0.0, 0.0, 0.0]


def test_leave_one_out_baseline_subtracts_the_other_samples_mean_of_the_same_prompt():
    scores = torch.tensor([1.0, 2.0, 3.0, 10.0, 5.0])
    got = leave_one_out_baseline(scores, ["a", "a", "a", "b", "c"])
    assert torch.allclose(got, torch.tensor([1 - 2.5, 2 - 2.0, 3 - 1.5, 10.0, 5.0]))  # lone prompts keep theirs


def test_preference_shaping_bounds_a_blind_spot_and_scores_each_reference_once():
    """A program the RM over-scores by 100 earns at most 1, a program matching its reference earns 0.5."""
    from types import SimpleNamespace

    from rewardranker.policy.ppo import check_references, shape_scores
    from rewardranker.records import Problem

    calls = []

    def reward_fn(prompts, texts):
        calls.append(list(texts))
        return [0.0] * len(texts)

    a = Problem("a", "py", "def a():\n", "", canonical_solution="    return 1\n")
    b = Problem("b", "py", "def b():\n", "", canonical_solution="    return 2\n")
    run = SimpleNamespace(cfg=PPOConfig(reward_shaping="preference", baseline="group", samples_per_prompt=2),
                          reference_scores={})
    got = shape_scores(run, [a, a, b, b], torch.tensor([100.0, 0.0, 0.0, 0.0]), reward_fn)
    assert torch.allclose(got, torch.tensor([0.5, -0.5, 0.0, 0.0]), atol=1e-4)  # sigmoid(100) - sigmoid(0)
    shape_scores(run, [a, b], torch.tensor([0.0, 0.0]), reward_fn)
    assert calls == [["    return 1\n", "    return 2\n"]]  # references scored once per run
    with pytest.raises(ConfigError, match="problem c .*has none"):
        check_references(run.cfg, [a, Problem("c", "py", "def c():\n", "")])


def test_execution_verdict_is_added_after_shaping_so_a_pass_outweighs_any_blind_spot():
    """With weight 1, a passing program the RM scores at its reference (0.5 + 1) beats a failing one the RM
    over-scores by 100 (at most 1): the verdict is not squashed inside the sigmoid."""
    from types import SimpleNamespace

    from rewardranker.policy.ppo import shape_scores
    from rewardranker.records import Problem

    a = Problem("a", "py", "def a():\n", "", canonical_solution="    return 1\n")
    run = SimpleNamespace(cfg=PPOConfig(reward_shaping="preference", baseline="group", samples_per_prompt=2,
                                        exec_reward_weight=1.0), reference_scores={})
    got = shape_scores(run, [a, a], torch.tensor([100.0, 0.0]), lambda prompts, texts: [0.0] * len(texts),
                       passed=torch.tensor([0.0, 1.0]))
    assert torch.allclose(got, torch.tensor([-0.5, 0.5]), atol=1e-4)  # (1 - 1.5), (1.5 - 1)


def test_an_unjudged_program_earns_no_execution_reward(monkeypatch):
    """A program that crashes its sandbox (InfraError) must not be paid more than one that fails: both earn 0."""
    from types import SimpleNamespace

    from rewardranker.execution import runner
    from rewardranker.policy.ppo import execution_reward_fn
    from rewardranker.records import Problem

    verdicts = [SimpleNamespace(status="OK", passed=True), SimpleNamespace(status="Exception", passed=False),
                SimpleNamespace(status="InfraError", passed=False)]
    monkeypatch.setattr(runner, "execute", lambda problems, samples, cfg, progress: verdicts)
    a = Problem("a", "py", "def a():\n", "", canonical_solution="    return 1\n")
    assert execution_reward_fn([a])([a.prompt] * 3, ["x", "y", "z"]) == [1.0, 0.0, 0.0]
