from __future__ import annotations

import math

import pytest
import torch

from rewardranker.errors import RewardRankerError
from rewardranker.records import Sample
from rewardranker.reward import bt_loss, mine_pairs


def test_bt_loss_matches_hand_computed_values():
    assert bt_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(math.log(2))
    assert bt_loss(torch.tensor([20.0]), torch.tensor([0.0])).item() == pytest.approx(0.0, abs=1e-6)
    assert bt_loss(torch.tensor([0.0]), torch.tensor([2.0])).item() == pytest.approx(math.log1p(math.exp(2)))


def test_bt_loss_weights_make_a_pair_count_more():
    rc, rr = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    easy, hard = -torch.nn.functional.logsigmoid(torch.tensor(1.0)), -torch.nn.functional.logsigmoid(torch.tensor(-1.0))
    weighted = bt_loss(rc, rr, torch.tensor([1.0, 3.0])).item()
    assert weighted == pytest.approx(((easy + 3 * hard) / 4).item())
    assert bt_loss(rc, rr, torch.tensor([1.0, 1.0])).item() == pytest.approx(bt_loss(rc, rr).item())


def test_bt_loss_gradient_pushes_chosen_up_and_rejected_down():
    rc, rr = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    bt_loss(rc, rr).backward()
    assert rc.grad.item() < 0 < rr.grad.item()


def _samples(spec: dict[str, list[bool]]):
    samples = [Sample(pid, i, f"c{i}", language="py") for pid, flags in spec.items() for i in range(len(flags))]
    passed = {("py", pid, i): ok for pid, flags in spec.items() for i, ok in enumerate(flags)}
    return samples, passed


def test_pairs_are_passing_vs_failing_of_the_same_problem_only():
    samples, passed = _samples({"a": [True, False, False], "b": [True, True], "c": [False, False]})
    pairs = mine_pairs(samples, passed, max_pairs_per_problem=10)
    assert {(p.problem_id, p.chosen, p.rejected) for p in pairs} == {("a", 0, 1), ("a", 0, 2)}


def test_pairs_are_capped_per_problem_distinct_and_reproducible():
    samples, passed = _samples({"a": [True] * 10 + [False] * 10, "b": [True, False]})
    pairs = mine_pairs(samples, passed, max_pairs_per_problem=7, seed=3)
    a = [(p.chosen, p.rejected) for p in pairs if p.problem_id == "a"]
    assert len(a) == 7 and len(set(a)) == 7
    assert all(passed[("py", "a", c)] and not passed[("py", "a", r)] for c, r in a)
    assert [p for p in pairs if p.problem_id == "b"] and pairs == mine_pairs(samples, passed, 7, seed=3)


def test_pair_weight_is_the_larger_candidate_weight():
    samples, passed = _samples({"a": [True, False, False]})
    pairs = mine_pairs(samples, passed, 10, weights={("py", "a", 2): 3.0})
    assert {p.rejected: p.weight for p in pairs} == {1: 1.0, 2: 3.0}


def test_no_passing_candidate_anywhere_is_a_clear_error():
    samples, passed = _samples({"a": [False, False], "b": [False]})
    with pytest.raises(RewardRankerError, match="no problem has both a passing and a failing"):
        mine_pairs(samples, passed)


def test_missing_verdict_is_a_clear_error():
    samples, passed = _samples({"a": [True, False]})
    del passed[("py", "a", 1)]
    with pytest.raises(RewardRankerError, match=r"no verdict.*\('py', 'a', 1\)"):
        mine_pairs(samples, passed)
