"""Per-iteration metrics on the held-out problems, and the final report (Markdown, JSON, PNG).

Per iteration k (percent, held-out problems; intervals are 95% paired bootstraps over problems): the chain
metrics of `mechanism.py` (exploitation of RM_{k-1} by PPO_k, on-policy robustness RM_k vs RM_{k-1}, the
generator against SFT, reranked pass@1 and RM_k on iteration 0's fixed candidates), the same per language,
the RM data (hard negatives mined, records) and the training-problem sampled pass@1.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from rewardranker.runio import read_jsonl, write_json
from rewardranker.selftrain import mechanism
from rewardranker.selftrain.config import SelfTrainConfig

PAPER_TREND = "paper (Sorokin et al., 2025): iteration 2 > iteration 1 on MultiPL-E"
LANGUAGE_KEYS = ("sampled_pass@1", "reranked_pass@1", "fixed_reranked_pass@1", "exploitation", "robust_ranked_pass@1",
                 "rm_pairwise_acc")


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 2)


def iteration_metrics(run_dir: Path, k: int) -> dict[str, Any]:
    """Everything the report shows for iteration k (read from the run directory)."""
    run_dir = Path(run_dir)
    t = mechanism.tables(run_dir, k)
    out: dict[str, Any] = {"iteration": k, **mechanism.mechanism(t)}
    out["per_language"] = {lang: {key: v for key, v in mechanism.mechanism(t, lang).items()
                                  if key in LANGUAGE_KEYS or key == "problems"}
                           for lang in mechanism.languages(t)}
    hard = run_dir / f"iter_{k}/data/hard_negatives.jsonl"
    out["hard_negatives"] = len(read_jsonl(hard)) if hard.exists() else 0
    stats = run_dir / f"iter_{k}/data/data_stats.json"
    out["rm_data"] = json.loads(stats.read_text())["records"] if stats.exists() else \
        len(read_jsonl(run_dir / f"iter_{k}/data/rm_data.jsonl"))
    train = mechanism.load_candidates(run_dir / f"iter_{k}/execute/verdicts.jsonl")
    out["train_sampled_pass@1"] = _pct(float(np.mean([sum(c.passed) / len(c.passed) for c in train.values()])))
    return out


# --------------------------------------------------------------------------- the report


def fmt_diff(d: dict[str, Any] | None) -> str:
    """'+1.25 [-0.40, +2.90]' (a difference and its 95% interval), '-' when undefined."""
    if not d or d.get("diff") is None:
        return "-"
    lo, hi = d["ci95"]
    return f"{d['diff']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _num(x: Any) -> str:
    return "-" if x is None else (f"{x:.2f}" if isinstance(x, float) else str(x))


CHAIN_COLUMNS = [  # (header, cell)
    ("exploitation: RM_{k-1}'s top-1 on PPO_k fails", lambda r: _num(r.get("exploitation"))),
    ("robustness: ranked pass@1, RM_k − RM_{k-1} on PPO_k", lambda r: fmt_diff(r.get("robust_ranked_pass@1"))),
    ("pairwise acc, RM_k − RM_{k-1}", lambda r: fmt_diff(r.get("robust_pairwise_acc"))),
    ("AUROC within problem, RM_k − RM_{k-1}", lambda r: fmt_diff(r.get("robust_auroc"))),
    ("SFT ∪ PPO_k candidates: exploitation by RM_{k-1}", lambda r: _num(r.get("exploitation_mixed"))),
    ("SFT ∪ PPO_k: ranked pass@1, RM_k − RM_{k-1}", lambda r: fmt_diff(r.get("robust_mixed_ranked_pass@1"))),
    ("sampled pass@1 (− SFT)", lambda r: f"{_num(r['sampled_pass@1'])} ({fmt_diff(r['sampled_vs_sft'])})"),
    ("reranked pass@1 (− iteration 0)", lambda r: f"{_num(r['reranked_pass@1'])} ({fmt_diff(r['reranked_vs_iter0'])})"),
    ("RM_k on iteration-0 candidates (− RM_0)",
     lambda r: f"{_num(r.get('fixed_reranked_pass@1'))} ({fmt_diff(r.get('fixed_vs_rm0'))})"),
]
RM_COLUMNS = [
    ("oracle pass@n", "oracle_pass@n"), ("exploitation where a candidate passes", "exploitation_solvable"),
    ("RM_k pairwise acc", "rm_pairwise_acc"),
    ("RM_k AUROC within problem", "rm_auroc_within"), ("RM_{k-1} pairwise acc on PPO_k", "prev_rm_pairwise_acc"),
    ("hard negatives mined", "hard_negatives"), ("RM data records", "rm_data"),
    ("train sampled pass@1", "train_sampled_pass@1"),
]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The chain table: one row per iteration."""
    lines = ["| iteration | " + " | ".join(h for h, _ in CHAIN_COLUMNS) + " |", "|---" * (len(CHAIN_COLUMNS) + 1) + "|"]
    lines += [f"| {r['iteration']} | " + " | ".join(cell(r) for _, cell in CHAIN_COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def rm_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| iteration | " + " | ".join(h for h, _ in RM_COLUMNS) + " |", "|---" * (len(RM_COLUMNS) + 1) + "|"]
    lines += [f"| {r['iteration']} | " + " | ".join(_num(r.get(key)) for _, key in RM_COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def language_table(rows: list[dict[str, Any]]) -> str:
    """Per language and iteration: sampled and reranked pass@1, RM_k on iteration-0 candidates, exploitation."""
    head = ("| language | iteration | problems | sampled pass@1 | reranked pass@1 | RM_k on iteration-0 candidates | "
            "exploitation | robustness: ranked pass@1 RM_k − RM_{k-1} |")
    lines = [head, "|---" * 8 + "|"]
    langs = list(rows[0].get("per_language", {}))
    for lang in langs:
        for r in rows:
            m = r["per_language"].get(lang, {})
            lines.append(f"| {lang} | {r['iteration']} | {m.get('problems', '-')} | {_num(m.get('sampled_pass@1'))} | "
                         f"{_num(m.get('reranked_pass@1'))} | {_num(m.get('fixed_reranked_pass@1'))} | "
                         f"{_num(m.get('exploitation'))} | {fmt_diff(m.get('robust_ranked_pass@1'))} |")
    return "\n".join(lines)


def _excludes_zero_above(d: dict[str, Any] | None) -> bool:
    return bool(d and d.get("diff") is not None and d["ci95"][0] is not None and d["ci95"][0] > 0)


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements about each link of the chain, true or not, and where it breaks."""
    out, broken = [], []
    its = [r for r in rows if r.get("exploitation") is not None]
    for a, b in itertools.pairwise(its):
        d = b["exploitation"] - a["exploitation"]
        ok = d < 0
        out.append(f"Exploitation {'falls' if ok else 'does NOT fall'} from iteration {a['iteration']} to "
                   f"{b['iteration']}: {a['exploitation']:.2f} -> {b['exploitation']:.2f} ({d:+.2f} points).")
        if not ok:
            broken.append(f"exploitation does not fall at iteration {b['iteration']}")
    for r in its:
        d = r["robust_ranked_pass@1"]
        ok = d.get("diff") is not None and d["diff"] > 0
        out.append(f"On-policy robustness at iteration {r['iteration']}: RM_{r['iteration']} vs "
                   f"RM_{r['iteration'] - 1} on PPO_{r['iteration']}'s samples, ranked pass@1 {fmt_diff(d)}, "
                   f"pairwise acc {fmt_diff(r['robust_pairwise_acc'])}, AUROC {fmt_diff(r['robust_auroc'])}"
                   f"{'' if ok else ' (NOT a gain)'}.")
        if not ok:
            broken.append(f"RM_{r['iteration']} is not more robust on PPO_{r['iteration']}'s output")
    for r in its:
        if r.get("robust_mixed_ranked_pass@1"):
            out.append(f"On SFT's and PPO_{r['iteration']}'s candidates pooled: RM_{r['iteration'] - 1}'s top-1 fails "
                       f"on {_num(r.get('exploitation_mixed'))}% of problems; RM_{r['iteration']} − RM_"
                       f"{r['iteration'] - 1} ranked pass@1 {fmt_diff(r['robust_mixed_ranked_pass@1'])}.")
    for r in rows[1:]:
        out.append(f"Generator at iteration {r['iteration']}: sampled pass@1 {_num(r['sampled_pass@1'])}, vs SFT "
                   f"{fmt_diff(r['sampled_vs_sft'])}.")
    if len(rows) >= 2:
        last = rows[-1]
        k = last["iteration"]
        ok0 = _excludes_zero_above(last["reranked_vs_iter0"])
        d1 = last["reranked_pass@1"] - rows[-2]["reranked_pass@1"]
        out.append(f"Product: reranked pass@1 at iteration {k} vs iteration 0 {fmt_diff(last['reranked_vs_iter0'])}"
                   f" ({'interval above 0' if ok0 else 'interval NOT above 0'}); vs iteration {k - 1}: {d1:+.2f} "
                   f"points; {PAPER_TREND}.")
        if not ok0:
            broken.append(f"reranked pass@1 at iteration {k} is not measurably above iteration 0")
        out.append(f"RM_{k} on the fixed iteration-0 candidates vs RM_0: {fmt_diff(last.get('fixed_vs_rm0'))}.")
    wins = [r["iteration"] for r in rows if r["reranked_pass@1"] > r["sampled_pass@1"]]
    out.append(f"Reranked pass@1 is above sampled pass@1 in {len(wins)} of {len(rows)} iterations.")
    out.append("Chain holds in this run." if not broken else "Chain breaks: " + "; ".join(broken) + ".")
    return out


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
    text = (f"# Self-training report\n\nHeld-out problems: {rows[0]['problems']} ({', '.join(rows[0]['per_language'])})"
            f" × {cfg.eval_samples_per_problem} samples; percent; [95% paired bootstrap interval over problems]. "
            f"Protocol: rm_update={cfg.rm_update}, rm_init={cfg.rm_init}, rm_data_window={cfg.rm_data_window}, "
            f"dedup_programs={cfg.dedup_programs}, hard_negative_weight={cfg.hard_negative_weight}, "
            f"hard_negative_quantile={cfg.hard_negative_quantile}.\n\n"
            f"## The chain\n\n{markdown_table(rows)}\n\n" + "\n".join(f"- {n}" for n in notes) +
            f"\n\n![the chain by iteration](report.png)\n\n## Reward model and data\n\n{rm_table(rows)}\n\n"
            f"## Per language\n\n{language_table(rows)}\n\n"
            f"## Stage timings\n\n| stage | wall s | CPU s |\n|---|---|---|\n{timing_lines}\n")
    (out / "report.md").write_text(text, encoding="utf-8")
    plot(rows, out / "report.png")
    return out


def plot(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """The chain at a glance, by iteration: exploitation, on-policy robustness, sampled and reranked pass@1."""
    return plot_arms({"this run": rows}, path, title)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """(iterations, values, lower, upper) of a metric: a plain value or a paired difference with its interval."""
    its, vals, lo, hi = [], [], [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, dict):
            if v.get("diff") is None:
                continue
            its.append(r["iteration"]), vals.append(v["diff"]), lo.append(v["ci95"][0]), hi.append(v["ci95"][1])
        elif v is not None:
            spread = r.get(f"{key}_sd")
            its.append(r["iteration"]), vals.append(v)
            lo.append(v - (spread or 0)), hi.append(v + (spread or 0))
    return its, vals, lo, hi


PANELS = [  # (keys: solid line, dashed line), title, y label
    (("exploitation", "exploitation_mixed"), "1. exploitation: RM_{k-1}'s top-1 fails\n(solid: on PPO_k; dashed: on SFT ∪ PPO_k)",
     "% of problems (lower is better)"),
    (("robust_ranked_pass@1", "robust_mixed_ranked_pass@1"),
     "2. robustness: RM_k − RM_{k-1}, ranked pass@1\n(solid: on PPO_k; dashed: on SFT ∪ PPO_k)", "points"),
    (("sampled_pass@1",), "3. generator: PPO_k sampled pass@1", "% (iteration 0 = SFT)"),
    (("reranked_pass@1",), "4. product: reranked pass@1 (policy_k, RM_k)", "%"),
]


def plot_arms(arms: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> Path:
    """One panel per link of the chain; one line per arm (bars: 95% intervals, or ±1 sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.4 * len(PANELS), 4.3))
    for ax, (keys, panel_title, ylabel) in zip(axes, PANELS):
        for i, (arm, rows) in enumerate(arms.items()):
            for key, style in zip(keys, ("-", "--")):
                its, vals, lo, hi = _series(rows, key)
                if not its:
                    continue
                x = np.array(its) + 0.06 * (i - (len(arms) - 1) / 2) + (0.03 if style == "--" else 0)
                err = [np.array(vals) - np.array(lo), np.array(hi) - np.array(vals)]
                ax.errorbar(x, vals, yerr=err, marker="o", capsize=3, ls=style, color=f"C{i}",
                            label=arm if style == "-" else None)
        if keys[0].startswith("robust"):
            ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_title(panel_title, fontsize=9)
        ax.set(xlabel="iteration", ylabel=ylabel, xticks=[r["iteration"] for r in next(iter(arms.values()))])
        ax.grid(alpha=0.3)
    for ax in axes:  # the first panel with lines carries the legend
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
            break
    fig.suptitle(title or f"Self-training chain on held-out problems; expected: {PAPER_TREND}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
