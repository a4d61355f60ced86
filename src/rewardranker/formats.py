"""Readers for the candidate and verdict files users already have, detected from their content.

Candidates: our samples JSONL; the reranking layout of `shared/data/reranking`; CodeT's (prompt, samples);
EvalPlus samples JSONL (`task_id` + `completion` or `solution`) and its folder layout
(`<task_id with / as _>/<n>.py`); bigcode-evaluation-harness `generations.json` (a list per problem of full
programs), with its `references.json` when present; a MultiPL-E completions folder (one `.json`/`.json.gz` per
problem: `name`, `language`, `prompt`, `tests`, `completions`), which carries its own problems.
Verdicts: our VERDICTS JSONL, or a MultiPL-E results folder (`<name>.results.json[.gz]`: `results` with
`status` and `exit_code` per completion).

We read these layouts ourselves (as documented by each tool) rather than depend on the tools, which pull in
their own executors and datasets.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.problems import (
    PY_STOP_TOKENS,
    CandidateSet,
    ProblemSet,
    _multipl_e_layout,
    _require,
    humaneval_problems,
    index_problems,
)
from rewardranker.records import LANGUAGES, Problem, Sample, Verdict, record_from_dict
from rewardranker.runio import content_hash, iter_jsonl

STREAM_CAP = 2048  # bytes of stdout/stderr kept per verdict, as the executor does


# --------------------------------------------------------------------------- candidates: detection


@dataclass(frozen=True)
class _Layout:
    """A JSONL candidates layout: its name, the key that marks it, the keys it needs, and its reader."""

    name: str
    marker: str
    needs: tuple[tuple[str, ...], ...]  # every inner tuple: at least one of these keys must be present
    read: Callable


def _missing(layout: _Layout, obj: dict) -> list[str]:
    return [" or ".join(f"'{k}'" for k in alts) for alts in layout.needs if not any(k in obj for k in alts)]


def read_candidates(path: Path, problems: list[Problem] | None = None, task: str | None = None) -> CandidateSet:
    """Read candidates in any supported layout; `CandidateSet.format` says which one was detected."""
    if not path.exists():
        raise RecordError(path, None, None, "no such file or folder")
    if path.is_dir():
        return _candidates_folder(path, problems)
    if task or _head(path).startswith("["):
        return read_bigcode(path, problems, task)
    records = list(iter_jsonl(path))
    if not records:
        raise RecordError(path, None, None, "file holds no records")
    first_line, first = records[0]
    if len(records) == 1 and {"name", "language", "completions"} <= set(first):
        return _multipl_e_candidates([(path, first)], f"MultiPL-E completions file {path.name}")
    for layout in _LAYOUTS:  # the first layout whose marker key is there reads it (and names a missing field)
        if layout.marker in first:
            return layout.read(records, path, problems)
    tried = "; ".join(f"{lay.name} (missing {', '.join(_missing(lay, first))})" for lay in _LAYOUTS)
    raise RecordError(path, first_line, None, f"not a known candidates layout. Tried: {tried}")


def _head(path: Path) -> str:
    """The first non-blank characters of a (possibly gzipped) text file (to sniff the layout: bytes that are not
    UTF-8 are left for the loader to report with their line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read(256).lstrip()


def _candidates_folder(path: Path, problems: list[Problem] | None) -> CandidateSet:
    files = multipl_e_files(path)
    if files:
        return read_multipl_e_folder(path)
    task_dirs = [d for d in sorted(path.iterdir()) if d.is_dir() and any(d.glob("*.py"))]
    if task_dirs:
        return read_evalplus_folder(path, task_dirs, problems)
    raise RewardRankerError(f"{path} is a folder, and neither a MultiPL-E completions folder (no .json/.json.gz "
                            "files with 'completions') nor an EvalPlus samples folder (no <task>/<n>.py files); "
                            "pass a samples JSONL file")


# --------------------------------------------------------------------------- candidates: JSONL layouts


def _samples_layout(records: list[tuple[int, dict]], path: Path, problems) -> CandidateSet:
    samples = [record_from_dict(Sample, obj, path, lineno) for lineno, obj in records]
    with_lang = sum(s.language is not None for s in samples)
    what = "rewardranker samples JSONL" + (" with languages" if with_lang == len(samples) else "")
    return CandidateSet(samples=samples, format=what, origins=[f"{path}:{ln}" for ln, _ in records])


def _reranking_layout(records: list[tuple[int, dict]], path: Path, problems) -> CandidateSet:
    tests = {p.problem_id: p.tests for p in humaneval_problems()}
    out = CandidateSet(samples=[], labels={}, format="reranking layout (task_id, prompt, completions)")
    for lineno, obj in records:
        task_id = _require(obj, "task_id", path, lineno)
        completions = _require(obj, "completions", path, lineno, list)
        passed = obj.get("reference_passed")
        if passed is not None and len(passed) != len(completions):
            raise RecordError(path, lineno, "reference_passed",
                              f"has {len(passed)} entries but completions has {len(completions)}")
        problem = Problem(problem_id=task_id, language="py", prompt=_require(obj, "prompt", path, lineno),
                          tests=tests.get(task_id, ""), stop_tokens=PY_STOP_TOKENS,
                          entry_point=obj.get("entry_point"), source=f"{path}:{lineno}")
        _add_problem(out.problems, problem)
        for i, completion in enumerate(completions):
            out.add(Sample(problem_id=task_id, sample_id=i, completion=completion, language="py"), path, lineno)
            if passed is not None:
                out.labels[("py", task_id, i)] = bool(passed[i])
        out.generated_tests[task_id] = list(obj.get("generated_tests") or [])
    if not out.labels:
        out.labels = None
    return out


def _codet_layout(records: list[tuple[int, dict]], path: Path, problems: list[Problem] | None) -> CandidateSet:
    if not problems:
        raise RecordError(path, None, None, "CodeT-layout files are matched to problems by prompt: pass --problems")
    by_prompt = {p.prompt.strip(): p for p in problems}
    out = CandidateSet(samples=[], format="CodeT layout (prompt, samples)")
    counters: dict[tuple[str, str], int] = {}
    for lineno, obj in records:
        prompt = _require(obj, "prompt", path, lineno)
        problem = by_prompt.get(prompt.strip())
        if problem is None:
            raise RecordError(path, lineno, "prompt", "matches no problem's prompt")
        for completion in _require(obj, "samples", path, lineno, list):
            sid = counters.get(problem.key, 0)
            counters[problem.key] = sid + 1
            out.add(Sample(problem.problem_id, sid, completion, prompt=prompt, language=problem.language),
                    path, lineno)
        out.problems.setdefault(problem.key, problem)
    return out


def _evalplus_jsonl(records: list[tuple[int, dict]], path: Path, problems) -> CandidateSet:
    """EvalPlus samples: `solution` is a whole program, `completion` follows the problem's prompt."""
    probs = _python_problems(problems, [obj.get("task_id", "") for _, obj in records], path)
    counters: dict[str, int] = {}
    kinds = set()
    out = CandidateSet(samples=[], problems=probs)
    for lineno, obj in records:
        task_id = _require(obj, "task_id", path, lineno)
        if "solution" in obj:
            code, prompt = _require(obj, "solution", path, lineno), ""
            kinds.add("solution")
        else:
            code, prompt = _require(obj, "completion", path, lineno), None
            kinds.add("completion")
        sid = counters.get(task_id, 0)
        counters[task_id] = sid + 1
        out.add(Sample(task_id, sid, code, prompt=prompt, language="py"), path, lineno)
    out.format = f"EvalPlus samples JSONL (task_id + {' / '.join(sorted(kinds))})" + _problems_note(problems)
    return out


_LAYOUTS = (
    _Layout("rewardranker samples", "problem_id", (("problem_id",), ("sample_id",), ("completion",)), _samples_layout),
    _Layout("reranking layout", "completions", (("task_id",), ("prompt",), ("completions",)), _reranking_layout),
    _Layout("EvalPlus samples", "task_id", (("task_id",), ("completion", "solution")), _evalplus_jsonl),
    _Layout("CodeT layout", "samples", (("prompt",), ("samples",)), _codet_layout),
)


def _python_problems(problems: list[Problem] | None, task_ids: list[str], path: Path) -> ProblemSet:
    """The problems EvalPlus task ids refer to: those given, else the built-in HumanEval for HumanEval/N ids."""
    if problems:
        return index_problems(problems)
    if all(t.startswith("HumanEval/") for t in task_ids):
        return index_problems(humaneval_problems())
    odd = next(t for t in task_ids if not t.startswith("HumanEval/"))
    raise RewardRankerError(f"{path}: task id {odd!r} is not a HumanEval one: pass --problems with these tasks "
                            "(e.g. an MBPP file in HumanEval layout)")


def _problems_note(problems) -> str:
    return "" if problems else "; problems: built-in HumanEval"


# --------------------------------------------------------------------------- candidates: EvalPlus folder


def read_evalplus_folder(path: Path, task_dirs: list[Path], problems: list[Problem] | None) -> CandidateSet:
    """EvalPlus's folder layout: `<root>/<task_id with '/' replaced by '_'>/<n>.py`, each a whole program."""
    given = index_problems(problems) if problems else None
    by_folder = {p.problem_id.replace("/", "_"): p.problem_id for p in (given or {}).values()}
    ids = [by_folder.get(d.name) or d.name.replace("_", "/", 1) for d in task_dirs]
    out = CandidateSet(samples=[], problems=_python_problems(problems, ids, path))
    for d, task_id in zip(task_dirs, ids):
        files = sorted(d.glob("*.py"), key=lambda f: (not f.stem.isdigit(), int(f.stem) if f.stem.isdigit() else 0,
                                                      f.name))
        for i, f in enumerate(files):
            sid = int(f.stem) if f.stem.isdigit() else i
            out.add(Sample(task_id, sid, f.read_text(encoding="utf-8"), prompt="", language="py"), f, None)
    out.format = f"EvalPlus samples folder ({len(task_dirs)} task folders of <n>.py)" + _problems_note(problems)
    return out


# --------------------------------------------------------------------------- candidates: MultiPL-E folders


def multipl_e_files(path: Path, results: bool = False) -> list[Path]:
    """MultiPL-E's per-problem files in a folder: completions (`X.json[.gz]`) or results (`X.results.json[.gz]`)."""
    files = sorted([*path.glob("*.json"), *path.glob("*.json.gz")])
    return [f for f in files if _is_results(f) == results]


def _is_results(f: Path) -> bool:
    return f.name.endswith((".results.json", ".results.json.gz"))


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as e:
        raise RecordError(path, None, None, f"not a valid JSON document ({e})") from None


def read_multipl_e_folder(path: Path) -> CandidateSet:
    """A MultiPL-E completions folder: problems and candidates from one JSON file per problem."""
    docs = []
    for f in multipl_e_files(path):
        obj = _read_json(f)
        if not isinstance(obj, dict):
            raise RecordError(f, None, None, f"expected a JSON object, found {type(obj).__name__}")
        docs.append((f, obj))
    return _multipl_e_candidates(docs, f"MultiPL-E completions folder ({len(docs)} problem files)")


def _multipl_e_candidates(docs: list[tuple[Path, dict]], what: str) -> CandidateSet:
    out = CandidateSet(samples=[], format=what)
    for f, obj in docs:
        problem = _multipl_e_problem(obj, f)
        _add_problem(out.problems, problem)
        for i, completion in enumerate(_require(obj, "completions", f, None, list)):
            if not isinstance(completion, str):
                raise RecordError(f, None, f"completions[{i}]", f"has type {type(completion).__name__}, expected str")
            out.add(Sample(problem.problem_id, i, completion, language=problem.language), f, None)
    return out


def _multipl_e_problem(obj: dict, f: Path) -> Problem:
    """A MultiPL-E per-problem file as a Problem (stop tokens are optional there: completions are already cut)."""
    return _multipl_e_layout({"stop_tokens": [], **obj}, f, None)


def _add_problem(problems: ProblemSet, p: Problem) -> None:
    if p.key in problems:
        raise RewardRankerError(f"{p.source}: duplicate problem ({p.language}, {p.problem_id!r}); first defined "
                                f"at {problems[p.key].source}")
    problems[p.key] = p


# --------------------------------------------------------------------------- candidates: bigcode harness


def read_bigcode(path: Path, problems: list[Problem] | None, task: str | None) -> CandidateSet:
    """bigcode-evaluation-harness `generations.json`: one list of whole programs per problem, in task order.

    Each list is matched to its problem by prompt (the harness keeps the prompt at the start of every
    program), else by the harness's `references.json` beside it (the tests), else by position.
    """
    data = _read_json(path)
    if not (isinstance(data, list) and all(isinstance(g, list) and all(isinstance(x, str) for x in g) for g in data)):
        raise RecordError(path, None, None, "not a bigcode-evaluation-harness generations file (expected a JSON "
                                            "list with one list of program strings per problem)")
    language = _task_language(task, path)
    references = _references_beside(path, len(data))
    pool = _task_problems(task, language, problems, references, path, len(data))
    out = CandidateSet(samples=[], format=f"bigcode-evaluation-harness generations ({len(data)} problems"
                                          f"{', task ' + task if task else ''}"
                                          f"{', with ' + references[0].name if references else ''})")
    matched_by = set()
    for i, programs in enumerate(data):
        problem, how = _match_generation(i, programs, pool, references[1] if references else None, len(data), path)
        matched_by.add(how)
        _add_problem(out.problems, problem)
        for j, program in enumerate(programs):
            out.add(Sample(problem.problem_id, j, program, prompt="", language=problem.language), path, None)
    out.format = out.format[:-1] + f"; matched by {' and '.join(sorted(matched_by))})"
    return out


def _task_language(task: str | None, path: Path) -> str | None:
    """The language a task's programs are in; None without a task (any language of the problems given)."""
    if task is None:
        return None
    if task in ("humaneval", "humanevalplus", "mbpp", "mbppplus"):
        return "py"
    if task.startswith("multiple-") and task.split("-", 1)[1] in LANGUAGES:
        return task.split("-", 1)[1]
    raise RewardRankerError(f"{path}: --task {task!r} is not supported: use humaneval, mbpp, or multiple-<lang> "
                            f"with lang one of {', '.join(LANGUAGES)}")


def _references_beside(path: Path, n: int) -> tuple[Path, list[str]] | None:
    """The harness's `--save_references` output next to the generations, if it is there and fits."""
    stem = path.name.removesuffix(".json")
    names = [stem.replace("generations", "references", 1) + ".json", "references.json"]
    for name in dict.fromkeys(names):
        f = path.with_name(name)
        if f != path and f.is_file():
            refs = _read_json(f)
            if not (isinstance(refs, list) and all(isinstance(r, str) for r in refs)):
                raise RecordError(f, None, None, "not a bigcode-evaluation-harness references file "
                                                 "(expected a JSON list of strings)")
            if len(refs) != n:
                raise RecordError(f, None, None, f"has {len(refs)} references but {path.name} has {n} problems")
            return f, refs
    return None


def _task_problems(task, language, problems, references, path: Path, n: int) -> list[Problem]:
    if problems:
        pool = [p for p in problems if language is None or p.language == language]
        if not pool:
            raise RewardRankerError(f"{path}: none of the problems given is in {language} (task {task})")
        return pool
    if task in (None, "humaneval", "humanevalplus"):
        return humaneval_problems()
    if references:  # the references are the tests: the programs need nothing else
        return [Problem(problem_id=f"{task}/{i}", language=language, prompt="", tests=r, source=f"{references[0]}[{i}]")
                for i, r in enumerate(references[1])]
    raise RewardRankerError(f"{path}: task {task} needs its problems: pass --problems (e.g. a MultiPL-E {language} "
                            "file) or keep the harness's references.json beside the generations")


def _match_generation(i: int, programs: list[str], pool: list[Problem], refs: list[str] | None, n: int,
                      path: Path) -> tuple[Problem, str]:
    first = next((p for p in programs if p.strip()), "").lstrip()
    hits = [p for p in pool if p.prompt.strip() and first.startswith(p.prompt.strip())]
    if hits:
        return max(hits, key=lambda p: len(p.prompt.strip())), "prompt"
    if refs is not None:
        same = [p for p in pool if p.tests.strip() == refs[i].strip()]
        if len(same) == 1:
            return same[0], "reference tests"
    if len(pool) == n:
        return pool[i], "position"
    raise RewardRankerError(f"{path}: problem #{i} (0-based): its programs start with no known prompt, and the "
                            f"{len(pool)} problems given cannot be matched by position to its {n} lists; pass the "
                            "task's --problems or keep the harness's references.json beside it")


# --------------------------------------------------------------------------- verdicts


def read_verdicts(path: Path) -> tuple[list[Verdict], list[str], str]:
    """Verdicts from our VERDICTS JSONL or a MultiPL-E results folder; also each one's origin and the format."""
    if not path.exists():
        raise RecordError(path, None, None, "no such file or folder")
    if path.is_dir():
        files = multipl_e_files(path, results=True)
        if not files:
            raise RewardRankerError(f"{path} is a folder, but not a MultiPL-E results folder (no *.results.json or "
                                    "*.results.json.gz files); pass a VERDICTS JSONL file")
        verdicts, origins = [], []
        for f in files:
            for v in _multipl_e_results(f):
                verdicts.append(v)
                origins.append(f"{f}[{v.sample_id}]")
        return verdicts, origins, f"MultiPL-E results folder ({len(files)} problem files)"
    if _is_results(path):
        vs = _multipl_e_results(path)
        return vs, [f"{path}[{v.sample_id}]" for v in vs], "MultiPL-E results file"
    verdicts, origins = [], []
    for line, obj in iter_jsonl(path):
        if "problem_id" not in obj and "status" not in obj:
            raise RecordError(path, line, "problem_id", "is missing: not a VERDICTS line (problem_id, sample_id, "
                                                        "status, passed, language) from `rewardranker execute`")
        verdicts.append(record_from_dict(Verdict, obj, path, line))
        origins.append(f"{path}:{line}")
    return verdicts, origins, "rewardranker verdicts JSONL"


def _multipl_e_results(f: Path) -> list[Verdict]:
    """MultiPL-E's rule: a result passes when its status is OK and its exit code 0."""
    obj = _read_json(f)
    if not isinstance(obj, dict):
        raise RecordError(f, None, None, f"expected a JSON object, found {type(obj).__name__}")
    name = _require(obj, "name", f, None)
    language = _require(obj, "language", f, None)
    out = []
    for i, r in enumerate(_require(obj, "results", f, None, list)):
        if not isinstance(r, dict) or "status" not in r:
            raise RecordError(f, None, f"results[{i}]", "has no 'status'")
        code = r.get("exit_code")
        out.append(Verdict(problem_id=name, sample_id=i, status=str(r["status"]),
                           passed=r["status"] == "OK" and code == 0, language=language,
                           exit_code=code if isinstance(code, int) else None,
                           stderr=str(r.get("stderr") or "")[:STREAM_CAP], stdout=str(r.get("stdout") or "")[:STREAM_CAP],
                           program_hash=content_hash(r["program"]) if isinstance(r.get("program"), str) else ""))
    return out
