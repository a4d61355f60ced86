"""Benchmark the generator side on CPU: sampling tokens/s per local backend, SFT and PPO steps/s of the embedded
small generator, and the reward curve of a short PPO run (PNG). Prints a table and writes results.json.

    .venv/bin/python benchmarks/policy.py --out runs/bench-policy
    .venv/bin/python benchmarks/policy.py --threads 1 --sft-steps 300 --ppo-steps 40   # what the README reports

Each timing also records CPU time / wall time: on a shared machine a ratio well below the thread count means
other processes took the cores, and the number is pessimistic. PPO's reward here is a cheap stand-in for the
reward model (similarity of the completion to the reference solution, 1.0 when equal), so the curve shows the
optimiser working, not the RM; PPO starts from a briefly fine-tuned policy so the reward has room to rise.
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from rewardranker.generation import GenerationConfig, build_local_generator, sample_problems
from rewardranker.generation.local_server import LocalCompletionServer
from rewardranker.policy import PPOConfig, SFTConfig, examples_from_problems, run_ppo, run_sft
from rewardranker.problems import load_problems
from rewardranker.runio import read_jsonl, write_json


class Timer:
    """Wall and process CPU time of a block."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def bench_sampling(model: Path, problems, out: Path, threads: int, url: str | None = None) -> dict:
    """Tokens per second for 4 samples of each of 16 problems, up to 64 new tokens each.

    With `url`, the openai backend against the stdlib server in this process: it runs one generate at a time,
    so this measures client + HTTP overhead on top of unbatched generation, not what a vLLM server would do.
    """
    backend = "openai" if url else "hf"
    cfg = GenerationConfig(backend=backend, model="local" if url else str(model), base_url=url or "http://x/v1",
                           n=4, temperature=0.8, max_new_tokens=64, batch_size=16, concurrency=4, seed=1)
    path = out / f"samples_{backend}_{threads}t.jsonl"
    for p in out.glob(path.stem + "*"):
        p.unlink()
    with Timer() as t:
        sample_problems(cfg, problems[:16], path, progress=False)
    tokens = sum(r["n_tokens"] for r in read_jsonl(path.with_name(path.stem + ".raw.jsonl")))
    what = "sample (openai -> local server)" if url else "sample (hf, batch 16)"
    return {"what": what, "threads": threads, "rate": tokens / t.wall, "unit": "tokens/s", "wall_s": t.wall,
            "cpu_per_wall": t.cpu / t.wall}


def bench_sft(model: Path, examples, out: Path, steps: int, threads: int) -> tuple[dict, Path]:
    cfg = SFTConfig(max_steps=steps, batch_size=16, learning_rate=2e-3, logging_steps=max(1, steps // 10))
    with Timer() as t:
        sft_dir = run_sft(cfg, str(model), examples, out / f"sft_{threads}t")
    losses = [r["loss"] for r in read_jsonl(sft_dir / "sft_log.jsonl") if "loss" in r]
    return ({"what": "SFT step (batch 16)", "threads": threads, "rate": steps / t.wall, "unit": "steps/s",
             "wall_s": t.wall, "cpu_per_wall": t.cpu / t.wall, "loss_first": losses[0], "loss_last": losses[-1]},
            sft_dir)


def similarity_reward(problems):
    """Stand-in reward: difflib ratio of the completion to the reference solution."""
    ref = {p.prompt: p.canonical_solution or "" for p in problems}
    return lambda prompts, comps: [difflib.SequenceMatcher(None, c.strip(), ref[p].strip()).ratio()
                                   for p, c in zip(prompts, comps)]


def bench_ppo(policy: Path, problems, out: Path, steps: int, threads: int) -> dict:
    cfg = PPOConfig(steps=steps, batch_size=16, max_new_tokens=64, learning_rate=1e-4, kl_coef=0.05,
                    minibatch_size=8, ppo_epochs=2, save_every=steps, seed=0)
    run_dir = out / f"ppo_{threads}t"
    with Timer() as t:
        run_ppo(cfg, str(policy), similarity_reward(problems), problems, run_dir, progress=False)
    log = read_jsonl(run_dir / "ppo_log.jsonl")
    k = max(1, steps // 5)
    return {"what": "PPO iteration (16 rollouts, 2 epochs)", "threads": threads, "rate": steps / t.wall,
            "unit": "steps/s", "wall_s": t.wall, "cpu_per_wall": t.cpu / t.wall,
            "reward_first": sum(r["reward"] for r in log[:k]) / k, "reward_last": sum(r["reward"] for r in log[-k:]) / k,
            "kl_last": log[-1]["kl"], "curve": str(run_dir / "reward_curve.png")}


def pass_at_1(model: Path, problems, out: Path, name: str) -> float:
    """Greedy pass@1 of `model` on `problems`, executed in the sandbox."""
    from rewardranker.execution import ExecutionConfig, execute
    from rewardranker.records import Sample

    cfg = GenerationConfig(model=str(model), n=1, temperature=0.0, max_new_tokens=96, batch_size=32)
    path = out / f"{name}.jsonl"
    for p in out.glob(path.stem + "*"):
        p.unlink()
    samples = [Sample(r["problem_id"], r["sample_id"], r["completion"])
               for r in read_jsonl(sample_problems(cfg, problems, path, progress=False))]
    verdicts = execute(problems, samples, ExecutionConfig(workers=2, use_cache=False), progress=False)
    return sum(v.passed for v in verdicts) / len(verdicts)


def machine() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "commit": commit, "loadavg_start": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-policy"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    ap.add_argument("--sft-steps", type=int, default=300, help="SFT steps of the measured run (greedy pass@1 is measured after it)")
    ap.add_argument("--ppo-steps", type=int, default=40)
    ap.add_argument("--ppo-start-steps", type=int, default=40,
                    help="SFT steps of PPO's start policy: a weaker one than --sft-steps leaves reward headroom")
    ap.add_argument("--size", default="tiny", help="embedded generator size: tiny, small or base")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    problems = load_problems("procedural:train:py")
    heldout = load_problems("procedural:heldout:py")
    info = machine()
    gen0 = build_local_generator([p.prompt + (p.canonical_solution or "") for p in problems], args.out / "gen0",
                                 size=args.size)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        sft_row, sft_dir = bench_sft(gen0, examples_from_problems(problems), args.out, args.sft_steps, threads)
        if threads == args.threads[0]:  # quality once: it does not depend on the thread count
            sft_row["pass1_train"] = pass_at_1(sft_dir, problems[:128], args.out, "greedy_train")
            sft_row["pass1_heldout"] = pass_at_1(sft_dir, heldout, args.out, "greedy_heldout")
        rows.append(sft_row)
        rows.append(bench_sampling(sft_dir, problems, args.out, threads))
        with LocalCompletionServer(str(sft_dir)) as server:
            rows.append(bench_sampling(sft_dir, problems, args.out, threads, url=server.url))
        start = run_sft(SFTConfig(max_steps=args.ppo_start_steps, batch_size=16, learning_rate=2e-3), str(gen0),
                        examples_from_problems(problems), args.out / f"ppo_start_{threads}t")
        rows.append(bench_ppo(start, problems, args.out, args.ppo_steps, threads))
    info["loadavg_end"] = os.getloadavg()[0]
    write_json(args.out / "results.json", {"machine": info, "size": args.size, "rows": rows})
    print_table(rows, info)


def print_table(rows: list[dict], info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"generator side, {info['cores']} cores, commit {info['commit']}, "
                        f"load {info['loadavg_start']:.1f} -> {info['loadavg_end']:.1f}")
    for col in ("what", "threads", "rate", "wall s", "cpu/wall", "notes"):
        table.add_column(col)
    for r in rows:
        notes = ""
        if "loss_first" in r:
            notes = f"loss {r['loss_first']:.2f} -> {r['loss_last']:.2f}"
        if "pass1_heldout" in r:
            notes += f"; greedy pass@1 train {r['pass1_train']:.2f}, held-out {r['pass1_heldout']:.2f}"
        if "reward_first" in r:
            notes = f"reward {r['reward_first']:.3f} -> {r['reward_last']:.3f}, KL {r['kl_last']:.2f}; {r['curve']}"
        table.add_row(r["what"], str(r["threads"]), f"{r['rate']:.2f} {r['unit']}", f"{r['wall_s']:.1f}",
                      f"{r['cpu_per_wall']:.2f}", notes)
    Console(width=150).print(table)
    print("vllm: not measured (not installable on this CPU machine; GPU-only optional extra)")


if __name__ == "__main__":
    main()
