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

from rewardranker.records import Sample, SampleKey

Key = SampleKey  # (language, problem_id, sample_id)


@dataclass(frozen=True)
class HardNegative:
    """A failing sample, its score, and the threshold it beat (`reason`: above_passing | above_quantile)."""

    problem_id: str
    sample_id: int
    score: float
    threshold: float
    reason: str
    language: str = ""


def mine_hard_negatives(samples: list[Sample], passed: dict[Key, bool], scores: dict[Key, float],
                        quantile: float = 0.5, reference_scores: dict[tuple[str, str], float] | None = None
                        ) -> list[HardNegative]:
    """Failing samples scored above the lowest passing sample (or reference solution) of their problem, or
    above the global quantile of passing scores. `reference_scores` is keyed by (language, problem_id)."""
    pos_scores = [scores[s.key] for s in samples if passed[s.key]]
    global_cut = float(np.quantile(pos_scores, quantile)) if pos_scores else None
    lowest_pass: dict[tuple[str, str], float] = {}
    for s in samples:
        if passed[s.key]:
            lowest_pass[s.problem_key] = min(scores[s.key], lowest_pass.get(s.problem_key, float("inf")))
    for problem, ref in (reference_scores or {}).items():
        lowest_pass[problem] = min(ref, lowest_pass.get(problem, float("inf")))
    out = []
    for s in samples:
        if passed[s.key]:
            continue
        score, lang = scores[s.key], s.language or ""
        if s.problem_key in lowest_pass and score > lowest_pass[s.problem_key]:
            out.append(HardNegative(s.problem_id, s.sample_id, score, lowest_pass[s.problem_key], "above_passing", lang))
        elif global_cut is not None and score > global_cut:
            out.append(HardNegative(s.problem_id, s.sample_id, score, global_cut, "above_quantile", lang))
    return out
