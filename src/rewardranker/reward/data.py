"""Read what the reward stages need from files: problems, candidates, and pass/fail labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.problems import CandidateSet, ProblemSet, load_candidates, load_problems
from rewardranker.records import SampleKey

Key = SampleKey  # (language, problem_id, sample_id)


@dataclass
class LabelledCandidates:
    cands: CandidateSet
    problems: ProblemSet
    passed: dict[Key, bool] | None


def read_verdicts(path: str | Path, keys: list[Key] | None = None) -> dict[Key, bool]:
    """(language, problem_id, sample_id) -> passed, from VERDICTS JSONL (or a MultiPL-E results folder); verdicts
    without a language are matched to `keys` by id."""
    from rewardranker.metrics import align_verdicts, load_verdicts

    out = align_verdicts(load_verdicts(path), keys or [])
    if not out:
        raise RecordError(path, None, None, "file holds no verdicts")
    return out


def load_labelled(samples: str | Path, verdicts: str | Path | None = None, problems: str | None = None,
                  need_labels: bool = True, task: str | None = None) -> LabelledCandidates:
    """Candidates + problems + labels (a verdicts file, else the file's own `reference_passed`)."""
    cands = load_candidates(samples, load_problems(problems) if problems else None, task)
    unknown = sorted({s.problem_id for s in cands.samples if not s.language})
    if unknown:
        raise RewardRankerError(f"{samples}: {len(unknown)} problem ids have no problem definition, e.g. "
                                f"{unknown[0]!r}: pass --problems (a problems file, or 'humaneval')")
    passed = read_verdicts(verdicts, [s.key for s in cands.samples]) if verdicts else cands.labels
    if need_labels and passed is None:
        raise RewardRankerError(f"{samples}: no labels: pass --verdicts (from `rewardranker execute`) or use a "
                                "reranking-layout file with reference_passed")
    if passed is not None:
        missing = [s.key for s in cands.samples if s.key not in passed]
        if missing and need_labels:
            raise RewardRankerError(f"{len(missing)} candidates of {samples} have no verdict, e.g. {missing[0]} "
                                    f"(do the verdicts belong to these samples?)")
    return LabelledCandidates(cands, cands.problems, passed)
