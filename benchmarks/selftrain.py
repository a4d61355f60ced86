"""The self-training ablation: no self-training (RM_0 throughout), hard negatives only, full self-training,
each over several seeds, with the chain metrics per arm and iteration and paired intervals between arms.

    .venv/bin/python benchmarks/selftrain.py                                  # default config, 3 arms x 3 seeds
    .venv/bin/python benchmarks/selftrain.py --seeds 0 1 --set eval_samples_per_problem=4   # a smaller run

Arms of one seed share every stage that does not depend on the iteration protocol (iteration 0 and iteration
1's PPO, sampling and execution; `protocol_independent_stages`), so a seed costs one SFT and one first PPO.
Means and spreads are over seeds; intervals pool the seeds (per-problem sums) and resample problems (95%,
paired: the same draw for both sides). Writes `<out>/selftrain_ablation.{md,json,png}`; run folders stay under
`--runs` (rerunning resumes them).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rewardranker.runio import write_json
from rewardranker.selftrain import SelfTrainConfig, packaged_config, run_selftrain, stage_timings
from rewardranker.selftrain import mechanism as mech
from rewardranker.selftrain.config import apply_overrides, parse_overrides, resolve_extends
from rewardranker.selftrain.loop import protocol_independent_stages, share_stages
from rewardranker.selftrain.report import fmt_diff, iteration_metrics, plot_arms, write_report

ARMS = {"none": "no self-training (RM_0 throughout)", "hard_negatives": "hard negatives only",
        "self_training": "full self-training"}
TABLE_METRICS = [  # (key in chain metrics, header); dict-valued keys report their "diff"
    ("exploitation", "exploitation"), ("exploitation_solvable", "exploitation (solvable)"),
    ("robust_ranked_pass@1", "robust Δ ranked"),
    ("robust_pairwise_acc", "robust Δ pairwise"), ("robust_auroc", "robust Δ AUROC"),
    ("exploitation_mixed", "exploitation (SFT ∪ PPO_k)"), ("robust_mixed_ranked_pass@1", "robust Δ ranked (SFT ∪ PPO_k)"),
    ("sampled_pass@1", "sampled pass@1"), ("sampled_vs_sft", "sampled − SFT"),
    ("reranked_pass@1", "reranked pass@1"), ("reranked_vs_iter0", "reranked − iter 0"),
    ("fixed_reranked_pass@1", "RM_k on iter-0 cands"), ("rm_pairwise_acc", "RM_k pairwise"),
    ("rm_auroc_within", "RM_k AUROC"), ("hard_negatives", "hard negs"), ("rm_data", "RM data"),
]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_seconds() -> float:
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def arm_config(base: dict[str, Any], path: Path, seed: int, arm: str) -> SelfTrainConfig:
    return SelfTrainConfig.from_dict({**base, "seed": seed, "rm_update": arm}, path)


# --------------------------------------------------------------------------- running


def run_all(base: dict[str, Any], path: Path, seeds: list[int], arms: list[str], runs: Path,
            jobs: int) -> dict[tuple, Path]:
    """Run (or resume) every (seed, arm). Phase 1: each seed's first arm runs the protocol-independent stages;
    phase 2: they are hard-linked into the other arms, and all runs finish, `jobs` worker processes at a time."""
    dirs = {(s, a): runs / f"seed{s}" / a for s in seeds for a in arms}
    shared = protocol_independent_stages(arm_config(base, path, seeds[0], arms[0]))
    first = [(s, arms[0]) for s in seeds]
    _run_workers(base, path, first, dirs, jobs, shared, "shared stages (iteration 0, iteration 1's PPO and samples)")
    for s in seeds:
        for a in arms[1:]:
            share_stages(dirs[(s, arms[0])], dirs[(s, a)], shared)
    _run_workers(base, path, list(dirs), dirs, jobs, None, "every arm")
    return dirs


def _run_workers(base: dict[str, Any], path: Path, keys: list[tuple], dirs: dict[tuple, Path], jobs: int,
                 only: list[str] | None, what: str) -> None:
    """Each run in its own process (`--worker`), at most `jobs` at once; stops at the first failure."""
    t0 = time.perf_counter()
    print(f"== {what}: {len(keys)} runs, {jobs} at a time", flush=True)
    pending, running = list(keys), {}
    try:
        _supervise(base, path, pending, running, dirs, jobs, only, t0)
    finally:  # Ctrl-C or a failed run: stop the others (they resume when the benchmark is rerun)
        for proc, _ in running.values():
            proc.terminate()


def _supervise(base: dict[str, Any], path: Path, pending: list[tuple], running: dict, dirs: dict[tuple, Path],
               jobs: int, only: list[str] | None, t0: float) -> None:
    import sys

    while pending or running:
        while pending and len(running) < jobs:
            seed, arm = pending.pop(0)
            run_dir = dirs[(seed, arm)]
            run_dir.mkdir(parents=True, exist_ok=True)
            spec = run_dir.parent / f"{arm}.worker.json"
            spec.write_text(json.dumps({"config": {**base, "seed": seed, "rm_update": arm}, "source": str(path),
                                        "only": only}))
            log = open(run_dir.parent / f"{arm}.worker.log", "a")  # noqa: SIM115 (closed when it ends)
            cmd = [sys.executable, __file__, "--worker", str(spec), str(run_dir)]
            env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            running[(seed, arm)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        time.sleep(2)
        for key, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[key]
            status = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"   seed {key[0]}, {key[1]}: {status} at {time.perf_counter() - t0:.0f} s; "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
            if proc.returncode != 0:
                raise SystemExit(f"run {dirs[key]} failed: see {dirs[key].parent / (key[1] + '.worker.log')}")


def worker(spec_path: Path, run_dir: Path) -> None:
    """One run in this process (called by `_run_workers`)."""
    spec = json.loads(spec_path.read_text())
    cfg = SelfTrainConfig.from_dict(spec["config"], spec["source"])
    only = set(spec["only"]) if spec["only"] is not None else None
    run_selftrain(cfg, run_dir, capture=True, log=lambda line: print(line, flush=True), only=only)


# --------------------------------------------------------------------------- aggregation


def _scalar(v: Any) -> float | None:
    if isinstance(v, dict):
        return v.get("diff")
    return v if isinstance(v, (int, float)) else None


def per_seed_rows(run_dir: Path, iterations: int) -> list[dict[str, Any]]:
    return [json.loads((run_dir / f"iter_{k}/metrics/metrics.json").read_text()) for k in range(iterations + 1)]


def mean_sd(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": round(float(np.mean(vals)), 2), "sd": round(float(np.std(vals, ddof=1)), 2) if len(vals) > 1
            else 0.0, "n": len(vals)}


def aggregate(dirs: dict[tuple, Path], seeds: list[int], arms: list[str], iterations: int) -> dict[str, Any]:
    """Mean/sd over seeds of every chain metric, pooled chain metrics with intervals, and arm-vs-arm intervals."""
    rows = {arm: [per_seed_rows(dirs[(s, arm)], iterations) for s in seeds] for arm in arms}
    pooled = {(arm, k): mech.pooled_units([dirs[(s, arm)] for s in seeds], k)  # read each run's files once
              for arm in arms for k in range(iterations + 1)}
    summary: dict[str, Any] = {}
    for arm in arms:
        summary[arm] = []
        for k in range(iterations + 1):
            entry: dict[str, Any] = {"iteration": k}
            for key, _ in TABLE_METRICS:
                entry[key] = mean_sd([_scalar(r[k].get(key)) for r in rows[arm]])
            entry["pooled"] = mech.chain_metrics(pooled[(arm, k)])
            entry["status_shares"] = mech.status_shares(
                dirs[(s, arm)] / f"iter_{k}/eval_execute/verdicts.jsonl" for s in seeds)
            langs = list(rows[arm][0][k]["per_language"])
            entry["per_language"] = {
                lang: {key: mean_sd([_scalar(r[k]["per_language"][lang].get(key)) for r in rows[arm]])
                       for key in ("sampled_pass@1", "reranked_pass@1", "fixed_reranked_pass@1", "exploitation")}
                for lang in langs}
            summary[arm].append(entry)
    between = {}
    for a, b in itertools.combinations(arms, 2):  # in the order given: self_training - hard_negatives - none
        for k in range(1, iterations + 1):
            ua, ub = pooled[(a, k)], pooled[(b, k)]
            between[f"{a} - {b}, iteration {k}"] = {
                "reranked_pass@1": mech.paired_diff(ua["cur"]["ranked"], ub["cur"]["ranked"]),
                "sampled_pass@1": mech.paired_diff(ua["cur"]["sampled"], ub["cur"]["sampled"]),
                "fixed_reranked_pass@1": mech.paired_diff(ua["fixed"]["ranked"], ub["fixed"]["ranked"]),
                "exploitation": mech.paired_diff(ua["prev"]["top1_fails"], ub["prev"]["top1_fails"]),
            }
    within = {}
    for arm in arms:
        for k1, k2 in itertools.combinations(range(iterations + 1), 2):
            u1, u2 = pooled[(arm, k1)], pooled[(arm, k2)]
            entry = {"reranked_pass@1": mech.paired_diff(u2["cur"]["ranked"], u1["cur"]["ranked"])}
            if "prev" in u1 and "prev" in u2:
                entry["exploitation"] = mech.paired_diff(u2["prev"]["top1_fails"], u1["prev"]["top1_fails"])
            within[f"{arm}: iteration {k2} - iteration {k1}"] = entry
    return {"per_arm": summary, "between_arms": between, "within_arm": within}


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}"


def targets(agg: dict[str, Any], iterations: int) -> list[str]:
    """The issue's targets, each stated as met or MISSED with its numbers; then the first broken link."""
    full = agg["per_arm"].get("self_training")
    if full is None or iterations < 2:
        return ["(targets need the self_training arm and 2 iterations)"]
    m = lambda k, key: full[k][key]["mean"]
    out = []
    r0, r1, r2 = m(0, "reranked_pass@1"), m(1, "reranked_pass@1"), m(2, "reranked_pass@1")
    gain = agg["within_arm"]["self_training: iteration 2 - iteration 0"]["reranked_pass@1"]
    gain_shown = gain["ci95"][0] is not None and gain["ci95"][0] > 0
    out.append(f"{'met' if r2 > r0 and gain_shown else 'MISSED'}: full self-training reranked pass@1, iteration 2 > "
               f"iteration 0 with the paired interval of the gain above 0 ({r2:.2f} vs {r0:.2f}, mean over seeds; "
               f"pooled paired gain {fmt_diff(gain)}, interval {'above' if gain_shown else 'NOT above'} 0).")
    out.append(f"{'met' if r2 >= r1 else 'MISSED'}: iteration 2 >= iteration 1 ({r2:.2f} vs {r1:.2f}).")
    if "none" in agg["per_arm"]:
        n2 = agg["per_arm"]["none"][2]["reranked_pass@1"]["mean"]
        d = agg["between_arms"].get("self_training - none, iteration 2", {}).get("reranked_pass@1")
        out.append(f"{'met' if r2 > n2 else 'MISSED'}: iteration 2 full self-training > no self-training "
                   f"({r2:.2f} vs {n2:.2f}; pooled paired {fmt_diff(d)}).")
    e = [m(k, "exploitation") for k in range(1, iterations + 1)]
    falls = all(a is not None and b is not None and b < a for a, b in itertools.pairwise(e))
    out.append(f"{'met' if falls else 'MISSED'}: exploitation falls by iteration ({' -> '.join(map(_signed, e))}).")
    rob = [m(k, "robust_ranked_pass@1") for k in range(1, iterations + 1)]
    pairwise = ", ".join(_signed(m(k, "robust_pairwise_acc")) for k in range(1, iterations + 1))
    rises = all(x is not None and x > 0 for x in rob)
    out.append(f"{'met' if rises else 'MISSED'}: on-policy robustness, RM_k better than RM_(k-1) on PPO_k's samples "
               f"(ranked pass@1 Δ per iteration: {', '.join(map(_signed, rob))}; pairwise Δ: "
               f"{pairwise}).")
    links = []
    if not falls:
        links.append("link 1 (PPO exploits RM_{k-1}, and exploitation falls as RM improves)")
    if not rises:
        links.append("link 2 (hard negatives make RM_k more robust on PPO_k's output)")
    s = [m(k, "sampled_vs_sft") for k in range(1, iterations + 1)]
    if not all(x is not None and x > 0 for x in s):
        links.append(f"link 3 (a more robust RM gives a better policy: sampled pass@1 − SFT = "
                     f"{', '.join(map(_signed, s))})")
    if not (r2 > r0 and gain_shown):
        links.append("link 4 (better reranked pass@1 than iteration 0, measurably)")
    out.append("Chain holds." if not links else "Broken links: " + "; ".join(links) + ".")
    return out


# --------------------------------------------------------------------------- output


def _cell(stat: dict[str, Any]) -> str:
    return "-" if stat["mean"] is None else f"{stat['mean']:.2f} ± {stat['sd']:.2f}"


def measured_meta(previous: Path, seeds: list[int]) -> dict[str, Any]:
    """Load, wall and CPU of the run that produced `previous` (same seeds), for a `--no-run` re-aggregation."""
    meta = json.loads(previous.read_text(encoding="utf-8"))["meta"] if previous.exists() else {}
    if meta.get("seeds") != seeds:
        return {"load_before": "not measured (--no-run)", "load_after": "not measured (--no-run)"}
    return {k: meta[k] for k in ("load_before", "load_after", "wall_s", "cpu_s", "commit") if k in meta}


def markdown(agg: dict[str, Any], meta: dict[str, Any], notes: list[str]) -> str:
    lines = ["# Self-training ablation", "",
             (f"{meta['scale']}. Cells: mean ± sd over seeds {meta['seeds']}; percent. Δ columns are paired "
             "differences (robustness: RM_k − RM_{k-1} on PPO_k's held-out samples). Machine: "
             f"{meta['cpu_model']}, {meta['cpus']} cores shared with other jobs (load average {meta['load_before']} "
             f"before, {meta['load_after']} after); the runs' stages took {meta['stage_cpu_s_total']:.0f} s CPU "
             f"(torch 1 thread per process; executed programs' CPU not included) and {meta['stage_wall_s_total']:.0f}"
             " s wall summed over stages (parallel runs overlap)."),
             "", "## Targets", ""] + [f"- {n}" for n in notes] + ["", "## Per arm and iteration", ""]
    head = "| arm | iteration | " + " | ".join(h for _, h in TABLE_METRICS) + " |"
    lines += [head, "|---" * (len(TABLE_METRICS) + 2) + "|"]
    for arm, entries in agg["per_arm"].items():
        for e in entries:
            lines.append(f"| {arm} | {e['iteration']} | " + " | ".join(_cell(e[key]) for key, _ in TABLE_METRICS) + " |")
    lines += ["", "## Seeds pooled, with 95% paired bootstrap intervals over problems", "",
              ("| arm | iteration | exploitation | robust Δ ranked | robust Δ pairwise | robust Δ AUROC | "
              "sampled − SFT | reranked pass@1 | reranked − iter 0 | RM_k on iter-0 − RM_0 |"), "|---" * 10 + "|"]
    for arm, entries in agg["per_arm"].items():
        for e in entries:
            p = e["pooled"]
            lines.append(f"| {arm} | {e['iteration']} | {p.get('exploitation', '-')} | "
                         f"{fmt_diff(p.get('robust_ranked_pass@1'))} | {fmt_diff(p.get('robust_pairwise_acc'))} | "
                         f"{fmt_diff(p.get('robust_auroc'))} | {fmt_diff(p['sampled_vs_sft'])} | "
                         f"{p['reranked_pass@1']} | {fmt_diff(p['reranked_vs_iter0'])} | {fmt_diff(p.get('fixed_vs_rm0'))} |")
    lines += ["", "## Between arms (seeds pooled, paired by problem)", "",
              "| comparison | reranked pass@1 | sampled pass@1 | RM on iter-0 candidates | exploitation |",
              "|---|---|---|---|---|"]
    for name, d in agg["between_arms"].items():
        lines.append(f"| {name} | {fmt_diff(d['reranked_pass@1'])} | {fmt_diff(d['sampled_pass@1'])} | "
                     f"{fmt_diff(d['fixed_reranked_pass@1'])} | {fmt_diff(d['exploitation'])} |")
    lines += ["", "| within arm | reranked pass@1 | exploitation |", "|---|---|---|"]
    for name, d in agg["within_arm"].items():
        lines.append(f"| {name} | {fmt_diff(d['reranked_pass@1'])} | {fmt_diff(d.get('exploitation'))} |")
    statuses = sorted({st for entries in agg["per_arm"].values() for e in entries for st in e["status_shares"]})
    lines += ["", "## Held-out samples by execution status (seeds pooled, percent)", "",
              "| arm | iteration | " + " | ".join(statuses) + " |", "|---" * (len(statuses) + 2) + "|"]
    for arm, entries in agg["per_arm"].items():
        for e in entries:
            lines.append(f"| {arm} | {e['iteration']} | "
                         + " | ".join(f"{e['status_shares'].get(st, 0.0):.2f}" for st in statuses) + " |")
    lines += ["", "## Per language (mean ± sd over seeds)", "",
              "| arm | language | iteration | sampled pass@1 | reranked pass@1 | RM_k on iter-0 cands | exploitation |",
              "|---|---|---|---|---|---|---|"]
    for arm, entries in agg["per_arm"].items():
        for lang in entries[0]["per_language"]:
            for e in entries:
                m = e["per_language"][lang]
                lines.append(f"| {arm} | {lang} | {e['iteration']} | {_cell(m['sampled_pass@1'])} | "
                             f"{_cell(m['reranked_pass@1'])} | {_cell(m['fixed_reranked_pass@1'])} | "
                             f"{_cell(m['exploitation'])} |")
    lines += ["", "![the chain by arm](selftrain_ablation.png)", "", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def plot(agg: dict[str, Any], path: Path, title: str) -> None:
    """The chain panels with one line per arm: seed means, bars ±1 sd over seeds."""
    arms = {}
    for arm, entries in agg["per_arm"].items():
        rows = []
        for e in entries:
            row: dict[str, Any] = {"iteration": e["iteration"]}
            for key, _ in TABLE_METRICS:
                row[key], row[f"{key}_sd"] = e[key]["mean"], e[key]["sd"]
            rows.append(row)
        arms[ARMS[arm]] = rows
    plot_arms(arms, path, title)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default", help="YAML file or packaged config name")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=["self_training", "hard_negatives", "none"], choices=list(ARMS))
    ap.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override config settings, e.g. eval_samples_per_problem=4 ppo.steps=40")
    ap.add_argument("--runs", type=Path, default=Path("runs/bench-selftrain"), help="folder of the run dirs")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the report goes")
    ap.add_argument("--recompute-metrics", action="store_true",
                    help="recompute every finished run's metrics and report before aggregating")
    ap.add_argument("--jobs", type=int, default=3, help="runs in parallel (one process each, 1 torch thread)")
    ap.add_argument("--no-run", action="store_true", help="only aggregate the given seeds' finished runs")
    ap.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    path = Path(args.config) if Path(args.config).suffix in (".yaml", ".yml") else packaged_config(args.config)
    base = resolve_extends(yaml.safe_load(path.read_text()) or {}, path)
    base = apply_overrides(base, parse_overrides(args.sets))
    iterations = SelfTrainConfig.from_dict(base, path).iterations
    load_before, t0, cpu0 = [round(x, 2) for x in os.getloadavg()], time.perf_counter(), _cpu_seconds()
    if args.no_run:  # aggregate what the given runs have finished: the iterations every run has metrics for
        dirs = {(sd, a): args.runs / f"seed{sd}" / a for sd in args.seeds for a in args.arms}
        finished = min(sum((d / f"iter_{k}/metrics/.done").exists() for k in range(iterations + 1))
                       for d in dirs.values())
        if finished < iterations + 1:
            print(f"--no-run: aggregating iterations 0..{finished - 1} (later ones are unfinished in some run)")
            iterations = finished - 1
    else:
        dirs = run_all(base, path, args.seeds, args.arms, args.runs, args.jobs)
    if args.recompute_metrics:  # metrics and reports of finished runs, with this checkout's metric code
        for (seed, arm), run_dir in dirs.items():
            cfg = arm_config(base, path, seed, arm)
            for k in range(iterations + 1):
                write_json(run_dir / f"iter_{k}/metrics/metrics.json", iteration_metrics(run_dir, k))
            if (run_dir / "report" / ".done").exists():
                write_report(run_dir, cfg, run_dir / "report")
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    agg = aggregate(dirs, args.seeds, args.arms, iterations)
    notes = targets(agg, iterations)
    first = next(iter(dirs.values()))
    problems = json.loads((first / "iter_0/metrics/metrics.json").read_text())["problems"]
    cfg0 = arm_config(base, path, args.seeds[0], args.arms[0])
    shared = set(protocol_independent_stages(cfg0))
    stage_cpu = {f"seed{s}/{a}": round(sum(t["cpu_s"] for t in stage_timings(d)
                                           if a == args.arms[0] or t["stage"] not in shared), 1)
                 for (s, a), d in dirs.items()}
    stage_wall = sum(t["wall_s"] for (s, a), d in dirs.items() for t in stage_timings(d)
                     if a == args.arms[0] or t["stage"] not in shared)
    meta = {"scale": f"{len(args.arms)} arms × {len(args.seeds)} seeds, {iterations} iterations, {problems} held-out "
                     f"problems ({', '.join(cfg0.languages)}) × {cfg0.eval_samples_per_problem} samples",
            "seeds": args.seeds, "cpu_model": _cpu_model(), "cpus": os.cpu_count(), "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()], "wall_s": wall, "cpu_s": cpu,
            "stage_cpu_s_total": round(sum(stage_cpu.values()), 1), "stage_wall_s_total": round(stage_wall, 1),
            "commit": _commit(), "config": str(path), "overrides": args.sets,
            "command": "python benchmarks/selftrain.py " + " ".join(
                [f"--config {args.config}"] + (["--seeds", *map(str, args.seeds)]) +
                (["--arms", *args.arms] if args.arms != ap.get_default("arms") else []) +
                (["--set", *args.sets] if args.sets else [])),
            "stage_cpu_s_per_run (shared stages counted in the first arm)": stage_cpu}
    if args.no_run:  # this command ran nothing: keep the measuring run's load and times when its output is there
        meta.update(measured_meta(args.out / "selftrain_ablation.json", args.seeds))
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(agg, meta, notes)
    (args.out / "selftrain_ablation.md").write_text(text, encoding="utf-8")
    (args.out / "selftrain_ablation.json").write_text(json.dumps({"meta": meta, "targets": notes, **agg}, indent=1)
                                                      + "\n", encoding="utf-8")
    plot(agg, args.out / "selftrain_ablation.png",
         f"Self-training ablation: {meta['scale']}; mean ± sd over seeds")
    print(text)


if __name__ == "__main__":
    main()
