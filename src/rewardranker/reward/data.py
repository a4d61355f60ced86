"""Read what the reward stages need from files: problems, candidates, and pass/fail labels."""

from __future__ import annotations

import dataclasses
import warnings
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


def read_verdicts(path: str | Path, keys: list[Key] | None = None, unjudged: set[Key] | None = None
                  ) -> dict[Key, bool]:
    """(language, problem_id, sample_id) -> passed, from VERDICTS JSONL (or a MultiPL-E results folder); verdicts
    without a language are matched to `keys` by id. InfraError verdicts (never judged) are no label: their keys
    go to `unjudged`."""
    from rewardranker.metrics import align_verdicts, load_verdicts

    verdicts = load_verdicts(path)
    lenient = sum(v.verdict_rule == "multipl-e" for v in verdicts)
    judged = [v for v in verdicts if v.status != "InfraError"]
    if unjudged is not None:
        unjudged.update(align_verdicts([v for v in verdicts if v.status == "InfraError"], keys or []))
    out = align_verdicts(judged, keys or [])
    if not out:
        raise RecordError(path, None, None, "file holds no verdicts")
    if lenient:
        warnings.warn(f"{path}: {lenient} verdicts follow MultiPL-E's exit-code rule, under which early exits "
                      "pass; for training labels run `rewardranker execute` with the default --verdict-rule strict")
    return out


def load_labelled(samples: str | Path, verdicts: str | Path | None = None, problems: str | None = None,
                  need_labels: bool = True, task: str | None = None) -> LabelledCandidates:
    """Candidates + problems + labels (a verdicts file, else the file's own `reference_passed`)."""
    cands = load_candidates(samples, load_problems(problems) if problems else None, task)
    unknown = sorted({s.problem_id for s in cands.samples if not s.language})
    if unknown:
        raise RewardRankerError(f"{samples}: {len(unknown)} problem ids have no problem definition, e.g. "
                                f"{unknown[0]!r}: pass --problems (a problems file, or 'humaneval')")
    unjudged: set[Key] = set()
    passed = read_verdicts(verdicts, [s.key for s in cands.samples], unjudged) if verdicts else cands.labels
    if unjudged:  # the sandbox failed on these: leave them out of training rather than call them failures
        warnings.warn(f"{verdicts}: {len(unjudged)} InfraError verdicts (never judged): those candidates are left out")
        cands = dataclasses.replace(cands, samples=[s for s in cands.samples if s.key not in unjudged])
    if need_labels and passed is None:
        raise RewardRankerError(f"{samples}: no labels: pass --verdicts (from `rewardranker execute`) or use a "
                                "reranking-layout file with reference_passed")
    if passed is not None:
        missing = [s.key for s in cands.samples if s.key not in passed]
        if missing and need_labels:
            raise RewardRankerError(f"{len(missing)} candidates of {samples} have no verdict, e.g. {missing[0]} "
                                    f"(do the verdicts belong to these samples?)")
    return LabelledCandidates(cands, cands.problems, passed)
