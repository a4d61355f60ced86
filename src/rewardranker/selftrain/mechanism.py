"""The method's chain, measured per iteration on held-out problems, with paired bootstrap intervals.

The claim: PPO_k, trained against RM_{k-1}, finds programs RM_{k-1} ranks first that fail (exploitation); RM_k,
retrained on PPO_k's executed samples, ranks that policy's output better than RM_{k-1} does (on-policy
robustness); a more robust RM gives a better policy (generator) and better reranking (product).

Every metric is a ratio of per-problem sums (`Units`: problem -> (numerator, denominator)), so the same code
gives a value for one run, pools several seeds (sum the units of a problem over seeds), and gives a paired
bootstrap interval of a difference by resampling problems (a cluster bootstrap when seeds are pooled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardranker.metrics import pairwise_accuracy, ranked_pass_at_1
from rewardranker.runio import read_jsonl

Units = dict[str, tuple[float, float]]  # problem_id -> (numerator, denominator)
N_BOOT = 2000


@dataclass
class ProblemCandidates:
    """One problem's held-out candidates: verdicts and (optionally) one reward-model's scores, same order."""

    language: str
    passed: list[bool]
    scores: list[float]


def load_candidates(verdicts_path: Path, scores_path: Path | None = None) -> dict[tuple[str, str], ProblemCandidates]:
    """Verdicts (and scores) grouped by (language, problem), candidates in sample-id order."""
    verdicts = {(r.get("language") or "", r["problem_id"], r["sample_id"]): r for r in read_jsonl(verdicts_path)
                if r.get("status") != "InfraError"}  # the sandbox failed: no verdict on the program
    scores = {(r.get("language") or "", r["problem_id"], r["sample_id"]): float(r["score"])
              for r in read_jsonl(scores_path)} if scores_path is not None else {}
    out: dict[tuple[str, str], ProblemCandidates] = {}
    for key in sorted(verdicts):
        v = verdicts[key]
        pc = out.setdefault(key[:2], ProblemCandidates(str(v.get("language") or "?"), [], []))
        pc.passed.append(bool(v["passed"]))
        if scores:  # a score written without a language matches by (problem, sample)
            pc.scores.append(scores[key] if key in scores else scores[("", *key[1:])])
    return out


# --------------------------------------------------------------------------- per-problem statistics


def _sampled(c: ProblemCandidates) -> tuple[float, float]:
    return sum(c.passed) / len(c.passed), 1.0


def _ranked(c: ProblemCandidates) -> tuple[float, float]:
    return ranked_pass_at_1(c.scores, c.passed), 1.0


def _top1_fails(c: ProblemCandidates) -> tuple[float, float]:
    return 1.0 - ranked_pass_at_1(c.scores, c.passed), 1.0


def _top1_fails_solvable(c: ProblemCandidates) -> tuple[float, float]:
    """Exploitation where the RM had a right answer to pick: only problems with a passing candidate count."""
    return (1.0 - ranked_pass_at_1(c.scores, c.passed), 1.0) if any(c.passed) else (0.0, 0.0)


def _oracle(c: ProblemCandidates) -> tuple[float, float]:
    return float(any(c.passed)), 1.0


def _pairs(c: ProblemCandidates) -> tuple[float, float]:
    """Correctly ordered (passing, failing) pairs and all such pairs: pooled over problems, pair-weighted."""
    n_pos = sum(c.passed)
    total = n_pos * (len(c.passed) - n_pos)
    acc = pairwise_accuracy(c.scores, c.passed)
    return (acc * total, float(total)) if acc is not None else (0.0, 0.0)


def _auroc_within(c: ProblemCandidates) -> tuple[float, float]:
    """AUROC within the problem (problems with both outcomes), each such problem weighing the same."""
    acc = pairwise_accuracy(c.scores, c.passed)
    return (acc, 1.0) if acc is not None else (0.0, 0.0)


STATS: dict[str, Callable[[ProblemCandidates], tuple[float, float]]] = {
    "sampled": _sampled, "ranked": _ranked, "top1_fails": _top1_fails, "top1_fails_solvable": _top1_fails_solvable,
    "oracle": _oracle, "pairwise": _pairs,
    "auroc_within": _auroc_within,
}


def units(table: dict[str, ProblemCandidates], stat: str, language: str | None = None) -> Units:
    """Per-problem (numerator, denominator) of `stat`, optionally for one language only."""
    fn = STATS[stat]
    return {pid: fn(c) for pid, c in table.items() if language is None or c.language == language}


def pool(many: Iterable[Units]) -> Units:
    """Sum the units of each problem over several runs (seeds): the pooled value weighs every run equally."""
    out: dict[str, tuple[float, float]] = {}
    for u in many:
        for pid, (num, den) in u.items():
            a, b = out.get(pid, (0.0, 0.0))
            out[pid] = (a + num, b + den)
    return out


def value(u: Units) -> float | None:
    """The metric in percent (None when nothing is defined, e.g. no problem with both outcomes)."""
    den = sum(d for _, d in u.values())
    return None if den == 0 else round(100.0 * sum(n for n, _ in u.values()) / den, 2)


def paired_diff(a: Units, b: Units, seed: int = 0, n_boot: int = N_BOOT) -> dict[str, float | list | None]:
    """value(a) - value(b) over the problems both have, and its 95% paired bootstrap interval (problems
    resampled with replacement, the same draw for both)."""
    common = sorted(set(a) & set(b))
    if not common:
        return {"diff": None, "ci95": [None, None], "problems": 0}
    arr = np.array([[a[p][0], a[p][1], b[p][0], b[p][1]] for p in common], dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(common), size=(n_boot, len(common)))
    sums = arr[idx].sum(axis=1)  # (n_boot, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]
    boots = boots[np.isfinite(boots)]
    tot = arr.sum(axis=0)
    if tot[1] == 0 or tot[3] == 0:
        return {"diff": None, "ci95": [None, None], "problems": len(common)}
    diff = tot[0] / tot[1] - tot[2] / tot[3]
    lo, hi = (np.quantile(boots, [0.025, 0.975]) if boots.size else (np.nan, np.nan))
    return {"diff": round(100 * diff, 2), "ci95": [round(100 * float(lo), 2), round(100 * float(hi), 2)],
            "problems": len(common)}


# --------------------------------------------------------------------------- one iteration of one run


def tables(run_dir: Path, k: int) -> dict[str, dict[str, ProblemCandidates]]:
    """The scored candidate sets iteration k is judged on (missing files give no entry).

    cur: PPO_k's samples scored by RM_k; prev: the same samples by RM_{k-1}; fixed: iteration 0's samples by
    RM_k; base: iteration 0's samples by RM_0; mix_prev / mix_cur: iteration 0's and PPO_k's samples together,
    scored by RM_{k-1} / RM_k (does the RM still put PPO_k's failures above the SFT model's passing programs?)."""
    run_dir = Path(run_dir)
    out = {}
    ev, sc = run_dir / f"iter_{k}/eval_execute/verdicts.jsonl", run_dir / f"iter_{k}/eval_score"
    ev0 = run_dir / "iter_0/eval_execute/verdicts.jsonl"
    for name, verdicts, scores in (("cur", ev, sc / "scores.jsonl"), ("prev", ev, sc / "scores_prev.jsonl"),
                                   ("fixed", ev0, sc / "scores_iter0.jsonl"),
                                   ("base", ev0, run_dir / "iter_0/eval_score/scores.jsonl")):
        if verdicts.exists() and scores.exists():
            out[name] = load_candidates(verdicts, scores)
    if k > 0:  # SFT's and PPO_k's candidates pooled per problem, each set scored by RM_{k-1} and by RM_k
        prev_fixed = sc.parent.parent / f"iter_{k - 1}/eval_score/scores_iter0.jsonl"
        for name, a, b in (("mix_prev", "prev", None), ("mix_cur", "cur", "fixed")):
            fixed = out.get(b) if b else (load_candidates(ev0, prev_fixed) if prev_fixed.exists() else None)
            if a in out and fixed is not None:
                out[name] = merge(out[a], fixed)
    return out


def pooled_units(run_dirs: Iterable[Path], k: int, language: str | None = None) -> dict[str, dict[str, Units]]:
    """Iteration k's units per table and statistic, summed per problem over several runs (e.g. seeds)."""
    per_run = [tables(d, k) for d in run_dirs]
    names = set.intersection(*(set(t) for t in per_run))
    return {name: {stat: pool(units(t[name], stat, language) for t in per_run) for stat in STATS} for name in names}


def status_shares(verdict_paths: Iterable[Path]) -> dict[str, float]:
    """Percent of the verdicts in these files by execution status (e.g. OK, SyntaxError, Exception), pooled."""
    counts: dict[str, int] = {}
    for path in verdict_paths:
        for r in read_jsonl(path):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    total = sum(counts.values())
    return {status: round(100.0 * n / total, 2) for status, n in sorted(counts.items())} if total else {}


def merge(a: dict[str, ProblemCandidates], b: dict[str, ProblemCandidates]) -> dict[str, ProblemCandidates]:
    """The candidates of both sets, per problem (problems in both only).

    Each set's scores were computed among its own candidates (the consensus feature compares a candidate with
    its siblings), so pooled scores are comparable up to that feature's shift between the two sets."""
    return {pid: ProblemCandidates(a[pid].language, a[pid].passed + b[pid].passed, a[pid].scores + b[pid].scores)
            for pid in a if pid in b}


def mechanism(t: dict[str, dict[str, ProblemCandidates]], language: str | None = None,
              seed: int = 0) -> dict[str, object]:
    """Every chain metric of one iteration (percent), from the tables of `tables` (or pooled equivalents)."""
    return chain_metrics({name: {stat: units(tab, stat, language) for stat in STATS} for name, tab in t.items()},
                         seed)


def chain_metrics(u: dict[str, dict[str, Units]], seed: int = 0) -> dict[str, object]:
    """The chain metrics from units (`u[table][stat]`), so seeds can be pooled before calling this."""
    cur, base = u["cur"], u["base"]
    out: dict[str, object] = {
        "problems": len(cur["sampled"]),
        # generator
        "sampled_pass@1": value(cur["sampled"]), "sft_sampled_pass@1": value(base["sampled"]),
        "sampled_vs_sft": paired_diff(cur["sampled"], base["sampled"], seed),
        # product
        "reranked_pass@1": value(cur["ranked"]), "rerank_gain": paired_diff(cur["ranked"], cur["sampled"], seed),
        "reranked_vs_iter0": paired_diff(cur["ranked"], base["ranked"], seed),
        "oracle_pass@n": value(cur["oracle"]),
        "rm_pairwise_acc": value(cur["pairwise"]), "rm_auroc_within": value(cur["auroc_within"]),
    }
    if "fixed" in u:
        out["fixed_reranked_pass@1"] = value(u["fixed"]["ranked"])
        out["fixed_vs_rm0"] = paired_diff(u["fixed"]["ranked"], base["ranked"], seed)
    if "prev" in u:  # iterations k >= 1
        prev = u["prev"]
        out["exploitation"] = value(prev["top1_fails"])
        out["exploitation_solvable"] = value(prev["top1_fails_solvable"])
        for stat, name in (("ranked", "ranked_pass@1"), ("pairwise", "pairwise_acc"), ("auroc_within", "auroc")):
            out[f"prev_rm_{name}"] = value(prev[stat])
            out[f"robust_{name}"] = paired_diff(cur[stat], prev[stat], seed)
    if "mix_prev" in u and "mix_cur" in u:  # defined even when PPO_k's own samples never pass
        out["exploitation_mixed"] = value(u["mix_prev"]["top1_fails"])
        out["mixed_rm_ranked_pass@1"] = value(u["mix_cur"]["ranked"])
        out["robust_mixed_ranked_pass@1"] = paired_diff(u["mix_cur"]["ranked"], u["mix_prev"]["ranked"], seed)
        out["robust_mixed_auroc"] = paired_diff(u["mix_cur"]["auroc_within"], u["mix_prev"]["auroc_within"], seed)
    return out


def languages(t: dict[str, dict[str, ProblemCandidates]]) -> list[str]:
    """The languages of the held-out problems, in the suite's order where known."""
    found = {c.language for c in t["cur"].values()}
    order = ["py", "js", "php"]
    return [lang for lang in order if lang in found] + sorted(found - set(order))


def top1_fail_units(t: dict[str, dict[str, ProblemCandidates]], language: str | None = None) -> Units:
    """Per-problem exploitation units of iteration k (RM_{k-1}'s top-1 on PPO_k fails)."""
    return units(t["prev"], "top1_fails", language)
