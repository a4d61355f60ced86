"""Generated tests for any problem (the input of CodeT's dual execution agreement): sample assert statements
from a generator, extract and deduplicate them as CodeT does, and write one line per problem.

Prompt (CodeT's shape): the problem's prompt, a `pass` body, then `# check the correctness of <f>` and an open
`assert` (style "codet"), or a `def check(candidate):` stub with an open `assert candidate` (style "check").
CodeT ended the prompt in "assert "; we stop before the space (and the parenthesis) because BPE tokenizers fold a
leading space into the next token, so a prompt ending in a space puts the model off its training distribution.
Extraction follows CodeT's post-processing: split the continuation on "assert ", cut every piece at CodeT's stop
strings, and keep the pieces that parse; we also require the assert to call the entry point (checked on the
syntax tree, not by substring) and drop duplicates by their normalized text (`ast.unparse`), first one kept.

Python only: the agreement harness runs Python asserts, so problems in other languages are refused.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from rewardranker.errors import ConfigError, RecordError, RewardRankerError
from rewardranker.records import Problem
from rewardranker.runio import iter_jsonl, read_jsonl_tolerant, write_jsonl

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # CodeT's STOP_TOKEN, applied to every extracted assert
# sampling stops at these (a comment between asserts is common, so "\n#" cuts each piece, not the sample)
SAMPLING_STOP = ("\nclass", "\ndef", "\nif", "\nprint")
STYLES = ("codet", "check")
_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class GenTestsConfig:
    """How to ask for tests and how many to keep (CodeT used the first 100 distinct asserts per problem)."""

    style: str = "codet"
    max_tests: int = 100

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError("style", f"= {self.style!r} is not one of {', '.join(STYLES)}")
        if self.max_tests <= 0:
            raise ConfigError("max_tests", f"= {self.max_tests} must be > 0")


def entry_point(problem: Problem) -> str:
    """The function under test: the problem's entry_point, else the last top-level `def` of its prompt."""
    if problem.entry_point:
        return problem.entry_point
    names = _DEF.findall(problem.prompt)
    if not names:
        raise RewardRankerError(f"{problem.problem_id}: no entry_point and no `def` in the prompt to test")
    return names[-1]


def opening(style: str) -> str:
    """The text the prompt ends with, which the model continues (and which extraction puts back in front)."""
    return "assert" if style == "codet" else "    assert candidate"


def prompt_for_tests(problem: Problem, style: str = "codet") -> str:
    """CodeT's test-generation prompt for one Python problem."""
    if problem.language != "py":
        raise RewardRankerError(f"{problem.problem_id}: gen-tests writes Python asserts (the agreement harness "
                                f"runs Python); language is {problem.language!r}")
    head = problem.prompt if problem.prompt.endswith("\n") else problem.prompt + "\n"
    if style == "codet":
        return f"{head}    pass\n\n# check the correctness of {entry_point(problem)}\n{opening(style)}"
    return f"{head}    pass\n\n\ndef check(candidate):\n{opening(style)}"


def _cut(text: str) -> str:
    cut = min([i for i in (text.find(s) for s in STOP) if i != -1], default=len(text))
    return text[:cut].strip()


def _first_assert(piece: str) -> ast.Assert | None:
    """The assert statement a piece starts with, or None when it does not parse (first the whole piece, then
    its first line, so trailing junk after a one-line assert does not lose it)."""
    for text in (piece, piece.split("\n", 1)[0]):
        try:
            body = ast.parse(text).body
        except (SyntaxError, ValueError):
            continue
        if body and isinstance(body[0], ast.Assert):
            return body[0]
        return None
    return None


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.new, node.ctx), node) if node.id == self.old else node


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for n in ast.walk(node))


def extract_asserts(continuation: str, entry: str, style: str = "codet") -> list[str]:
    """Asserts found in one sampled continuation, in order: CodeT's split on "assert " and stop-string cut, kept
    when they parse and call `entry` (style "check": `candidate(...)` is renamed to `entry(...)`)."""
    text = opening(style).lstrip() + continuation
    out = []
    for piece in text.split("assert ")[1:]:
        if not piece.strip():
            continue
        source = _cut("assert " + piece)
        node = _first_assert(source)
        if node is None:
            continue
        if style == "check":
            node = _Rename("candidate", entry).visit(node)
        if _calls(node.test, entry):
            kept = ast.get_source_segment(source, node) if style == "codet" else None
            out.append(kept or ast.unparse(node))
    return out


def normalized(assert_text: str) -> str:
    """The dedupe key: the statement re-printed from its syntax tree (spacing, quotes and parentheses ignored)."""
    try:
        return ast.unparse(ast.parse(assert_text))
    except SyntaxError:
        return " ".join(assert_text.split())


def dedupe(asserts: list[str], cap: int) -> list[str]:
    """Distinct asserts (by normalized text) in first-appearance order, at most `cap`."""
    seen: set[str] = set()
    out = []
    for a in asserts:
        key = normalized(a)
        if key not in seen:
            seen.add(key)
            out.append(a)
            if len(out) == cap:
                break
    return out


def problems_for_tests(problems: list[Problem], style: str) -> list[Problem]:
    """The problems re-posed as test-writing prompts (what the sampler sees)."""
    return [Problem(problem_id=p.problem_id, language="py", prompt=prompt_for_tests(p, style), tests="",
                    stop_tokens=SAMPLING_STOP, entry_point=entry_point(p), source=p.source) for p in problems]


def generate_tests(gen_cfg, problems: list[Problem], out_path: str | Path, cfg: GenTestsConfig = GenTestsConfig(),
                   progress: bool = True) -> dict:
    """Sample `gen_cfg.n` continuations per problem, extract and dedupe their asserts, write `out_path`.

    The samples go to `<out>.<style>.samples.jsonl` (+ `.raw.jsonl`, `.config.json`) beside it, so a rerun of the
    same command resumes sampling (and another style or sampling setting cannot mix in). Returns counts.
    """
    from rewardranker.generation.sample import sample_problems, sibling

    out_path = Path(out_path)
    asked = problems_for_tests(problems, cfg.style)
    samples_path = sample_problems(gen_cfg, asked, sibling(out_path, f".{cfg.style}.samples.jsonl"), progress=progress)
    raw: dict[str, list[tuple[int, str]]] = {}
    for r in read_jsonl_tolerant(sibling(samples_path, ".raw.jsonl")):
        raw.setdefault(r["problem_id"], []).append((r["sample_id"], r["raw"]))
    rows, found = [], 0
    for p in asked:
        texts = [t for sid, t in sorted(raw.get(p.problem_id, [])) if sid < gen_cfg.n]
        every = [a for t in texts for a in extract_asserts(t, p.entry_point, cfg.style)]
        found += len(every)
        rows.append({"problem_id": p.problem_id, "language": "py", "entry_point": p.entry_point,
                     "generated_tests": dedupe(every, cfg.max_tests), "samples": len(texts),
                     "asserts_found": len(every)})
    write_jsonl(out_path, rows)
    kept = [len(r["generated_tests"]) for r in rows]
    return {"problems": len(rows), "samples": sum(r["samples"] for r in rows), "asserts_found": found,
            "distinct_kept": sum(kept), "problems_without_tests": sum(1 for k in kept if k == 0)}


def load_generated_tests(path: str | Path) -> dict[str, list[str]]:
    """problem_id -> asserts, from a `gen-tests` file (or any JSONL with problem_id/task_id + generated_tests)."""
    out: dict[str, list[str]] = {}
    for line, obj in iter_jsonl(path):
        pid = obj.get("problem_id", obj.get("task_id"))
        if not isinstance(pid, str):
            raise RecordError(path, line, "problem_id", "is missing or not a string (a gen-tests file has one "
                              "{problem_id, generated_tests} per line)")
        tests = obj.get("generated_tests")
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise RecordError(path, line, "generated_tests", "is missing or not a list of strings")
        if pid in out:
            raise RecordError(path, line, "problem_id", f"= {pid!r} appears twice")
        out[pid] = tests
    if not out:
        raise RecordError(path, None, None, "file holds no generated tests")
    return out


def sft_examples(problems: list[Problem], style: str = "codet") -> list[tuple[str, str]]:
    """(test prompt, asserts) pairs from problems whose tests are MultiPL-E's `check(candidate)` asserts, to
    teach a small generator the test-writing format (e.g. on the procedural suite's train split)."""
    out = []
    for p in problems:
        if p.language != "py":
            continue
        entry = entry_point(p)
        lines = [ln.strip() for ln in p.tests.splitlines() if ln.strip().startswith("assert candidate(")]
        if not lines:
            continue
        if style == "codet":
            asserts = [ln.replace("candidate(", f"{entry}(", 1) for ln in lines]
            target = "\n".join(asserts)[len(opening(style)):] + "\n"
        else:
            target = "\n".join("    " + ln for ln in lines)[len(opening(style)):] + "\n"
        out.append((prompt_for_tests(p, style), target))
    return out
