"""Choose self-training settings on a VALIDATION split of the training problems, never on the held-out ones.

The loop is run with `train_problems: [procedural:fit]` and `eval_problems: [procedural:validation]` (15% of
the training compositions, held out of `fit`; see rewardranker.tasks), once per variant; variants share every
stage their settings cannot change (the SFT model always, and whatever precedes the first affected stage).

    .venv/bin/python benchmarks/selftrain_validation.py --iterations 0 \
        --variant rm1:reward.epochs=1 --variant rm4:reward.epochs=4

`--seeds 0 1 2` runs every variant with each seed and adds a table pooled over seeds, each variant paired
by problem against the first one (one seed's validation run is too noisy to choose a setting on).

`--sft-from RUN_DIR` reuses that run's SFT model (e.g. the default run's, trained on all training problems:
then the validation problems' reference solutions were seen by SFT, which inflates their sampled pass@1; the
comparison between variants stays on problems no reward model or PPO run trained on). Writes
`<out>/selftrain_validation.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from rewardranker.selftrain import SelfTrainConfig, packaged_config, plan, run_selftrain
from rewardranker.selftrain import mechanism as mech
from rewardranker.selftrain.config import apply_overrides, parse_overrides, resolve_extends
from rewardranker.selftrain.loop import share_stages

FIRST_AFFECTED = {"reward": "iter_0/reward", "ppo": "iter_1/ppo", "generation": "iter_0/sample",
                  "execution": "iter_0/execute", "problems_per_iteration": "iter_0/sample",
                  "samples_per_problem": "iter_0/sample"}
SHOWN = ["sampled_pass@1", "reranked_pass@1", "rm_pairwise_acc", "rm_auroc_within", "exploitation",
         "robust_ranked_pass@1", "robust_pairwise_acc", "sampled_vs_sft"]
POOLED = ["sampled_pass@1", "sampled_vs_sft", "sampled_vs_first", "reranked_pass@1", "reranked_vs_first",
          "reranked_vs_iter0", "exploitation", "robust_ranked_pass@1"]


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:key=value,section.field=value` -> (NAME, settings)."""
    name, _, body = text.partition(":")
    return name, parse_overrides(list(filter(None, body.split(","))))


def shareable(cfg: SelfTrainConfig, changed: dict[str, Any]) -> list[str]:
    """Stages of `cfg` a variant with `changed` settings can take from the first variant's run."""
    names = [s.name for s in plan(cfg)]
    affected = [FIRST_AFFECTED.get(k, "iter_1/data") for k in changed]
    first = min((names.index(a) for a in affected if a in names), default=len(names))
    out = names[:first]
    if first > names.index("iter_0/sample"):  # held-out-free sampling of iteration 0 depends on SFT only
        out += [n for n in ("iter_0/eval_sample", "iter_0/eval_execute") if n not in out]
    return out


def _cell(v: Any) -> str:
    if isinstance(v, dict):
        return "-" if v.get("diff") is None else f"{v['diff']:+.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]"
    return "-" if v is None else f"{v:.2f}"


def variant_configs(base: dict[str, Any], path: Path, texts: list[str], seed: int) -> list[tuple[str, dict, SelfTrainConfig]]:
    """(name, settings, config) of every variant, for one seed."""
    out = []
    for text in texts:
        name, sets = parse_variant(text)
        obj = apply_overrides({**base, "seed": seed}, sets)
        out.append((name, sets, SelfTrainConfig.from_dict(obj, path)))
    return out


def run_variants(variants: list[tuple[str, dict, SelfTrainConfig]], runs: Path, sft_from: Path | None) -> None:
    """Run each variant in `runs/NAME`, the later ones sharing what they can with the first."""
    first_dir = None
    for name, sets, cfg in variants:
        run_dir = runs / name
        if first_dir is not None:
            share_stages(first_dir, run_dir, shareable(cfg, sets))
        elif sft_from is not None:
            share_stages(sft_from, run_dir, ["iter_0/sft"])
        t0 = time.perf_counter()
        print(f"== variant {name} seed {cfg.seed} {sets}: {run_dir}", flush=True)
        run_selftrain(cfg, run_dir, capture=True, log=lambda line: print(line, flush=True))
        print(f"   {time.perf_counter() - t0:.0f} s wall, load average {os.getloadavg()[0]:.1f}", flush=True)
        first_dir = first_dir or run_dir


def pooled_rows(dirs: list[Path], reference: list[dict[str, dict[str, mech.Units]]]) -> list[dict[str, Any]]:
    """Per iteration: the chain metrics pooled over seeds, and the paired difference from the reference variant's
    pooled units (`reference[k]`)."""
    rows = []
    for k, ref in enumerate(reference):
        u = mech.pooled_units(dirs, k)
        row = {"iteration": k, **mech.chain_metrics(u)}
        for stat, key in (("sampled", "sampled_vs_first"), ("ranked", "reranked_vs_first")):
            row[key] = mech.paired_diff(u["cur"][stat], ref["cur"][stat])
        rows.append(row)
    return rows


def markdown(results: dict[str, Any], seeds: list[int], sft_from: Path | None) -> str:
    problems = next(iter(results.values()))["seeds"][0]["iterations"][0]["problems"]
    lines = ["# Self-training settings on the validation split (procedural:fit -> procedural:validation)", "",
             (f"SFT from: {sft_from or 'trained on fit'}; {problems} validation problems; seeds {seeds}; percent; "
             "[95% paired bootstrap interval over problems]."), "",
             "| variant | settings | seed | iteration | " + " | ".join(SHOWN) + " |", "|---" * (len(SHOWN) + 4) + "|"]
    for name, r in results.items():
        for per_seed in r["seeds"]:
            for row in per_seed["iterations"]:
                lines.append(f"| {name} | {json.dumps(r['settings'])} | {per_seed['seed']} | {row['iteration']} | "
                             + " | ".join(_cell(row.get(k)) for k in SHOWN) + " |")
    if len(seeds) > 1:
        first = next(iter(results))
        lines += ["", f"Seeds pooled (problem × seed units; differences paired by problem, against `{first}`):", "",
                  "| variant | iteration | " + " | ".join(POOLED) + " |", "|---" * (len(POOLED) + 2) + "|"]
        for name, r in results.items():
            for row in r["pooled"]:
                lines.append(f"| {name} | {row['iteration']} | " + " | ".join(_cell(row.get(k)) for k in POOLED) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--variant", action="append", required=True, help="NAME:key=value,section.key=value")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--set", dest="sets", default="", help="settings common to every variant: key=value,...")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="run every variant with each seed (run dirs RUNS/seedS/NAME) and pool them; "
                         "default: the config's seed, run dirs RUNS/NAME")
    ap.add_argument("--sft-from", type=Path, default=None, help="take iter_0/sft from this run directory")
    ap.add_argument("--runs", type=Path, default=Path("runs/validation-selftrain"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--no-run", action="store_true", help="only tabulate the finished runs")
    args = ap.parse_args()
    path = Path(args.config) if Path(args.config).suffix in (".yaml", ".yml") else packaged_config(args.config)
    base = resolve_extends(yaml.safe_load(path.read_text()) or {}, path)
    base.update(train_problems=["procedural:fit"], eval_problems=["procedural:validation"],
                iterations=args.iterations, max_eval_problems=0)
    base = apply_overrides(base, parse_variant("common:" + args.sets)[1])
    seeds = args.seeds or [int(base.get("seed", 0))]
    runs_of = {s: args.runs / f"seed{s}" if args.seeds else args.runs for s in seeds}
    variants = {s: variant_configs(base, path, args.variant, s) for s in seeds}
    for s in [] if args.no_run else seeds:
        run_variants(variants[s], runs_of[s], args.sft_from)
    names = [name for name, _, _ in variants[seeds[0]]]
    dirs = {name: [runs_of[s] / name for s in seeds] for name in names}
    reference = [mech.pooled_units(dirs[names[0]], k) for k in range(args.iterations + 1)]
    results = {}
    for name, sets, _ in variants[seeds[0]]:
        per_seed = [{"seed": s, "iterations": [json.loads((d / f"iter_{k}/metrics/metrics.json").read_text())
                                               for k in range(args.iterations + 1)]}
                    for s, d in zip(seeds, dirs[name])]
        results[name] = {"settings": sets, "seeds": per_seed,
                         "pooled": pooled_rows(dirs[name], reference)}
    text = markdown(results, seeds, args.sft_from)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selftrain_validation.md").write_text(text, encoding="utf-8")
    (args.out / "selftrain_validation.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
