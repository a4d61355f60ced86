"""Records passed between stages, one JSONL line each. Loaders are strict: a wrong field is an error."""

from __future__ import annotations

import enum
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rewardranker.errors import RecordError

LANGUAGES = ("py", "cpp", "java", "php", "ts", "js", "cs", "sh")
ProblemKey = tuple[str, str]  # (language, problem_id)
SampleKey = tuple[str, str, int]  # (language, problem_id, sample_id)


class Status(str, enum.Enum):
    """Execution outcome; the first four map one-to-one onto MultiPL-E's statuses. InfraError: the sandbox or a
    compile server failed (twice), so the program was not judged: never cached, never a training label, not
    counted in pass@k. Tampered (strict verdict rule only): MultiPL-E's rule would pass the run, but the tests
    did not provably run to their end (early exit 0, exit handler, shutdown hook) or an override of the test
    mechanism was detected; a failure, never a pass."""

    OK = "OK"
    EXCEPTION = "Exception"
    SYNTAX_ERROR = "SyntaxError"
    TIMEOUT = "Timeout"
    INFRA_ERROR = "InfraError"
    TAMPERED = "Tampered"


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: the program run is prompt + completion + "\\n" + tests."""

    problem_id: str
    language: str
    prompt: str
    tests: str
    stop_tokens: tuple[str, ...] = ()
    entry_point: str | None = None
    canonical_solution: str | None = None  # reference completion, when the source has one (SFT data)
    source: str = ""  # where it was loaded from, for messages

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language {self.language!r} is not one of {', '.join(LANGUAGES)}")

    @property
    def key(self) -> ProblemKey:
        """What names a problem: MultiPL-E gives the same id to a problem in every language."""
        return (self.language, self.problem_id)


@dataclass(frozen=True)
class Sample:
    """One candidate program for a problem. `prompt` overrides the problem's prompt when set.

    `language` may be left out when the problem id names one problem only; loaders fill it in
    (`problems.resolve_languages`), so every sample that reaches a stage has its full key.
    """

    problem_id: str
    sample_id: int
    completion: str
    prompt: str | None = None
    logprobs: list[float] | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if self.language is not None and self.language not in LANGUAGES:
            raise ValueError(f"language {self.language!r} is not one of {', '.join(LANGUAGES)}")

    @property
    def key(self) -> SampleKey:
        return (self.language or "", self.problem_id, self.sample_id)

    @property
    def problem_key(self) -> ProblemKey:
        return (self.language or "", self.problem_id)


@dataclass(frozen=True)
class Verdict:
    """The executor's result for one sample: its key plus what happened."""

    problem_id: str
    sample_id: int
    status: str
    passed: bool
    language: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    stderr: str = ""  # capped excerpt
    stdout: str = ""  # capped excerpt (harnesses that report per-test results print them here)
    program_hash: str = ""
    cached: bool = False
    verdict_rule: str = ""  # "strict" or "multipl-e": the rule `passed` follows
    passed_multipl_e: bool | None = None  # MultiPL-E's exit-code rule: passed, or (strict) status Tampered

    @property
    def key(self) -> SampleKey:
        return (self.language, self.problem_id, self.sample_id)


@dataclass(frozen=True)
class Score:
    """A reward score for one sample."""

    problem_id: str
    sample_id: int
    score: float
    language: str = ""  # empty in files written before scores carried it: matched by id when unambiguous

    @property
    def key(self) -> SampleKey:
        return (self.language, self.problem_id, self.sample_id)


def record_from_dict(cls: type, obj: dict[str, Any], path: str | Path, line: int | None):
    """Build `cls` from a JSON object, naming file, line and field on a missing or mistyped field.

    Unknown fields are ignored so that records can carry extra keys (e.g. a verdict's input fields).
    """
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for name, f in names.items():
        if name in obj:
            kwargs[name] = obj[name]
        elif f.default is MISSING and f.default_factory is MISSING:
            raise RecordError(path, line, name, f"is missing (expected keys: {', '.join(_required(cls))})")
    _check_types(cls, kwargs, path, line)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecordError(path, line, None, str(e)) from None


def _required(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


_EXPECTED = {"problem_id": str, "sample_id": int, "completion": str, "score": (int, float), "passed": bool,
             "status": str, "prompt": (str, type(None)), "language": (str, type(None))}


def _check_types(cls: type, kwargs: dict[str, Any], path, line) -> None:
    for name, value in kwargs.items():
        want = _EXPECTED.get(name)
        if want is None:
            continue
        if isinstance(value, bool) and want is not bool or not isinstance(value, want):
            shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
            raise RecordError(path, line, name, f"= {shown} has type {type(value).__name__}, "
                                                f"expected {getattr(want, '__name__', 'str or null')}")


def to_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (tuples become lists, enums their value)."""
    d = asdict(record)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
        elif isinstance(v, enum.Enum):
            d[k] = v.value
    return d


__all__ = ["LANGUAGES", "ProblemKey", "SampleKey", "Status", "Problem", "Sample", "Verdict", "Score", "record_from_dict", "to_dict", "field"]
