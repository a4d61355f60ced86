"""Choose self-training settings on a VALIDATION split of the training problems, never on the held-out ones.

The loop is run with `train_problems: [procedural:fit]` and `eval_problems: [procedural:validation]` (15% of
the training compositions, held out of `fit`; see rewardranker.tasks), once per variant; variants share every
stage their settings cannot change (the SFT model always, and whatever precedes the first affected stage).

    .venv/bin/python benchmarks/selftrain_validation.py --iterations 0 \
        --variant rm1:reward.epochs=1 --variant rm4:reward.epochs=4

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
from rewardranker.selftrain.config import parse_overrides, resolve_extends
from rewardranker.selftrain.loop import share_stages

FIRST_AFFECTED = {"reward": "iter_0/reward", "ppo": "iter_1/ppo", "generation": "iter_0/sample",
                  "execution": "iter_0/execute", "problems_per_iteration": "iter_0/sample",
                  "samples_per_problem": "iter_0/sample"}
SHOWN = ["sampled_pass@1", "reranked_pass@1", "rm_pairwise_acc", "rm_auroc_within", "exploitation",
         "robust_ranked_pass@1", "robust_pairwise_acc", "sampled_vs_sft"]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--variant", action="append", required=True, help="NAME:key=value,section.key=value")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--set", dest="sets", default="", help="settings common to every variant: key=value,...")
    ap.add_argument("--sft-from", type=Path, default=None, help="take iter_0/sft from this run directory")
    ap.add_argument("--runs", type=Path, default=Path("runs/validation-selftrain"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    path = Path(args.config) if Path(args.config).suffix in (".yaml", ".yml") else packaged_config(args.config)
    base = resolve_extends(yaml.safe_load(path.read_text()) or {}, path)
    base.update(train_problems=["procedural:fit"], eval_problems=["procedural:validation"],
                iterations=args.iterations, max_eval_problems=0)
    for key, value in parse_variant("common:" + args.sets)[1].items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    results, first_dir = {}, None
    for text in args.variant:
        name, sets = parse_variant(text)
        obj = json.loads(json.dumps(base))
        for key, value in sets.items():
            obj[key] = {**obj.get(key, {}), **value} if isinstance(value, dict) else value
        cfg = SelfTrainConfig.from_dict(obj, path)
        run_dir = args.runs / name
        if first_dir is not None:
            share_stages(first_dir, run_dir, shareable(cfg, sets))
        elif args.sft_from is not None:
            share_stages(args.sft_from, run_dir, ["iter_0/sft"])
        t0 = time.perf_counter()
        print(f"== variant {name} {sets}: {run_dir}", flush=True)
        run_selftrain(cfg, run_dir, capture=True, log=lambda line: print(line, flush=True))
        print(f"   {time.perf_counter() - t0:.0f} s wall, load average {os.getloadavg()[0]:.1f}", flush=True)
        first_dir = first_dir or run_dir
        rows = [json.loads((run_dir / f"iter_{k}/metrics/metrics.json").read_text())
                for k in range(args.iterations + 1)]
        results[name] = {"settings": sets, "iterations": rows}
    lines = ["# Self-training settings on the validation split (procedural:fit -> procedural:validation)", "",
             (f"SFT from: {args.sft_from or 'trained on fit'}; {results[next(iter(results))]['iterations'][0]['problems']}"
             " validation problems; percent; [95% paired bootstrap interval]."), "",
             "| variant | settings | iteration | " + " | ".join(SHOWN) + " |", "|---" * (len(SHOWN) + 3) + "|"]
    for name, r in results.items():
        for row in r["iterations"]:
            lines.append(f"| {name} | {json.dumps(r['settings'])} | {row['iteration']} | "
                         + " | ".join(_cell(row.get(k)) for k in SHOWN) + " |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selftrain_validation.md").write_text(text, encoding="utf-8")
    (args.out / "selftrain_validation.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
