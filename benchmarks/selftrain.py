"""Benchmark the self-training loop: run (or resume) a config, then print the per-iteration table and the wall
and CPU time of every stage, with the machine's load so that a number inflated by other jobs is visible.

    .venv/bin/python benchmarks/selftrain.py                       # the embedded default (about 15 min, 2 cores)
    .venv/bin/python benchmarks/selftrain.py --config my.yaml --run-dir runs/bench --fresh

Writes `<run-dir>/benchmark.json` (machine, commit, load averages, table, timings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

from rewardranker.selftrain import SelfTrainConfig, packaged_config, run_selftrain, stage_timings
from rewardranker.selftrain.report import markdown_table


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default", help="YAML file or packaged config name (default, paper)")
    ap.add_argument("--run-dir", type=Path, default=Path("runs/bench-selftrain"), help="run directory")
    ap.add_argument("--fresh", action="store_true", help="delete the run directory first")
    args = ap.parse_args()
    path = Path(args.config) if Path(args.config).suffix in (".yaml", ".yml") else packaged_config(args.config)
    cfg = SelfTrainConfig.from_file(path)
    if args.fresh and args.run_dir.exists():
        shutil.rmtree(args.run_dir)
    load_before, t0 = _load(), time.perf_counter()
    run_selftrain(cfg, args.run_dir)
    wall = time.perf_counter() - t0
    rows = json.loads((args.run_dir / "report" / "report.json").read_text())["iterations"]
    timings = stage_timings(args.run_dir)
    print(markdown_table(rows))
    print("\n| stage | wall s | CPU s |\n|---|---|---|")
    for t in timings:
        print(f"| {t['stage']} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} |")
    total_wall, total_cpu = sum(t["wall_s"] for t in timings), sum(t["cpu_s"] for t in timings)
    print(f"\nall stages: {total_wall:.0f} s wall ({total_wall / 60:.1f} min), {total_cpu:.0f} s CPU; "
          f"this invocation {wall:.0f} s; load average before {load_before}, after {_load()} "
          f"on {os.cpu_count()} cores (a load above the core count means other jobs inflated the wall times)")
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "commit": _commit(), "config": str(path), "config_hash": cfg.hash(), "load_before": load_before,
           "load_after": _load(), "iterations": rows, "stage_timings": timings,
           "total_wall_s": round(total_wall, 1), "total_cpu_s": round(total_cpu, 1)}
    (args.run_dir / "benchmark.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
