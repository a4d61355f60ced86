"""Hard-negative mining: failing candidates the current reward model ranks too high.

A failing candidate is *hard* when the reward model scores it above a passing candidate of the same problem
(it would be picked over a right answer) or above the problem's reference solution when one is given, or above
the `quantile` of all passing candidates' scores (which catches problems where no candidate passed, so there is
no same-problem comparison to make). The reference comparison matters when a policy collapses onto one
degenerate program that never passes: without it nothing would be mined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardranker.records import Sample

Key = tuple[str, int]


@dataclass(frozen=True)
class HardNegative:
    """A failing sample, its score, and the threshold it beat (`reason`: above_passing | above_quantile)."""

    problem_id: str
    sample_id: int
    score: float
    threshold: float
    reason: str


def mine_hard_negatives(samples: list[Sample], passed: dict[Key, bool], scores: dict[Key, float],
                        quantile: float = 0.5, reference_scores: dict[str, float] | None = None) -> list[HardNegative]:
    """Failing samples scored above the lowest passing sample (or reference solution) of their problem, or
    above the global quantile of passing scores."""
    pos_scores = [scores[(s.problem_id, s.sample_id)] for s in samples if passed[(s.problem_id, s.sample_id)]]
    global_cut = float(np.quantile(pos_scores, quantile)) if pos_scores else None
    lowest_pass: dict[str, float] = {}
    for s in samples:
        key = (s.problem_id, s.sample_id)
        if passed[key]:
            lowest_pass[s.problem_id] = min(scores[key], lowest_pass.get(s.problem_id, float("inf")))
    for pid, ref in (reference_scores or {}).items():
        lowest_pass[pid] = min(ref, lowest_pass.get(pid, float("inf")))
    out = []
    for s in samples:
        key = (s.problem_id, s.sample_id)
        if passed[key]:
            continue
        score = scores[key]
        if s.problem_id in lowest_pass and score > lowest_pass[s.problem_id]:
            out.append(HardNegative(s.problem_id, s.sample_id, score, lowest_pass[s.problem_id], "above_passing"))
        elif global_cut is not None and score > global_cut:
            out.append(HardNegative(s.problem_id, s.sample_id, score, global_cut, "above_quantile"))
    return out
