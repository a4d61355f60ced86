"""Evaluate rerankers: random / ranked / oracle pass@1 with bootstrap intervals, pairwise accuracy, AUROC,
per language; a table, a bar plot of pass@1 by mode and a reliability plot; K-fold splits by problem."""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.metrics import (
    bootstrap_ci,
    pairwise_accuracy,
    pass_at_k,
    ranked_pass_at_1,
    within_problem_auroc,
)
from rewardranker.records import Problem, Sample

Key = tuple[str, str, int]  # (language, problem_id, sample_id)


@dataclass
class ProblemScores:
    problem_id: str
    language: str
    passed: list[bool]
    scores: dict[str, list[float]]  # mode -> one score per candidate


def kfold_problems(problem_ids: list[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """K (train ids, eval ids) splits by problem: every problem is evaluated exactly once, never trained on."""
    ids = sorted(set(problem_ids))
    if k < 2 or k > len(ids):
        raise RewardRankerError(f"k-fold needs 2 <= k <= number of problems ({len(ids)}), got k={k}")
    random.Random(seed).shuffle(ids)
    folds = [sorted(ids[i::k]) for i in range(k)]
    return [(sorted(set(ids) - set(f)), f) for f in folds]


def collect(problems: dict[str, Problem], samples: list[Sample], passed: dict[Key, bool],
            scores: dict[str, dict[Key, float]]) -> list[ProblemScores]:
    """Join candidates, verdicts and each mode's scores per problem; missing entries are errors."""
    out: dict[tuple[str, str], ProblemScores] = {}
    for s in samples:
        key = s.key  # (language, problem_id, sample_id)
        if key not in passed:
            raise RewardRankerError(f"no verdict for candidate {key} (ids of candidates and verdicts must match)")
        lang = s.language or "py"
        ps = out.setdefault(s.problem_key, ProblemScores(s.problem_id, lang, [], {m: [] for m in scores}))
        ps.passed.append(bool(passed[key]))
        for mode, table in scores.items():
            if key not in table:
                raise RewardRankerError(f"scores for mode {mode!r} have no entry for candidate {key}")
            ps.scores[mode].append(float(table[key]))
    if not out:
        raise RewardRankerError("nothing to evaluate: no candidates")
    return list(out.values())


def _centred(values: list[float]) -> list[float]:
    a = np.asarray(values, dtype=float)
    return (a - a.mean()).tolist()


def summarize_group(rows: list[ProblemScores], modes: list[str], baseline: str | None) -> dict:
    """Metrics of one group of problems (values in percent except accuracies/AUROC)."""
    rand = [pass_at_k(len(r.passed), sum(r.passed), 1) for r in rows]
    out: dict = {"problems": len(rows), "random pass@1": 100 * float(np.mean(rand)),
                 "random pass@1 CI": [100 * x for x in bootstrap_ci(rand)],
                 "oracle pass@n": 100 * float(np.mean([any(r.passed) for r in rows])), "modes": {}}
    for mode in modes:
        ranked = [ranked_pass_at_1(r.scores[mode], r.passed) for r in rows]
        accs = [a for r in rows if (a := pairwise_accuracy(r.scores[mode], r.passed)) is not None]
        m = {"ranked pass@1": 100 * float(np.mean(ranked)), "CI": [100 * x for x in bootstrap_ci(ranked)],
             "pairwise accuracy": float(np.mean(accs)) if accs else None,
             "AUROC": within_problem_auroc((r.scores[mode], r.passed) for r in rows)}
        if baseline and baseline in modes and mode != baseline:
            base = [ranked_pass_at_1(r.scores[baseline], r.passed) for r in rows]
            diff = [a - b for a, b in zip(ranked, base)]
            m[f"vs {baseline}"] = 100 * float(np.mean(diff))
            m[f"vs {baseline} CI"] = [100 * x for x in bootstrap_ci(diff)]
        out["modes"][mode] = m
    return out


def evaluate(rows: list[ProblemScores], baseline: str | None = "agreement") -> dict:
    """Overall and per-language report (paired bootstrap against `baseline` when it was scored)."""
    modes = list(rows[0].scores)
    report = {"overall": summarize_group(rows, modes, baseline)}
    langs = sorted({r.language for r in rows})
    if len(langs) > 1:
        report["per_language"] = {lang: summarize_group([r for r in rows if r.language == lang], modes, baseline)
                                  for lang in langs}
    return report


def report_table(report: dict, title: str = "reranking (percent; 95% bootstrap CI over problems)"):
    """A rich Table: one row per (group, mode), plus random and oracle rows."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("group", "ranker", "pass@1", "95% CI", "AUROC"):
        table.add_column(col, justify="left" if col in ("group", "ranker") else "right")
    groups = {"all": report["overall"], **report.get("per_language", {})}
    for name, g in groups.items():
        lo, hi = g["random pass@1 CI"]
        table.add_row(name, "random", f"{g['random pass@1']:.2f}", f"{lo:.1f}-{hi:.1f}", "")
        for mode, m in g["modes"].items():
            au = m["AUROC"]
            table.add_row(name, mode, f"{m['ranked pass@1']:.2f}", f"{m['CI'][0]:.1f}-{m['CI'][1]:.1f}",
                          "" if au is None else f"{au:.3f}")
        table.add_row(name, f"oracle pass@n ({g['problems']} problems)", f"{g['oracle pass@n']:.2f}", "", "")
    table.caption = ("AUROC: within-problem, averaged over problems with passing and failing candidates "
                     "(= pairwise accuracy)")
    return table


def plot_pass_at_1(report: dict, path: str | Path) -> Path:
    """Bar chart of ranked pass@1 by mode with 95% intervals, random and oracle as lines.

    Each value is printed under its ranker's name (below the axis) and the legend sits outside the axes, so no
    text covers a bar, a whisker or a line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = report["overall"]
    modes = list(g["modes"])
    vals = np.array([g["modes"][m]["ranked pass@1"] for m in modes])
    lo = np.array([g["modes"][m]["CI"][0] for m in modes])
    hi = np.array([g["modes"][m]["CI"][1] for m in modes])
    many = len(modes) > 4
    fig, ax = plt.subplots(figsize=(min(1.1 * len(modes) + 4.5, 16) if many else 1.9 * len(modes) + 4.5, 5))
    x = np.arange(len(modes))
    ax.bar(x, vals, color="#4c72b0", width=0.6, label="ranked pass@1 (95% CI)")
    ax.errorbar(x, vals, yerr=[vals - lo, hi - vals], fmt="none", ecolor="black", capsize=4, lw=1)
    ax.axhline(g["random pass@1"], ls="--", color="gray", label=f"random {g['random pass@1']:.1f}")
    ax.axhline(g["oracle pass@n"], ls=":", color="green", lw=1.5, label=f"oracle pass@n {g['oracle pass@n']:.1f}")
    top = max([*hi, g["oracle pass@n"], 1.0])
    ax.set_ylim(0, min(100, top) * 1.08 + 2)
    names = [f"{m} ({v:.1f})" if many else f"{textwrap.fill(m, 18)}\n{v:.1f} [{a:.1f}, {b:.1f}]"
             for m, v, a, b in zip(modes, vals, lo, hi)]
    ax.set_xticks(x, names, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_ylabel("ranked pass@1 (%), 95% bootstrap CI")
    ax.set_title(f"ranked pass@1 by ranker ({g['problems']} problems)", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def reliability(rows: list[ProblemScores], mode: str, bins: int = 10) -> dict:
    """Platt-scaled probability of passing from within-problem centred scores, in `bins` equal-width bins.

    BT rewards are only defined up to a per-problem shift, so scores are centred within each problem first; the
    two Platt parameters are fitted on the same data (this shows the shape of calibration, not a held-out fit).
    Returns the non-empty bins as (mean predicted, observed pass rate, count) and the ECE.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray([v for r in rows for v in _centred(r.scores[mode])]).reshape(-1, 1)
    y = np.asarray([p for r in rows for p in r.passed], dtype=int)
    if len(set(y)) < 2:
        return {"bins": [], "ece": None}
    prob = LogisticRegression().fit(x, y).predict_proba(x)[:, 1]
    which = np.minimum((prob * bins).astype(int), bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        chunk = which == b
        if chunk.any():
            p, f, n = float(prob[chunk].mean()), float(y[chunk].mean()), int(chunk.sum())
            out.append((p, f, n))
            ece += n / len(y) * abs(p - f)
    return {"bins": out, "ece": ece}


def plot_reliability(rows: list[ProblemScores], modes: list[str], path: str | Path,
                     sample_status: dict[str, str] | None = None) -> Path:
    """Reliability diagram: one line per ranker (predicted vs observed pass rate, 10 equal-width bins), the
    number of candidates in each bin below it, and a title saying whether each ranker's scores are in-sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axn) = plt.subplots(2, 1, figsize=(7.5, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfectly calibrated")
    rels = {m: reliability(rows, m) for m in modes}
    drawn = [m for m in modes if rels[m]["bins"]]
    width = 0.1 / (len(drawn) + 1)
    for k, mode in enumerate(drawn):
        pred, obs, counts = zip(*rels[mode]["bins"])
        line, = ax.plot(pred, obs, marker="o", label=f"{mode} (ECE {rels[mode]['ece']:.3f})")
        centres = np.minimum((np.asarray(pred) * 10).astype(int), 9) / 10 + 0.05
        offs = centres + (k - (len(drawn) - 1) / 2) * width
        bars = axn.bar(offs, counts, width=width, color=line.get_color())
        if len(drawn) <= 4:
            axn.bar_label(bars, labels=[str(c) for c in counts], fontsize=6.5, padding=2, rotation=90)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed pass rate")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    axn.set_yscale("log")
    axn.set_ylabel("candidates\nper bin")
    axn.set_xlabel("predicted pass probability (Platt scaling of within-problem centred scores, fitted in-sample)")
    axn.set_ylim(0.8, max([c for m in drawn for _, _, c in rels[m]["bins"]], default=1) * 60)
    status = sample_status or {}
    lines = [f"{m}: {status.get(m, 'in-sample status not given')}" for m in modes]
    ax.set_title("Reliability of each ranker's scores\n" + "\n".join(lines), fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
