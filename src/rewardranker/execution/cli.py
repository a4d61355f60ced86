"""The body of `rewardranker execute` (kept here so cli.py stays thin)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from rewardranker.errors import RewardRankerError
from rewardranker.execution.runner import ExecutionConfig, execute
from rewardranker.problems import load_candidates, load_problems
from rewardranker.records import to_dict
from rewardranker.runio import check_output, write_jsonl


def execute_command(samples_path: Path, out: Path, problems_src: str | None, workers: int | None,
                    timeout: float | None, cache: Path | None, unsafe: bool, console, task: str | None = None,
                    verdict_rule: str = "strict", ray: str | None = None) -> None:
    """Load problems and candidates, execute, write verdicts, print a one-line summary."""
    check_output(out, samples_path, problems_src)
    given = load_problems(problems_src) if problems_src else None
    cands = load_candidates(samples_path, given, task)
    console.print(f"{samples_path}: detected {cands.format}", highlight=False, soft_wrap=True)
    if not cands.problems:
        raise RewardRankerError(f"{samples_path}: these samples carry no problems; pass --problems")
    cfg = ExecutionConfig(workers=workers or os.cpu_count() or 1, timeout_s=timeout, cache_path=cache,
                          sandbox=not unsafe, allow_unsandboxed=unsafe, verdict_rule=verdict_rule, ray=ray)
    if ray:
        from rewardranker.execution.ray_backend import import_ray

        import_ray()  # a missing extra is reported before any work
    verdicts = execute(cands.problems, cands.samples, cfg, progress=True)
    write_jsonl(out, (to_dict(v) for v in verdicts))
    counts = Counter(v.status for v in verdicts)
    passed = sum(v.passed for v in verdicts)
    cached = sum(v.cached for v in verdicts)
    console.print(f"{len(verdicts)} verdicts -> {out}: {passed} passed ({verdict_rule} rule); "
                  + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + f" ({cached} from cache)")
    by_multipl_e = sum(bool(v.passed_multipl_e) for v in verdicts)
    if by_multipl_e != passed:
        console.print(f"MultiPL-E's exit-code rule would pass {by_multipl_e}: {by_multipl_e - passed} program(s) "
                      "exit 0 without the tests provably running to their end (status Tampered)")
