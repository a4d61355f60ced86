"""Read what the reward stages need from files: problems, candidates, and pass/fail labels."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.problems import CandidateSet, load_candidates, load_problems, problems_by_id
from rewardranker.records import Problem, Verdict, record_from_dict
from rewardranker.runio import iter_jsonl

Key = tuple[str, int]


@dataclass
class LabelledCandidates:
    cands: CandidateSet
    problems: dict[str, Problem]
    passed: dict[Key, bool] | None


def read_verdicts(path: str | Path, unjudged: set[Key] | None = None) -> dict[Key, bool]:
    """(problem_id, sample_id) -> passed, from a VERDICTS JSONL file written by `rewardranker execute`;
    InfraError verdicts (never judged) are no label: their keys go to `unjudged`."""
    out: dict[Key, bool] = {}
    lenient = 0
    for line, obj in iter_jsonl(path):
        v = record_from_dict(Verdict, obj, path, line)
        lenient += v.verdict_rule == "multipl-e"
        if v.status == "InfraError":
            if unjudged is not None:
                unjudged.add((v.problem_id, v.sample_id))
            continue
        out[(v.problem_id, v.sample_id)] = bool(v.passed)
    if not out:
        raise RecordError(path, None, None, "file holds no verdicts")
    if lenient:
        warnings.warn(f"{path}: {lenient} verdicts follow MultiPL-E's exit-code rule, under which early exits "
                      "pass; for training labels run `rewardranker execute` with the default --verdict-rule strict")
    return out


def load_labelled(samples: str | Path, verdicts: str | Path | None = None, problems: str | None = None,
                  need_labels: bool = True) -> LabelledCandidates:
    """Candidates + problems + labels (a verdicts file, else the file's own `reference_passed`)."""
    cands = load_candidates(samples, load_problems(problems) if problems else None)
    probs = dict(cands.problems)
    if problems:
        probs.update(problems_by_id(load_problems(problems)))
    unknown = sorted({s.problem_id for s in cands.samples} - set(probs))
    if unknown:
        raise RewardRankerError(f"{samples}: {len(unknown)} problem ids have no problem definition, e.g. "
                                f"{unknown[0]!r}: pass --problems (a problems file, or 'humaneval')")
    unjudged: set[Key] = set()
    passed = read_verdicts(verdicts, unjudged) if verdicts else cands.labels
    if unjudged:  # the sandbox failed on these: leave them out of training rather than call them failures
        warnings.warn(f"{verdicts}: {len(unjudged)} InfraError verdicts (never judged): those candidates are left out")
        cands = dataclasses.replace(cands, samples=[s for s in cands.samples
                                                    if (s.problem_id, s.sample_id) not in unjudged])
    if need_labels and passed is None:
        raise RewardRankerError(f"{samples}: no labels: pass --verdicts (from `rewardranker execute`) or use a "
                                "reranking-layout file with reference_passed")
    if passed is not None:
        missing = [(s.problem_id, s.sample_id) for s in cands.samples if (s.problem_id, s.sample_id) not in passed]
        if missing and need_labels:
            raise RewardRankerError(f"{len(missing)} candidates of {samples} have no verdict, e.g. {missing[0]} "
                                    f"(do the verdicts belong to these samples?)")
    return LabelledCandidates(cands, probs, passed)
