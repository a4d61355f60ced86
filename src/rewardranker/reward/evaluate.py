"""Evaluate rerankers: random / ranked / oracle pass@1 with bootstrap intervals, pairwise accuracy, AUROC,
per language; a table, a bar plot of pass@1 by mode and a reliability plot; K-fold splits by problem."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.metrics import auroc, bootstrap_ci, pairwise_accuracy, pass_at_k, ranked_pass_at_1
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
             "AUROC (within-problem centred)": auroc([x for r in rows for x in _centred(r.scores[mode])],
                                                     [p for r in rows for p in r.passed])}
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
    for col in ("group", "ranker", "pass@1", "95% CI", "pairwise acc", "AUROC"):
        table.add_column(col, justify="left" if col in ("group", "ranker") else "right")
    groups = {"all": report["overall"], **report.get("per_language", {})}
    for name, g in groups.items():
        lo, hi = g["random pass@1 CI"]
        table.add_row(name, "random", f"{g['random pass@1']:.2f}", f"{lo:.1f}-{hi:.1f}", "", "")
        for mode, m in g["modes"].items():
            acc, au = m["pairwise accuracy"], m["AUROC (within-problem centred)"]
            table.add_row(name, mode, f"{m['ranked pass@1']:.2f}", f"{m['CI'][0]:.1f}-{m['CI'][1]:.1f}",
                          "" if acc is None else f"{acc:.3f}", "" if au is None else f"{au:.3f}")
        table.add_row(name, f"oracle pass@n ({g['problems']} problems)", f"{g['oracle pass@n']:.2f}", "", "", "")
    return table


def plot_pass_at_1(report: dict, path: str | Path) -> Path:
    """Bar chart of ranked pass@1 by mode with 95% intervals, random and oracle as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = report["overall"]
    modes = list(g["modes"])
    vals = [g["modes"][m]["ranked pass@1"] for m in modes]
    err = np.array([[v - g["modes"][m]["CI"][0], g["modes"][m]["CI"][1] - v] for m, v in zip(modes, vals)]).T
    fig, ax = plt.subplots(figsize=(min(1.2 * len(modes) + 3, 14), 5))
    ax.bar(modes, vals, yerr=err, capsize=4, color="#4c72b0")
    ax.axhline(g["random pass@1"], ls="--", color="gray", label=f"random {g['random pass@1']:.1f}")
    ax.axhline(g["oracle pass@n"], ls=":", color="green", label=f"oracle {g['oracle pass@n']:.1f}")
    for i, v in enumerate(vals):
        ax.text(i, v + 1, f"{v:.1f}", ha="center")
    ax.tick_params(axis="x", labelrotation=30 if len(modes) > 4 else 0)
    plt.setp(ax.get_xticklabels(), ha="right" if len(modes) > 4 else "center")
    ax.set_ylabel("ranked pass@1 (%)")
    ax.set_title(f"pass@1 by ranker ({g['problems']} problems)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def reliability(rows: list[ProblemScores], mode: str, bins: int = 10) -> dict:
    """Platt-scaled probability of passing from within-problem centred scores, binned into equal-count bins.

    BT rewards are only defined up to a per-problem shift, so scores are centred within each problem first; the
    two Platt parameters are fitted on the same data (this shows the shape of calibration, not a held-out fit).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray([v for r in rows for v in _centred(r.scores[mode])]).reshape(-1, 1)
    y = np.asarray([p for r in rows for p in r.passed], dtype=int)
    if len(set(y)) < 2:
        return {"bins": [], "ece": None}
    prob = LogisticRegression().fit(x, y).predict_proba(x)[:, 1]
    order = np.argsort(prob)
    out, ece = [], 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            p, f = float(prob[chunk].mean()), float(y[chunk].mean())
            out.append((p, f, len(chunk)))
            ece += len(chunk) / len(y) * abs(p - f)
    return {"bins": out, "ece": ece}


def plot_reliability(rows: list[ProblemScores], modes: list[str], path: str | Path) -> Path:
    """Reliability diagram (predicted vs observed pass rate) for each mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="gray")
    for mode in modes:
        rel = reliability(rows, mode)
        if rel["bins"]:
            ax.plot([b[0] for b in rel["bins"]], [b[1] for b in rel["bins"]], marker="o",
                    label=f"{mode} (ECE {rel['ece']:.3f})")
    ax.set_xlabel("predicted pass probability (Platt-scaled score)")
    ax.set_ylabel("observed pass rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
