"""Generated tests for any problem set: `gen-tests` with the embedded generator on the 82 dev problems, then
agreement / combined reranking from those tests, against random and against the dev file's own CodeGen-16B tests.

    .venv/bin/python benchmarks/gen_tests.py            # what the README reports (about 30-60 min on 2 shared cores)

Every step is the CLI command it prints (so each number can be reproduced by hand):
  1. build-generator, then `sft --test-examples` (600 steps), then 100 more `sft --test-examples` steps from that
     model: the tiny GPT-2 learns the procedural train split's solutions and its asserts under both test prompts
     (skipped when OUT/sft2 exists). The measured run's first stage saw only the "codet" test prompt;
  2. gen-tests (hf backend, --style check: the tiny model cannot copy an unseen function name, and the check stub
     calls it `candidate`) on the dev problems; the same through the OpenAI backend against the local stdlib
     server (src/rewardranker/generation/local_server.py), on --openai-limit problems (it serves one request at a
     time);
  3. score --mode agreement --tests, for both, and with the dev file's own CodeGen-16B tests for reference;
     `train-rm --cv 5` for out-of-fold reward scores (the tiny GPT-2 as backbone, --rm-steps steps per fold, TF-IDF
     consensus: minutes on a loaded CPU, where the MiniLM default takes an hour; skipped when
     OUT/rm-cv/cv_scores.jsonl exists), and `combined` = `score`'s combination of those with soft
     agreement on the generated tests;
  4. eval: ranked pass@1 with 95% bootstrap CIs vs random and oracle, AUROC; table printed, JSON in
     benchmarks/results/gen_tests.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "reranking" / "humaneval-codegen16b-dev.jsonl"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", type=Path, default=DEV)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-gen-tests")
    ap.add_argument("--sft-steps", type=int, default=600)
    ap.add_argument("--n", type=int, default=10, help="sampled continuations per problem")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--style", default="check", choices=["codet", "check"])
    ap.add_argument("--rm-steps", type=int, default=40, help="reward-model steps per CV fold")
    ap.add_argument("--openai-limit", type=int, default=10, help="problems sampled through the OpenAI backend")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "gen_tests.json")
    return ap.parse_args()


def cli(*args, log: list) -> float:
    """Run `rewardranker ARGS` (1 torch thread), print the command, return its wall seconds."""
    cmd = [sys.executable, "-m", "rewardranker", *map(str, args)]
    shown = "rewardranker " + shlex.join(map(str, args))
    print(f"$ {shown}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {shown}\n{r.stderr[-3000:]}")
    print("  " + (r.stdout.strip().splitlines() or [""])[-1][:200] if "wrote" in r.stdout else "", flush=True)
    log.append({"command": shown, "wall_s": round(wall, 1), "stderr_tail": r.stderr.strip().splitlines()[-1:]})
    return wall


def _stats(tests_path: Path) -> dict:
    rows = [json.loads(x) for x in tests_path.read_text().splitlines()]
    kept = [len(r["generated_tests"]) for r in rows]
    return {"problems": len(rows), "asserts_found": sum(r["asserts_found"] for r in rows), "distinct_kept": sum(kept),
            "problems_without_tests": sum(k == 0 for k in kept), "mean_kept": sum(kept) / max(1, len(kept))}


def _correct_fraction(tests_path: Path) -> float | None:
    """Share of generated asserts that the HumanEval canonical solution passes (how often the tests are right)."""
    from rewardranker.execution import ExecutionConfig
    from rewardranker.problems import humaneval_problems
    from rewardranker.records import Sample
    from rewardranker.reward.agreement import passed_sets

    ref = {p.problem_id: p for p in humaneval_problems()}
    tests = {json.loads(x)["problem_id"]: json.loads(x)["generated_tests"] for x in tests_path.read_text().splitlines()}
    pids = [pid for pid in tests if tests[pid] and pid in ref]
    if not pids:
        return None
    samples = [Sample(pid, 0, ref[pid].canonical_solution) for pid in pids]
    sets = passed_sets({pid: ref[pid] for pid in pids}, samples, tests, exec_cfg=ExecutionConfig(workers=2),
                       progress=False)
    return sum(len(s) for s in sets) / sum(min(100, len(tests[pid])) for pid in pids)


def _combined(samples_file: Path, rm_file: Path, agreement_tests: Path, out: Path) -> Path:
    """combined = log(1 + soft agreement on the generated tests) + 0.5 * z(out-of-fold reward), as `score` does."""
    from rewardranker.execution import ExecutionConfig
    from rewardranker.generation.testgen import load_generated_tests
    from rewardranker.metrics import load_scores
    from rewardranker.problems import load_candidates
    from rewardranker.reward.agreement import passed_sets, per_problem, soft_agreement
    from rewardranker.reward.provenance import write_scores_meta
    from rewardranker.reward.score import DEFAULT_RM_WEIGHT, combine
    from rewardranker.runio import write_jsonl

    cands = load_candidates(samples_file)
    rm = {(s.problem_id, s.sample_id): s.score for s in load_scores(rm_file)}
    sets = passed_sets(cands.problems, cands.samples, load_generated_tests(agreement_tests),
                       exec_cfg=ExecutionConfig(workers=2), progress=False)
    values = combine(cands.samples, [rm[(s.problem_id, s.sample_id)] for s in cands.samples],
                     per_problem(cands.samples, sets, soft_agreement), DEFAULT_RM_WEIGHT)
    write_jsonl(out, ({"problem_id": s.problem_id, "sample_id": s.sample_id, "score": v}
                      for s, v in zip(cands.samples, values)))
    write_scores_meta(out, mode="combined", model=None, out_of_fold=True, tests=str(agreement_tests))
    return out


def main() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"  # the local server generates in this process; the box is shared
    import torch

    torch.set_num_threads(1)
    args = _args()
    out, log = args.out, []
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    timings = {}
    if not (out / "sft2" / "sft_config.json").exists():
        timings["build_generator_s"] = cli("build-generator", "--out", out / "gen0", log=log)
        timings["sft_s"] = cli("sft", "--model", out / "gen0", "--out", out / "sft", "--max-steps", args.sft_steps,
                               "--learning-rate", "2e-3", "--test-examples", log=log)
        timings["sft2_s"] = cli("sft", "--model", out / "sft", "--out", out / "sft2", "--max-steps", 100,
                                "--learning-rate", "1e-3", "--test-examples", log=log)
    gen = ["--n", args.n, "--max-new-tokens", args.max_new_tokens, "--temperature", 0.8, "--seed", 0,
           "--style", args.style, "--batch-size", 32]
    for f in out.glob("tests_hf*"):
        f.unlink()
    timings["gen_tests_hf_s"] = cli("gen-tests", "--samples", args.file, "--model", out / "sft2",
                                    "--out", out / "tests_hf.jsonl", *gen, log=log)
    from rewardranker.generation.local_server import LocalCompletionServer

    for f in out.glob("tests_openai*"):
        f.unlink()
    with LocalCompletionServer(str(out / "sft2")) as server:
        timings["gen_tests_openai_s"] = cli("gen-tests", "--samples", args.file, "--backend", "openai", "--base-url",
                                            server.url, "--model", "sft", "--out", out / "tests_openai.jsonl",
                                            "--limit", args.openai_limit, "--concurrency", 4, *gen, log=log)
    timings["score_agreement_s"] = cli("score", "--samples", args.file, "--mode", "agreement", "--tests",
                                       out / "tests_hf.jsonl", "--out", out / "agreement_gen.jsonl", log=log)
    cli("score", "--samples", args.file, "--mode", "agreement", "--out", out / "agreement_codegen.jsonl", log=log)
    openai_subset = out / "dev_openai_subset.jsonl"
    openai_subset.write_text("".join(args.file.read_text().splitlines(keepends=True)[:args.openai_limit]))
    cli("score", "--samples", openai_subset, "--mode", "agreement", "--tests", out / "tests_openai.jsonl",
        "--out", out / "agreement_openai.jsonl", log=log)
    if not (out / "rm-cv" / "cv_scores.jsonl").exists():
        (out / "rm-tiny.yaml").write_text("consensus: tfidf\nbf16: false\nmax_length: 128\n")
        timings["train_rm_cv_s"] = cli("train-rm", "--samples", args.file, "--cv", 5, "--out", out / "rm-cv",
                                       "--config", out / "rm-tiny.yaml", "--backbone", out / "sft",
                                       "--max-steps", args.rm_steps, log=log)
    _combined(args.file, out / "rm-cv" / "cv_scores.jsonl", out / "tests_hf.jsonl", out / "combined_gen.jsonl")
    cli("eval", "--samples", args.file, "--out", out / "eval",
        "--scores", f"agreement (generated tests)={out / 'agreement_gen.jsonl'}",
        "--scores", f"combined (generated tests)={out / 'combined_gen.jsonl'}",
        "--scores", f"rm (out-of-fold)={out / 'rm-cv' / 'cv_scores.jsonl'}",
        "--scores", f"agreement (CodeGen-16B tests)={out / 'agreement_codegen.jsonl'}", log=log)
    cli("eval", "--samples", openai_subset, "--out", out / "eval_openai",
        "--scores", f"agreement (OpenAI-backend tests)={out / 'agreement_openai.jsonl'}",
        "--scores", f"agreement (hf tests)={out / 'agreement_gen.jsonl'}", log=log)
    report = json.loads((out / "eval" / "report.json").read_text())
    sub = json.loads((out / "eval_openai" / "report.json").read_text())
    hf_stats, oa_stats = _stats(out / "tests_hf.jsonl"), _stats(out / "tests_openai.jsonl")
    hf_stats["right_share"] = _correct_fraction(out / "tests_hf.jsonl")
    oa_stats["right_share"] = _correct_fraction(out / "tests_openai.jsonl")
    result = {"machine": _machine(load_start), "settings": vars(args) | {"file": str(args.file), "out": str(out),
                                                                         "results": str(args.results)},
              "tests_hf": hf_stats, "tests_openai": oa_stats, "timings_s": timings, "eval_dev": report,
              "eval_openai_subset": sub, "commands": log}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("pass_at_1.png", "reliability.png"):
        shutil.copyfile(out / "eval" / name, args.results.with_name(f"gen_tests_{name}"))
    _print(result)


def _machine(load_start) -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": 1, "python": platform.python_version(),
            "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
            "note": "2 cores shared with other jobs while measured"}


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"gen-tests on {result['eval_dev']['overall']['problems']} dev problems "
                    f"({result['machine']['cpu']}, load {result['machine']['loadavg_start'][0]:.1f}"
                    f"-{result['machine']['loadavg_end'][0]:.1f})")
    for c in ("ranker", "ranked pass@1", "95% CI", "AUROC"):
        t.add_column(c, justify="left" if c == "ranker" else "right")
    g = result["eval_dev"]["overall"]
    lo, hi = g["random_pass@1_CI"]
    t.add_row("random", f"{g['random_pass@1']:.2f}", f"{lo:.1f}-{hi:.1f}", "")
    for mode, m in g["modes"].items():
        au = m["AUROC"]
        t.add_row(mode, f"{m['ranked_pass@1']:.2f}", f"{m['CI'][0]:.1f}-{m['CI'][1]:.1f}",
                  "" if au is None else f"{au:.3f}")
    t.add_row("oracle pass@100", f"{g['oracle_pass@n']:.2f}", "", "")
    s = result["eval_openai_subset"]["overall"]
    for mode, m in s["modes"].items():
        t.add_row(f"{mode}, first {s['problems']} problems", f"{m['ranked_pass@1']:.2f}",
                  f"{m['CI'][0]:.1f}-{m['CI'][1]:.1f}", "" if m["AUROC"] is None else f"{m['AUROC']:.3f}")
    t.add_row(f"random, first {s['problems']} problems", f"{s['random_pass@1']:.2f}", "", "")
    Console().print(t)
    for name in ("tests_hf", "tests_openai"):
        st = result[name]
        right = "n/a" if st["right_share"] is None else f"{100 * st['right_share']:.1f}%"
        print(f"{name}: {st['problems']} problems, {st['asserts_found']} asserts found, {st['distinct_kept']} distinct "
              f"kept ({st['mean_kept']:.1f}/problem), {st['problems_without_tests']} problems without any; "
              f"{right} of the kept asserts hold for the canonical solution")
    print("timings (s):", json.dumps(result["timings_s"]))


if __name__ == "__main__":
    main()
