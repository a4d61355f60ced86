"""Per-iteration metrics on the held-out problems, and the final report (Markdown, JSON, PNG).

Per iteration k, on held-out problems (percent): sampled pass@1 of policy k, reranked pass@1 of its samples
with RM k, oracle pass@n, the same reranking applied to iteration 0's samples (a fixed candidate set, so RM
changes show apart from policy changes), RM pairwise accuracy (within problems) and AUROC (pooled), plus the
number of hard negatives mined in iteration k and the stage wall times.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rewardranker.metrics import auroc, bootstrap_ci, pairwise_accuracy, ranked_pass_at_1
from rewardranker.runio import read_jsonl, write_json
from rewardranker.selftrain.config import SelfTrainConfig

COLUMNS = [  # (key, header)
    ("sampled_pass@1", "sampled pass@1"),
    ("reranked_pass@1", "reranked pass@1"),
    ("oracle_pass@n", "oracle pass@n"),
    ("reranked_pass@1_iter0_samples", "reranked pass@1 (iter-0 samples)"),
    ("rm_pairwise_acc", "RM pairwise acc"),
    ("rm_auroc", "RM AUROC"),
    ("hard_negatives", "hard negatives"),
    ("rm_data", "RM data"),
    ("train_sampled_pass@1", "train sampled pass@1"),
]
PAPER_TREND = "paper (Sorokin et al., 2025): iteration 2 > iteration 1 on MultiPL-E"


def _grouped(verdicts_path: Path, scores_path: Path | None) -> dict[str, tuple[list[bool], list[float]]]:
    passed = {(r["problem_id"], r["sample_id"]): bool(r["passed"]) for r in read_jsonl(verdicts_path)
              if r.get("status") != "InfraError"}  # never judged: in no metric
    scores = {(r["problem_id"], r["sample_id"]): float(r["score"]) for r in read_jsonl(scores_path)} \
        if scores_path else {}
    out: dict[str, tuple[list[bool], list[float]]] = {}
    for key in sorted(passed):
        p, s = out.setdefault(key[0], ([], []))
        p.append(passed[key])
        if scores:
            s.append(scores[key])
    return out


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 2)


def eval_metrics(verdicts_path: Path, scores_path: Path) -> dict[str, Any]:
    """Sampled / reranked / oracle pass@1 and RM accuracy over the problems of one eval set."""
    groups = _grouped(verdicts_path, scores_path)
    sampled = [sum(p) / len(p) for p, _ in groups.values()]
    reranked = [ranked_pass_at_1(s, p) for p, s in groups.values()]
    pair = [a for a in (pairwise_accuracy(s, p) for p, s in groups.values()) if a is not None]
    all_p = [x for p, _ in groups.values() for x in p]
    all_s = [x for _, s in groups.values() for x in s]
    gain = np.array(reranked) - np.array(sampled)
    lo, hi = bootstrap_ci(gain.tolist())
    return {"problems": len(groups), "sampled_pass@1": _pct(float(np.mean(sampled))),
            "reranked_pass@1": _pct(float(np.mean(reranked))),
            "oracle_pass@n": _pct(float(np.mean([any(p) for p, _ in groups.values()]))),
            "rerank_gain_ci95": [_pct(lo), _pct(hi)],
            "rm_pairwise_acc": _pct(float(np.mean(pair))) if pair else None, "rm_auroc": _pct(auroc(all_s, all_p))}


def iteration_metrics(run_dir: Path, k: int) -> dict[str, Any]:
    """Everything the report shows for iteration k (read from the run directory)."""
    run_dir = Path(run_dir)
    out = {"iteration": k}
    out.update(eval_metrics(run_dir / f"iter_{k}/eval_execute/verdicts.jsonl",
                            run_dir / f"iter_{k}/eval_score/scores.jsonl"))
    fixed = eval_metrics(run_dir / "iter_0/eval_execute/verdicts.jsonl",
                         run_dir / f"iter_{k}/eval_score/scores_iter0.jsonl")
    out["reranked_pass@1_iter0_samples"] = fixed["reranked_pass@1"]
    hard = run_dir / f"iter_{k}/data/hard_negatives.jsonl"
    out["hard_negatives"] = len(read_jsonl(hard)) if hard.exists() else 0
    out["rm_data"] = len(read_jsonl(run_dir / f"iter_{k}/data/rm_data.jsonl"))
    train = _grouped(run_dir / f"iter_{k}/execute/verdicts.jsonl", None)
    out["train_sampled_pass@1"] = _pct(float(np.mean([sum(p) / len(p) for p, _ in train.values()])))
    return out


# --------------------------------------------------------------------------- the report


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements about the two things the method should show, true or not."""
    out = []
    wins = [r["iteration"] for r in rows if r["reranked_pass@1"] > r["sampled_pass@1"]]
    out.append(f"Reranked pass@1 is above sampled pass@1 in {len(wins)} of {len(rows)} iterations "
               f"({', '.join(map(str, wins)) or 'none'}).")
    if len(rows) >= 3:
        d = rows[2]["reranked_pass@1"] - rows[1]["reranked_pass@1"]
        verdict = "not worse than" if d >= 0 else "WORSE than"
        out.append(f"Iteration 2 reranked pass@1 is {verdict} iteration 1 ({d:+.2f} points); {PAPER_TREND}.")
        f = rows[2]["reranked_pass@1_iter0_samples"] - rows[1]["reranked_pass@1_iter0_samples"]
        out.append(f"On the fixed iteration-0 candidates, RM 2 vs RM 1: {f:+.2f} points reranked pass@1.")
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = "| iteration | " + " | ".join(h for _, h in COLUMNS) + " |"
    sep = "|---" * (len(COLUMNS) + 1) + "|"
    lines = [head, sep]
    for r in rows:
        cells = ["-" if r.get(k) is None else (f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]))
                 for k, _ in COLUMNS]
        lines.append(f"| {r['iteration']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(run_dir: Path, cfg: SelfTrainConfig, out: Path) -> Path:
    """report.md, report.json and report.png in `out`."""
    from rewardranker.selftrain.loop import stage_timings

    run_dir = Path(run_dir)
    rows = [json.loads((run_dir / f"iter_{k}/metrics/metrics.json").read_text(encoding="utf-8"))
            for k in range(cfg.iterations + 1)]
    timings = stage_timings(run_dir)
    notes = findings(rows)
    write_json(out / "report.json", {"config_hash": cfg.hash(), "iterations": rows, "findings": notes,
                                     "stage_timings": timings,
                                     "total_wall_s": round(sum(t["wall_s"] for t in timings), 1)})
    timing_lines = "\n".join(f"| {t['stage']} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |" for t in timings)
    text = (f"# Self-training report\n\nHeld-out problems: {rows[0]['problems']}; percentages.\n\n"
            f"{markdown_table(rows)}\n\n" + "\n".join(f"- {n}" for n in notes) +
            f"\n\n![metrics by iteration](report.png)\n\n| stage | wall s | CPU s |\n|---|---|---|\n{timing_lines}\n")
    (out / "report.md").write_text(text, encoding="utf-8")
    plot(rows, out / "report.png")
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Left: held-out pass@1 by iteration; right: RM accuracy; the paper's trend as a caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r["iteration"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (("sampled_pass@1", "o--"), ("reranked_pass@1", "o-"), ("oracle_pass@n", "^:"),
                       ("reranked_pass@1_iter0_samples", "s-.")):
        a.plot(its, [r[key] for r in rows], style, label=key)
    a.set(xlabel="iteration", ylabel="% of held-out problems", title="held-out pass@1", xticks=its, ylim=(0, 100))
    a.legend(fontsize=8)
    for key in ("rm_pairwise_acc", "rm_auroc"):
        b.plot(its, [r[key] if r[key] is not None else np.nan for r in rows], "o-", label=key)
    b.set(xlabel="iteration", ylabel="%", title="reward model on held-out candidates", xticks=its, ylim=(0, 100))
    b.legend(fontsize=8)
    fig.text(0.5, 0.005, f"Expected trend, {PAPER_TREND} (the paper reports no CPU-scale numbers to overlay)",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
