"""Reranking benchmark on the dev file: quality by 5-fold CV by problem, and CPU cost by precision, one run.

    .venv/bin/python benchmarks/reranking.py                      # both parts
    .venv/bin/python benchmarks/reranking.py --part cv --set bf16=false
    .venv/bin/python benchmarks/reranking.py --part speed --speed-problems 4

Part `cv`: random / reward model (`--mode rm`, out-of-fold) / consensus feature alone / CodeT agreement / soft
agreement / combined / oracle ranked pass@1, paired bootstrap against agreement; the reward model reads the
execution features by default (agreement on the generated tests), `--set execution_features=off` drops them.
Part `speed`: for torch fp32, bf16 and int8 and ONNX Runtime fp32 and int8 (`--precisions`), each in a fresh
process with an empty encoding cache (the ONNX export, ~5 s, falls in train-rm's time and in the scoring warm-up):
train-rm wall and CPU time, cold scoring candidates/s, and scoring again from the cache, on the first
`--speed-problems` problems (execution features off there: they cost the same in every precision and are
cached by the executor). With `--emulate-avx2` the same runs repeat with torch and oneDNN limited to AVX2
(ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2), i.e. like a CPU without native bf16; ONNX Runtime ignores
these variables (it picks its kernels by CPUID), so its rows there are not AVX2 numbers.
Results: the --out folder (report.json, scores, plots) and benchmarks/results/reranking.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "reranking" / "humaneval-codegen16b-dev.jsonl"
RESULTS = REPO / "benchmarks" / "results"
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEV, help="reranking-layout file with labels and generated tests")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-reranking")
    ap.add_argument("--part", choices=("all", "cv", "speed"), default="all")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--config", type=Path, help="RewardConfig YAML/JSON; default: RewardConfig() (the embedded default)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override RewardConfig fields")
    ap.add_argument("--extra-samples", type=Path, help="extra training data added to every fold (e.g. MBPP mutants)")
    ap.add_argument("--extra-verdicts", type=Path, help="verdicts for --extra-samples")
    ap.add_argument("--extra-problems", type=str, help="problems of --extra-samples")
    ap.add_argument("--weights", type=float, nargs="*", default=[0.25, 0.5, 1.0], help="combined: rm weights to report")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the targets are for 2 cores)")
    ap.add_argument("--speed-problems", type=int, default=4, help="problems (x100 candidates) in the speed part")
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16", "int8", "onnx-fp32", "onnx-int8"],
                    help="torch fp32/bf16/int8, ONNX Runtime onnx-fp32/onnx-int8, or auto (the defaults)")
    ap.add_argument("--emulate-avx2", action="store_true", help="also time with torch/oneDNN limited to AVX2")
    ap.add_argument("--name", default="", help="results file name (default: reranking[_PART])")
    ap.add_argument("--worker", nargs=3, metavar=("PRECISION", "TASK", "CACHE_DIR"), help=argparse.SUPPRESS)
    return ap.parse_args()


def _config(args, **overrides):
    import yaml

    from rewardranker.reward import RewardConfig

    base = RewardConfig.from_file(args.config).to_dict() if args.config else {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        base[k] = yaml.safe_load(v)
    return RewardConfig.from_dict({**base, **overrides})


def _cpu_wall(fn):
    """Run fn; return (result, wall seconds, process CPU seconds incl. children) so load can be judged."""
    r0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) + (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    return out, wall, cpu


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def hardware() -> dict:
    """CPU model, the flags that decide precision, torch's ISA, cores, and what `bf16: auto` picks."""
    from rewardranker.reward.hardware import describe, native_bf16

    info = describe()
    info["auto_bf16_cpu"], info["auto_reason"] = native_bf16("cpu")
    return info


# ----------------------------------------------------------------------------- speed part (one precision/process)

def _precision_overrides(precision: str) -> dict:
    """torch rows pin `runtime: torch`; onnx-* rows run the frozen MiniLM on ONNX Runtime; auto = the defaults."""
    return {"fp32": {"bf16": False, "int8": False, "runtime": "torch"},
            "bf16": {"bf16": True, "int8": False, "runtime": "torch"},
            "int8": {"bf16": False, "int8": True, "runtime": "torch"},
            "onnx-fp32": {"bf16": False, "int8": False, "runtime": "onnx"},
            "onnx-int8": {"bf16": False, "int8": True, "runtime": "onnx"}, "auto": {}}[precision]


def _subset(args):
    from rewardranker.problems import load_candidates

    cands = load_candidates(args.file)
    ids = sorted(cands.problems)
    keep = ids[: args.speed_problems]
    samples = [s for s in cands.samples if s.problem_key in set(keep)]  # problems keyed by (language, problem_id)
    warmup = [s for s in cands.samples if s.problem_key == ids[-1]][:16]  # loads the models; shares no program
    return cands, samples, warmup


def worker(args) -> None:
    """One timed task in this fresh process: `train` (train-rm) or `score`; prints a JSON line."""
    import torch

    from rewardranker.reward import RewardModel, train_reward_model

    torch.set_num_threads(args.threads)
    precision, task, cache_dir = args.worker
    os.environ["REWARDRANKER_CACHE"] = str(Path(cache_dir) / "verdicts.sqlite")
    cands, samples, warmup = _subset(args)
    model_dir = Path(cache_dir).parent / f"model-{precision}"
    if task == "train":
        cfg = _config(args, execution_features="off", **_precision_overrides(precision))
        _, wall, cpu = _cpu_wall(lambda: train_reward_model(cfg, cands.problems, samples, cands.labels, model_dir,
                                                            progress=False))
    else:
        rm = RewardModel.load(model_dir)
        rm.score(cands.problems, warmup, progress=False)  # model loading is not part of the rate
        _, wall, cpu = _cpu_wall(lambda: rm.score(cands.problems, samples, progress=False))
    print(json.dumps({"precision": precision, "task": task, "candidates": len(samples),
                      "distinct_programs": len({s.completion for s in samples}), "wall_s": wall, "cpu_s": cpu,
                      "per_s": len(samples) / wall, "load": _load()}))


def _run_worker(args, precision: str, task: str, cache_dir: Path, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--file", str(args.file), "--threads", str(args.threads),
           "--speed-problems", str(args.speed_problems), "--worker", precision, task, str(cache_dir),
           *(["--config", str(args.config)] if args.config else []), *(["--set", *args.set] if args.set else [])]
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if run.returncode != 0:
        raise SystemExit(f"speed worker {precision}/{task} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def speed(args) -> list[dict]:
    """torch fp32 / bf16 / int8 and ONNX Runtime side by side: train-rm cold, scoring cold, scoring from the cache."""
    rows = []
    isas = [("native", {})] + ([("AVX2 (emulated)", AVX2_ENV)] if args.emulate_avx2 else [])
    for isa, env in isas:
        for precision in args.precisions:
            with tempfile.TemporaryDirectory(prefix="rr-speed-") as tmp:
                train = _run_worker(args, precision, "train", Path(tmp) / "train-cache", env)
                cold = _run_worker(args, precision, "score", Path(tmp) / "score-cache", env)
                cached = _run_worker(args, precision, "score", Path(tmp) / "score-cache", env)
            row = {"isa": isa, "precision": precision, "candidates": train["candidates"],
                   "distinct_programs": train["distinct_programs"], "train_wall_s": train["wall_s"],
                   "train_cpu_s": train["cpu_s"], "score_cold_per_s": cold["per_s"],
                   "score_cold_cpu_s": cold["cpu_s"], "score_cold_per_cpu_s": cold["candidates"] / cold["cpu_s"],
                   "score_cached_per_s": cached["per_s"],
                   "cached_speedup": cached["per_s"] / cold["per_s"], "load": cached["load"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# ----------------------------------------------------------------------------- CV part

def _extra(args, cfg):
    if not args.extra_samples:
        return None
    from rewardranker.reward.data import load_labelled

    data = load_labelled(args.extra_samples, args.extra_verdicts, args.extra_problems)
    return data.problems, data.cands.samples, data.passed, None


def _agreement(cands):
    """(passed sets, CodeT exact-group scores, soft-agreement scores, execution wall seconds); cached."""
    from rewardranker.execution import ExecutionConfig
    from rewardranker.reward.agreement import agreement_scores, passed_sets, per_problem, soft_agreement

    sets, wall, _ = _cpu_wall(lambda: passed_sets(cands.problems, cands.samples, cands.generated_tests,
                                                  exec_cfg=ExecutionConfig(workers=2), progress=True))
    return sets, agreement_scores(cands.samples, sets), per_problem(cands.samples, sets, soft_agreement), wall


def _embedder_stats(cfg, rm) -> dict | None:
    """Programs encoded vs read from the encoding cache by the consensus pass (shared with the RM backbone)."""
    embed = rm.embedder
    return dict(embed.encoder.stats) if hasattr(embed, "encoder") else None


def cv(args) -> dict:
    import torch

    from rewardranker.problems import load_candidates
    from rewardranker.reward import RewardModel
    from rewardranker.reward.crossval import cross_validate
    from rewardranker.reward.evaluate import collect, evaluate, plot_pass_at_1, plot_reliability, report_table
    from rewardranker.reward.score import DEFAULT_RM_WEIGHT, combine
    from rewardranker.runio import write_jsonl

    torch.set_num_threads(args.threads)
    cfg = _config(args)
    cands = load_candidates(args.file)
    keys = [s.key for s in cands.samples]  # (language, problem_id, sample_id)
    _, agr, soft, agr_wall = _agreement(cands)
    execution = cfg.use_execution({s.problem_id for s in cands.samples}, cands.generated_tests)
    rm0 = RewardModel.build(cfg, execution=execution)
    feats, feat_wall, feat_cpu = _cpu_wall(lambda: rm0.features(cands.problems, cands.samples, True,
                                                                cands.generated_tests))
    oof, train_wall, train_cpu = _cpu_wall(lambda: cross_validate(
        cfg, cands.problems, cands.samples, cands.labels, args.folds, args.out / "folds", features=feats,
        extra=_extra(args, cfg), generated_tests=cands.generated_tests))
    rm = [oof[k] for k in keys]
    scores = {"rm": dict(zip(keys, rm)), "agreement": dict(zip(keys, agr)),
              "consensus only (no training)": dict(zip(keys, feats[:, 0].tolist())),
              "soft agreement": dict(zip(keys, soft)),
              "combined": dict(zip(keys, combine(cands.samples, rm, soft, DEFAULT_RM_WEIGHT)))}
    for w in args.weights:
        scores[f"combined w={w:g}"] = dict(zip(keys, combine(cands.samples, rm, soft, w)))
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "scores.jsonl", ({"problem_id": k[1], "sample_id": k[2], "language": k[0],
                                             **{m: v[k] for m, v in scores.items()}} for k in keys))
    rows = collect(cands.problems, cands.samples, cands.labels, scores)
    report = evaluate(rows)
    fold0 = json.loads((args.out / "folds" / "fold0" / "reward_head.json").read_text())
    report["model"] = {"feature_names": fold0["feature_names"], "fold0_feature_weights": fold0["feature_weights"],
                       "precision": rm0.precision, "config": cfg.to_dict()}
    report["timing"] = {"features_wall_s": feat_wall, "features_cpu_s": feat_cpu, "agreement_exec_wall_s": agr_wall,
                        "cv_train_wall_s": train_wall, "cv_train_cpu_s": train_cpu, "folds": args.folds,
                        "encoder": _embedder_stats(cfg, rm0)}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_pass_at_1(report, args.out / "pass_at_1.png")
    plot_reliability(rows, ["rm", "agreement"], args.out / "reliability.png",
                     {"rm": "out-of-fold (5-fold cross-validation by problem)", "agreement": "no trained model"})
    from rich.console import Console

    Console().print(report_table(report, f"{args.file.name}: {args.folds}-fold CV by problem (percent)"))
    return report


def _markdown(result: dict) -> str:
    hw = result["hardware"]
    lines = [(f"# benchmarks/reranking.py on {hw['cpu']} ({hw['cores_available']} cores available, torch ISA "
             f"{hw['torch_isa']}, flags: {' '.join(hw['flags'])}); `bf16: auto` here -> "
             f"{'bf16' if hw['auto_bf16_cpu'] else 'fp32'} ({hw['auto_reason']}); load average before "
             f"{result['load_before']}, after {result['load_after']} (machine shared with other jobs)"), ""]
    if "cv" in result:
        o = result["cv"]["overall"]
        lines += ["| ranker (dev, CV by problem) | ranked pass@1 | 95% CI | vs agreement (paired) |",
                  "|---|---|---|---|",
                  f"| random | {o['random pass@1']:.2f} | {o['random pass@1 CI'][0]:.1f}-{o['random pass@1 CI'][1]:.1f} | |"]
        for mode, m in o["modes"].items():
            vs = (f"{m['vs agreement']:+.2f} ({m['vs agreement CI'][0]:+.1f} to {m['vs agreement CI'][1]:+.1f})"
                  if "vs agreement" in m else "")
            lines.append(f"| {mode} | {m['ranked pass@1']:.2f} | {m['CI'][0]:.1f}-{m['CI'][1]:.1f} | {vs} |")
        lines.append(f"| oracle pass@100 | {o['oracle pass@n']:.2f} | | |")
        t = result["cv"]["timing"]
        lines += ["", (f"features (cold encoding cache unless warm): {t['features_wall_s']:.0f} s wall / "
                      f"{t['features_cpu_s']:.0f} s CPU, encoder {t['encoder']}; {t['folds']} folds trained in "
                      f"{t['cv_train_wall_s']:.0f} s wall / {t['cv_train_cpu_s']:.0f} s CPU; agreement execution "
                      f"{t['agreement_exec_wall_s']:.0f} s"), ""]
    if "speed" in result:
        lines += [("| ISA | precision | candidates (distinct) | train-rm wall s | train-rm CPU s | scoring cold cand/s "
                   "| cold cand per CPU-s | scoring cached cand/s | cached / cold |"), "|---|---|---|---|---|---|---|---|---|"]
        for r in result["speed"]:
            lines.append(f"| {r['isa']} | {r['precision']} | {r['candidates']} ({r['distinct_programs']}) | "
                         f"{r['train_wall_s']:.1f} | {r['train_cpu_s']:.1f} | {r['score_cold_per_s']:.1f} | "
                         f"{r['score_cold_per_cpu_s']:.1f} | "
                         f"{r['score_cached_per_s']:.0f} | {r['cached_speedup']:.0f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = _args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        worker(args)
        return
    result = {"hardware": hardware(), "load_before": _load(), "command": " ".join(sys.argv),
              "file_sha256": hashlib.sha256(args.file.read_bytes()).hexdigest()[:12], "threads": args.threads}
    print(json.dumps(result["hardware"]), flush=True)
    if args.part in ("all", "speed"):
        result["speed"] = speed(args)
    if args.part in ("all", "cv"):
        result["cv"] = cv(args)
    result["load_after"] = _load()
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.name or ("reranking" if args.part == "all" else f"reranking_{args.part}")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
