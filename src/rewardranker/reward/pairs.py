"""Preference pairs (a passing and a failing candidate of one problem) and the Bradley–Terry loss."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rewardranker.errors import RewardRankerError
from rewardranker.records import Sample, SampleKey

if TYPE_CHECKING:
    import torch

Key = SampleKey  # (language, problem_id, sample_id)


@dataclass(frozen=True)
class Pair:
    """`chosen` passed its tests, `rejected` did not; both belong to `problem_id` in `language`."""

    problem_id: str
    chosen: int  # sample_id
    rejected: int  # sample_id
    weight: float = 1.0
    language: str = ""

    @property
    def chosen_key(self) -> Key:
        return (self.language, self.problem_id, self.chosen)

    @property
    def rejected_key(self) -> Key:
        return (self.language, self.problem_id, self.rejected)


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
            weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted Bradley–Terry loss: mean of w * -log σ(r_chosen - r_rejected), normalised by the weights."""
    import torch.nn.functional as F

    per_pair = -F.logsigmoid(r_chosen.float() - r_rejected.float())
    if weight is None:
        return per_pair.mean()
    weight = weight.to(per_pair.dtype)
    return (per_pair * weight).sum() / weight.sum().clamp_min(1e-12)


def mine_pairs(samples: list[Sample], passed: dict[Key, bool], max_pairs_per_problem: int = 48, seed: int = 0,
               weights: dict[Key, float] | None = None) -> list[Pair]:
    """All (passing, failing) pairs of each problem, sampled down to at most `max_pairs_per_problem`.

    Problems without a passing or without a failing candidate give no pairs. Sampling is uniform over all
    (passing, failing) combinations, and a pair's weight is the larger of its two
    candidates' weights (a hard negative given weight 3 makes its pairs count 3 times). Raises when no problem
    gives a pair, since nothing could be learned.
    """
    if max_pairs_per_problem <= 0:
        raise RewardRankerError(f"max_pairs_per_problem must be positive, got {max_pairs_per_problem}")
    missing = [s.key for s in samples if s.key not in passed]
    if missing:
        raise RewardRankerError(f"{len(missing)} candidates have no verdict, e.g. {missing[0]}: "
                                "pass verdicts for every candidate (ids must match)")
    rng = random.Random(seed)
    by_problem: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        by_problem.setdefault(s.problem_key, []).append(s)
    pairs: list[Pair] = []
    for lang, pid in sorted(by_problem):
        good = [s.sample_id for s in by_problem[(lang, pid)] if passed[s.key]]
        bad = [s.sample_id for s in by_problem[(lang, pid)] if not passed[s.key]]
        for c, r in _spread_pairs(good, bad, max_pairs_per_problem, rng):
            w = 1.0 if weights is None else max(weights.get((lang, pid, c), 1.0), weights.get((lang, pid, r), 1.0))
            pairs.append(Pair(pid, c, r, float(w), lang))
    if not pairs:
        raise RewardRankerError("no preference pairs: no problem has both a passing and a failing candidate "
                                f"({len(by_problem)} problems, {sum(passed.values())} passing candidates)")
    return pairs


def _spread_pairs(good: list[int], bad: list[int], cap: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to `cap` distinct (good, bad) pairs drawn uniformly without replacement from all good x bad pairs."""
    if not good or not bad:
        return []
    total = len(good) * len(bad)
    picks = range(total) if total <= cap else sorted(rng.sample(range(total), cap))
    return [(good[i // len(bad)], bad[i % len(bad)]) for i in picks]
