"""Shared helpers for the executor tests: MultiPL-E problems from ../shared, namespaced per language."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rewardranker.problems import load_problems
from rewardranker.records import Problem, Sample

SHARED = Path(os.environ.get("REWARDRANKER_SHARED", Path(__file__).resolve().parents[2].parent / "shared")) / "data"


def multipl_e(lang: str, names: tuple[str, ...]) -> dict[str, Problem]:
    """The named MultiPL-E problems of one language, with ids prefixed `lang/` so languages can share a run."""
    path = SHARED / "multipl-e" / f"humaneval-{lang}-reworded.jsonl"
    found = {p.problem_id: p for p in load_problems(path) if p.problem_id in names}
    assert set(found) == set(names), f"{path} lacks {set(names) - set(found)}"
    return {f"{lang}/{n}": dataclasses.replace(found[n], problem_id=f"{lang}/{n}") for n in names}


def sample(problem_id: str, sample_id: int, completion: str) -> Sample:
    return Sample(problem_id=problem_id, sample_id=sample_id, completion=completion)


def uid_processes(uids: range) -> list[str]:
    """Live (non-zombie) processes owned by any of `uids`."""
    from rewardranker.execution.sandbox import _running

    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid in uids and _running(pid):
                out.append(pid)
        except OSError:
            pass
    return out
