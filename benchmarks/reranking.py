"""Reranking benchmark on the dev file: 5-fold CV by problem, every ranker, one table.

    .venv/bin/python benchmarks/reranking.py [--file ../shared/data/reranking/humaneval-codegen16b-dev.jsonl]

Prints random pass@1, reward-model pass@1 (out-of-fold), CodeT agreement pass@1, combined pass@1, oracle
pass@100, AUROC, training time and scoring throughput; writes report.json, scores and plots to --out.
Anchors (reranking README / facts): random 23.45, agreement 41.0, oracle 79.27.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "reranking" / "humaneval-codegen16b-dev.jsonl"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEV, help="reranking-layout file with labels and generated tests")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-reranking")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--config", type=Path, help="RewardConfig YAML/JSON; default: RewardConfig() (the embedded default)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override RewardConfig fields")
    ap.add_argument("--extra-samples", type=Path, help="extra training data added to every fold (e.g. MBPP mutants)")
    ap.add_argument("--extra-verdicts", type=Path, help="verdicts for --extra-samples")
    ap.add_argument("--extra-problems", type=str, help="problems of --extra-samples")
    ap.add_argument("--weights", type=float, nargs="*", default=[0.1, 0.25, 0.5, 1.0, 2.0],
                    help="combined: rm weights to report")
    return ap.parse_args()


def _config(args):
    import yaml

    from rewardranker.reward import RewardConfig

    base = RewardConfig.from_file(args.config).to_dict() if args.config else {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        base[k] = yaml.safe_load(v)
    return RewardConfig.from_dict(base)


def _cpu_wall(fn):
    """Run fn; return (result, wall seconds, process CPU seconds incl. children) so load can be judged."""
    r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) + (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    return out, wall, cpu


def _features(cfg, problems, samples, out: Path, tag: str):
    """Consensus features, cached on disk by file content (they do not depend on the training labels)."""
    from rewardranker.reward import RewardModel

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"features-{cfg.consensus}-{tag}.npy"
    if path.exists():
        return np.load(path), 0.0
    feats, wall, _ = _cpu_wall(lambda: RewardModel.build(cfg).features(problems, samples, progress=True))
    np.save(path, feats)
    return feats, wall


def _extra(args, cfg):
    if not args.extra_samples:
        return None
    from rewardranker.reward.data import load_labelled

    data = load_labelled(args.extra_samples, args.extra_verdicts, args.extra_problems)
    tag = hashlib.sha256(args.extra_samples.read_bytes()).hexdigest()[:12]
    feats, _ = _features(cfg, data.problems, data.cands.samples, args.out, tag)
    return data.problems, data.cands.samples, data.passed, feats


def _agreement(cands):
    """(CodeT exact-group scores, soft-agreement scores, execution wall seconds); executions are cached."""
    from rewardranker.execution import ExecutionConfig
    from rewardranker.reward.agreement import agreement_scores, passed_sets, per_problem, soft_agreement

    sets, wall, _ = _cpu_wall(lambda: passed_sets(cands.problems, cands.samples, cands.generated_tests,
                                                  exec_cfg=ExecutionConfig(workers=2), progress=True))
    return agreement_scores(cands.samples, sets), per_problem(cands.samples, sets, soft_agreement), wall


def _throughput(model_dir: Path, cands, n: int = 400) -> dict:
    """Candidates/s of `RewardModel.score` on n candidates (features included), on 2 threads."""
    import torch

    from rewardranker.reward import RewardModel

    torch.set_num_threads(2)
    rm = RewardModel.load(model_dir)
    ids = sorted(cands.problems)[:max(1, n // 100)]
    subset = [s for s in cands.samples if s.problem_id in set(ids)][:n]
    rm.score(cands.problems, subset[:32], progress=False)  # warm-up
    _, wall, cpu = _cpu_wall(lambda: rm.score(cands.problems, subset, progress=False))
    return {"candidates": len(subset), "wall_s": wall, "cpu_s": cpu, "per_s": len(subset) / wall}


def main() -> None:
    args = _args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rich.console import Console

    from rewardranker.problems import load_candidates
    from rewardranker.reward.crossval import cross_validate
    from rewardranker.reward.evaluate import collect, evaluate, plot_pass_at_1, plot_reliability, report_table
    from rewardranker.reward.score import DEFAULT_RM_WEIGHT, combine
    from rewardranker.runio import write_jsonl

    console = Console()
    cfg = _config(args)
    cands = load_candidates(args.file)
    keys = [s.key for s in cands.samples]  # (language, problem_id, sample_id)
    tag = hashlib.sha256(args.file.read_bytes()).hexdigest()[:12]
    feats, feat_wall = _features(cfg, cands.problems, cands.samples, args.out, tag)
    agr, soft, agr_wall = _agreement(cands)
    oof, train_wall, train_cpu = _cpu_wall(lambda: cross_validate(
        cfg, cands.problems, cands.samples, cands.labels, args.folds, args.out / "folds", features=feats,
        extra=_extra(args, cfg)))
    rm = [oof[k] for k in keys]
    scores = {"rm": dict(zip(keys, rm)), "agreement": dict(zip(keys, agr)),
              "consensus only (no training)": dict(zip(keys, feats[:, 0].tolist())),
              "soft agreement": dict(zip(keys, soft)),
              "combined": dict(zip(keys, combine(cands.samples, rm, soft, DEFAULT_RM_WEIGHT)))}
    for w in args.weights:
        scores[f"combined w={w:g}"] = dict(zip(keys, combine(cands.samples, rm, soft, w)))
        scores[f"CodeT + rm w={w:g}"] = dict(zip(keys, combine(cands.samples, rm, agr, w)))
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "scores.jsonl", ({"problem_id": k[1], "sample_id": k[2], "language": k[0],
                                             **{m: v[k] for m, v in scores.items()}} for k in keys))
    rows = collect(cands.problems, cands.samples, cands.labels, scores)
    report = evaluate(rows)
    speed = _throughput(args.out / "folds" / "fold0", cands)
    report["timing"] = {"features_wall_s": feat_wall, "agreement_exec_wall_s": agr_wall,
                        "cv_train_wall_s": train_wall, "cv_train_cpu_s": train_cpu, "folds": args.folds,
                        "scoring": speed, "config": cfg.to_dict()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_pass_at_1(report, args.out / "pass_at_1.png")
    plot_reliability(rows, ["rm", "agreement"], args.out / "reliability.png",
                     {"rm": "out-of-fold (5-fold cross-validation by problem)", "agreement": "no trained model"})
    console.print(report_table(report, f"{args.file.name}: {args.folds}-fold CV by problem (percent)"))
    t = report["timing"]
    console.print(f"training: {t['cv_train_wall_s']:.0f} s wall / {t['cv_train_cpu_s']:.0f} s CPU for "
                  f"{args.folds} folds (CPU/wall {t['cv_train_cpu_s'] / max(t['cv_train_wall_s'], 1e-9):.2f} of 2 "
                  f"cores; lower = other load); scoring {speed['per_s']:.1f} candidates/s on 2 threads "
                  f"(CPU/wall {speed['cpu_s'] / speed['wall_s']:.2f}); features {feat_wall:.0f} s; "
                  f"agreement execution {agr_wall:.0f} s (0 s when cached)")


if __name__ == "__main__":
    main()
