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
from rewardranker.records import SampleKey, Score, Status, Verdict

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
    """Group verdicts (and scores, matched by key) per (language, problem); a score without a verdict is an error.

    A score without a language (files written before scores carried one) matches by problem and sample id
    when that id names one language only. InfraError verdicts (the program was never judged) are left out,
    with a warning.
    """
    by_problem: dict[tuple[str, str], ProblemOutcome] = {}
    keys: dict[tuple[str, str], list[int]] = {}
    unjudged: set[tuple[str, str, int]] = set()
    for v in verdicts:
        if v.status == Status.INFRA_ERROR:
            unjudged.add((v.language, v.problem_id, v.sample_id))
            continue
        o = by_problem.setdefault((v.language, v.problem_id), ProblemOutcome(v.problem_id, v.language, []))
        o.passed.append(bool(v.passed))
        keys.setdefault((v.language, v.problem_id), []).append(v.sample_id)
    if scores is not None:
        score_of = _scores_by_key(scores, by_problem)
        for (lang, pid), o in by_problem.items():
            missing = [sid for sid in keys[(lang, pid)] if (lang, pid, sid) not in score_of]
            if missing:
                raise RewardRankerError(f"scores have no entry for problem {pid!r} ({lang or 'no language'}) "
                                        f"sample(s) {missing[:5]}")
            o.scores = [score_of[(lang, pid, sid)] for sid in keys[(lang, pid)]]
        extra = set(score_of) - {(lang, pid, sid) for (lang, pid), sids in keys.items() for sid in sids} - unjudged
        if extra:
            raise RewardRankerError(f"{len(extra)} scores match no verdict, e.g. {sorted(extra)[:3]}")
    if unjudged:
        warnings.warn(f"{len(unjudged)} verdicts are InfraError (the sandbox failed; not judged): left out of "
                      f"every metric, e.g. {min(unjudged)}; rerun `execute` to judge them")
    return list(by_problem.values())


def _scores_by_key(scores: Iterable[Score], problems: dict[tuple[str, str], ProblemOutcome]) -> dict:
    return align_scores(scores, [(lang, pid, 0) for lang, pid in problems])


def align_scores(scores: Iterable[Score], keys: Iterable[SampleKey]) -> dict[SampleKey, float]:
    """Scores by (language, problem_id, sample_id); a score without a language takes the language its problem id
    has among `keys`, and is an error when that id exists in several languages (it could belong to any)."""
    return _align(scores, keys, lambda s: float(s.score), "score")


def align_verdicts(verdicts: Iterable[Verdict], keys: Iterable[SampleKey]) -> dict[SampleKey, bool]:
    """Passed by (language, problem_id, sample_id), verdicts without a language matched as `align_scores` does."""
    return _align(verdicts, keys, lambda v: bool(v.passed), "verdict")


def _align(records, keys: Iterable[SampleKey], value, what: str) -> dict:
    langs_of: dict[str, set[str]] = {}
    for lang, pid, _ in keys:
        langs_of.setdefault(pid, set()).add(lang)
    out: dict[SampleKey, object] = {}
    for r in records:
        lang = r.language
        if not lang and r.problem_id in langs_of:
            if len(langs_of[r.problem_id]) > 1:
                raise RewardRankerError(f"{what} for {r.problem_id!r}/{r.sample_id} has no language, and that problem "
                                        f"id exists in {', '.join(sorted(langs_of[r.problem_id]))}: give the {what}s "
                                        "a 'language' field (this version writes it)")
            lang = next(iter(langs_of[r.problem_id]))
        out[(lang, r.problem_id, r.sample_id)] = value(r)
    return out


def summarize(outcomes: list[ProblemOutcome], ks: Sequence[int] = (1, 10, 100)) -> dict:
    """Overall and per-language metrics as a JSON-ready dict (values in percent)."""
    report = {"overall": _summarize_group(outcomes, ks)}
    languages = sorted({o.language for o in outcomes})
    if len(languages) > 1 or languages and languages[0]:
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


def load_verdicts(path, detected: list[str] | None = None) -> list[Verdict]:
    """Read verdicts: a VERDICTS JSONL from `rewardranker execute`, or a MultiPL-E results folder.

    A (language, problem_id, sample_id) key given twice is an error naming both places. The detected
    format is appended to `detected` when a list is given.
    """
    from pathlib import Path

    from rewardranker.formats import read_verdicts
    from rewardranker.problems import check_unique_keys

    verdicts, origins, fmt = read_verdicts(Path(path))
    check_unique_keys([v.key for v in verdicts], origins)
    if detected is not None:
        detected.append(fmt)
    return verdicts


def load_scores(path) -> list[Score]:
    """Read a SCORES JSONL file written by `rewardranker score`; a key given twice is an error."""
    from rewardranker.problems import check_unique_keys
    from rewardranker.records import record_from_dict
    from rewardranker.runio import iter_jsonl

    rows = [(line, record_from_dict(Score, obj, path, line)) for line, obj in iter_jsonl(path)]
    check_unique_keys([s.key for _, s in rows], [f"{path}:{line}" for line, _ in rows])
    return [s for _, s in rows]


def metrics_table(report: dict):
    """A rich Table with one row per group (overall, then each language)."""
    from rich.table import Table

    rows = {"all": report["overall"], **report.get("per_language", {})}
    if len(report.get("per_language", {})) == 1:  # one language: its row is the "all" row
        rows = report["per_language"]
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
