"""Metrics: unbiased pass@k, ranked pass@1, oracle pass@n, AUROC, pairwise accuracy, bootstrap intervals.

All functions take plain Python values so that every stage (execution, reward, self-training) shares one copy.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.records import Score, Verdict

Key = tuple[str, int]


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k), in the stable product form; None when k > n."""
    if k > n:
        return None
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ranked_pass_at_1(scores: Sequence[float], passed: Sequence[bool]) -> float:
    """Chance that the top-scored candidate passes; ties at the top are broken by expectation over the group."""
    if len(scores) != len(passed) or not scores:
        raise ValueError("ranked_pass_at_1 needs one score per candidate and at least one candidate")
    best = max(scores)
    top = [p for s, p in zip(scores, passed) if s == best]
    return sum(top) / len(top)


def top1_index(scores: Sequence[float]) -> int:
    """Index of the first candidate with the highest score (the deterministic pick for `rerank`)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def pairwise_accuracy(scores: Sequence[float], passed: Sequence[bool]) -> float | None:
    """Fraction of (passing, failing) pairs ordered correctly, ties counting one half; None without pairs."""
    pos = np.array([s for s, p in zip(scores, passed) if p], dtype=float)
    neg = np.array([s for s, p in zip(scores, passed) if not p], dtype=float)
    if not len(pos) or not len(neg):
        return None
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve of `scores` predicting `labels`; None when only one class is present."""
    return pairwise_accuracy(scores, labels)  # AUROC is exactly the Mann-Whitney pair statistic


def within_problem_auroc(problems: Iterable[tuple[Sequence[float], Sequence[bool]]]) -> float | None:
    """The AUROC every report prints: each problem's AUROC of its candidates' scores against pass/fail, averaged
    over the problems that have both a passing and a failing candidate (None when no problem has both).

    Rerankers only compare candidates of the same problem, so scores are never compared across problems (a
    pooled AUROC would mix per-problem offsets and difficulty in). Ties count one half. By Mann-Whitney this is
    also the problem-averaged pairwise accuracy.
    """
    per_problem = [a for scores, passed in problems if (a := auroc(scores, passed)) is not None]
    return float(np.mean(per_problem)) if per_problem else None


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over problems (resampling problems with replacement)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


# --------------------------------------------------------------------------- per-problem aggregation


@dataclass
class ProblemOutcome:
    """What one problem's candidates did: verdicts in candidate order, and scores if any."""

    problem_id: str
    language: str
    passed: list[bool]
    scores: list[float] | None = None


def group_outcomes(verdicts: Iterable[Verdict], scores: Iterable[Score] | None = None) -> list[ProblemOutcome]:
    """Group verdicts (and scores, matched by key) per problem; a score without a verdict is an error."""
    by_problem: dict[str, ProblemOutcome] = {}
    keys: dict[str, list[int]] = {}
    for v in verdicts:
        o = by_problem.setdefault(v.problem_id, ProblemOutcome(v.problem_id, v.language, []))
        o.passed.append(bool(v.passed))
        keys.setdefault(v.problem_id, []).append(v.sample_id)
    if scores is not None:
        score_of = {(s.problem_id, s.sample_id): float(s.score) for s in scores}
        for pid, o in by_problem.items():
            missing = [sid for sid in keys[pid] if (pid, sid) not in score_of]
            if missing:
                raise RewardRankerError(f"scores have no entry for problem {pid!r} sample(s) {missing[:5]}")
            o.scores = [score_of[(pid, sid)] for sid in keys[pid]]
        extra = set(score_of) - {(pid, sid) for pid, sids in keys.items() for sid in sids}
        if extra:
            raise RewardRankerError(f"{len(extra)} scores match no verdict, e.g. {sorted(extra)[:3]}")
    return list(by_problem.values())


def summarize(outcomes: list[ProblemOutcome], ks: Sequence[int] = (1, 10, 100)) -> dict:
    """Overall and per-language metrics as a JSON-ready dict (values in percent)."""
    report = {"overall": _summarize_group(outcomes, ks)}
    languages = sorted({o.language for o in outcomes})
    if len(languages) > 1:
        report["per_language"] = {lang: _summarize_group([o for o in outcomes if o.language == lang], ks)
                                  for lang in languages}
    return report


def _summarize_group(outcomes: list[ProblemOutcome], ks: Sequence[int]) -> dict:
    out: dict = {"problems": len(outcomes), "candidates": sum(len(o.passed) for o in outcomes)}
    n_min = min((len(o.passed) for o in outcomes), default=0)
    for k in ks:
        if k > n_min:
            warnings.warn(f"pass@{k} is undefined: some problem has fewer than {k} candidates (min {n_min})")
            out[f"pass@{k}"] = None
            continue
        out[f"pass@{k}"] = 100 * float(np.mean([pass_at_k(len(o.passed), sum(o.passed), k) for o in outcomes]))
    out["oracle pass@n"] = 100 * float(np.mean([any(o.passed) for o in outcomes])) if outcomes else None
    if outcomes and all(o.scores is not None for o in outcomes):
        ranked = [ranked_pass_at_1(o.scores, o.passed) for o in outcomes]
        out["ranked pass@1"] = 100 * float(np.mean(ranked))
        out["ranked pass@1 95% CI"] = [100 * x for x in bootstrap_ci(ranked)]
        accs = [a for o in outcomes if (a := pairwise_accuracy(o.scores, o.passed)) is not None]
        out["pairwise accuracy"] = float(np.mean(accs)) if accs else None
        out["AUROC"] = within_problem_auroc((o.scores, o.passed) for o in outcomes)
    return out


def load_verdicts(path) -> list[Verdict]:
    """Read a VERDICTS JSONL file written by `rewardranker execute`."""
    from rewardranker.records import record_from_dict
    from rewardranker.runio import iter_jsonl

    return [record_from_dict(Verdict, obj, path, line) for line, obj in iter_jsonl(path)]


def load_scores(path) -> list[Score]:
    """Read a SCORES JSONL file written by `rewardranker score`."""
    from rewardranker.records import record_from_dict
    from rewardranker.runio import iter_jsonl

    return [record_from_dict(Score, obj, path, line) for line, obj in iter_jsonl(path)]


def metrics_table(report: dict):
    """A rich Table with one row per group (overall, then each language)."""
    from rich.table import Table

    rows = {"all": report["overall"], **report.get("per_language", {})}
    # pairwise accuracy stays in the JSON; on screen it would repeat the AUROC column (the same number)
    columns = [c for c in report["overall"] if not c.endswith("CI") and c != "pairwise accuracy"]
    table = Table(title="rewardranker metrics (percent, except counts and AUROC: within-problem, averaged "
                        "over problems with passing and failing candidates)")
    table.add_column("group")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        table.add_row(name, *[_fmt(row.get(c)) for c in columns])
    return table


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.2f}"
    return str(value)
