"""PPO settings checked on TRAINING problems only: PPO from a finished run's SFT model against its RM_0, then
sampled pass@1 on a fixed subset of training problems and the final KL, per setting (no held-out problem is read).

    .venv/bin/python benchmarks/selftrain_ppo_check.py RUN_DIR --variant lr5e-5:learning_rate=5e-5 \
        --variant kl0.2:learning_rate=2e-4,kl_coef=0.2

Writes `<out>/selftrain_ppo_check.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rewardranker.problems import problems_by_id, truncate
from rewardranker.records import Sample
from rewardranker.selftrain import mechanism, stages
from rewardranker.selftrain.config import yaml_value
from rewardranker.selftrain.loop import StageDisplay, load_run_config
from rewardranker.selftrain.steps import Context, load_samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a self-training run with iter_0 finished")
    ap.add_argument("--variant", action="append", required=True, help="NAME:ppo_field=value,...")
    ap.add_argument("--problems", type=int, default=64, help="training problems sampled after PPO")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    cfg = load_run_config(args.run_dir)
    ctx = Context.create(cfg, args.run_dir, progress=False)
    rm = stages.load_rm(args.run_dir / "iter_0/reward/model")
    by_prompt, problems = {p.prompt: p for p in ctx.train}, problems_by_id(ctx.train)
    check = ctx.train_subset(7)[: args.problems]  # a fixed subset of training problems

    def reward_fn(prompts: list[str], completions: list[str]) -> list[float]:
        samples = [Sample(by_prompt[p].problem_id, i, truncate(c, by_prompt[p].stop_tokens))
                   for i, (p, c) in enumerate(zip(prompts, completions))]
        return rm.score(problems, samples, progress=False)

    rows = []
    for text in args.variant:
        name, _, body = text.partition(":")
        sets = {k: yaml_value(v) for k, v in (item.split("=", 1) for item in body.split(",") if item)}
        out = args.run_dir.parent / f"ppo_check_{args.run_dir.name}_{name}"
        ppo_cfg = dataclasses.replace(ctx.stage_cfgs["ppo"], **sets)
        gen_cfg = dataclasses.replace(ctx.stage_cfgs["generation"], n=cfg.samples_per_problem, seed=cfg.seed + 7000)
        with StageDisplay(out.parent, f"{name}: PPO {sets}") as display:
            out.mkdir(parents=True, exist_ok=True)
            policy = stages.ppo(ppo_cfg, args.run_dir / "iter_0/sft/model", reward_fn, ctx.train_subset(1),
                                out / "model", progress=False)
            stages.sample(dataclasses.replace(gen_cfg, model=str(policy)), check, out / "samples.jsonl", False)
            verdicts = stages.execute(check, load_samples(out / "samples.jsonl"), ctx.stage_cfgs["execution"], False)
            display.finish("done")
        (out / "verdicts.jsonl").write_text("".join(json.dumps(dataclasses.asdict(v)) + "\n" for v in verdicts))
        table = mechanism.load_candidates(out / "verdicts.jsonl")
        log = [json.loads(line) for line in (out / "model" / "ppo_log.jsonl").read_text().splitlines()]
        rows.append((name, sets, mechanism.value(mechanism.units(table, "sampled")), log[-1]["kl"],
                     log[0]["reward"], log[-1]["reward"]))
    lines = [(f"# PPO settings on training problems ({len(check)} problems × {cfg.samples_per_problem} samples, "
             f"from {args.run_dir})"), "", ("| variant | settings | train sampled pass@1 | final KL (nats) | "
             "RM reward first → last step |"), "|---|---|---|---|---|"]
    lines += [f"| {n} | {json.dumps(s)} | {p} | {kl:.1f} | {r0:.2f} → {r1:.2f} |" for n, s, p, kl, r0, r1 in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selftrain_ppo_check.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
