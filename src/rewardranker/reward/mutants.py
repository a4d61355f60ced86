"""Reward-model training data from reference solutions: AST mutants, labelled by executing them.

Each problem's canonical solution is parsed and rewritten with one small change at a time (a comparison or
arithmetic operator swapped, a constant off by one, `and`/`or` swapped, a statement dropped, two call arguments
swapped). The executor then runs every mutant against the problem's tests: mutants that still pass are extra
positives, the rest are negatives. All programs, the reference included, are printed by `ast.unparse`, so
formatting never gives the label away. Problems used this way must not be evaluation problems.
"""

from __future__ import annotations

import ast
import copy
import random
import textwrap
from pathlib import Path

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.records import Problem, Sample, to_dict
from rewardranker.runio import write_jsonl

_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.FloorDiv, ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv, ast.And: ast.Or, ast.Or: ast.And, ast.USub: ast.UAdd,
}


def _sites(tree: ast.AST) -> list[tuple[int, str]]:
    """(index in ast.walk order, mutation kind) for every place a single mutation applies."""
    out = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, (ast.cmpop, ast.operator, ast.boolop, ast.unaryop)) and type(node) in _SWAPS:
            out.append((i, "swap"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            out += [(i, "plus1"), (i, "minus1")]
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            out.append((i, "negate"))
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            out.append((i, "swap_args"))
        if isinstance(getattr(node, "body", None), list) and len(node.body) > 1:
            out += [(i, f"drop{j}") for j in range(len(node.body) - 1)]
    return out


def _apply(tree: ast.AST, index: int, kind: str) -> ast.AST:
    tree = copy.deepcopy(tree)
    node = next(n for i, n in enumerate(ast.walk(tree)) if i == index)
    if kind == "swap":
        node.__class__ = _SWAPS[type(node)]
    elif kind in ("plus1", "minus1"):
        node.value += 1 if kind == "plus1" else -1
    elif kind == "negate":
        node.value = not node.value
    elif kind == "swap_args":
        node.args[0], node.args[1] = node.args[1], node.args[0]
    else:
        del node.body[int(kind[4:])]
    return tree


def _render(tree: ast.AST, indent: str) -> str:
    return textwrap.indent(ast.unparse(tree), indent) + "\n"


def mutate(body: str, n: int, rng: random.Random) -> tuple[str, list[str]]:
    """(the body re-printed by ast.unparse, up to n distinct single-site mutants of it)."""
    indent = "    "  # the prompts' docstrings use 4 spaces; some MBPP bodies use 2, which would not run
    tree = ast.parse(textwrap.dedent(body))
    reference = _render(tree, indent)
    sites = _sites(tree)
    rng.shuffle(sites)
    out: list[str] = []
    for index, kind in sites:
        if len(out) >= n:
            break
        try:
            code = _render(ast.fix_missing_locations(_apply(tree, index, kind)), indent)
        except (ValueError, TypeError, RecursionError, IndexError):
            continue
        if code != reference and code not in out:
            out.append(code)
    return reference, out


def build_mutant_samples(problems: list[Problem], per_problem: int = 10, seed: int = 0) -> list[Sample]:
    """Sample 0 is the reprinted reference, samples 1.. its mutants; problems without a parseable one are skipped."""
    rng = random.Random(seed)
    samples = []
    for p in problems:
        if not p.canonical_solution or p.language != "py":
            continue
        try:
            reference, muts = mutate(p.canonical_solution, per_problem, rng)
        except SyntaxError:
            continue
        samples += [Sample(p.problem_id, i, code, language=p.language) for i, code in enumerate([reference, *muts])]
    if not samples:
        raise RewardRankerError("no problem has a parseable Python canonical_solution to mutate")
    return samples


def build_rm_data(problems: list[Problem], out_dir: Path, per_problem: int = 10, seed: int = 0, exec_cfg=None,
                  progress: bool = True) -> dict:
    """Write OUT/problems.jsonl, samples.jsonl and verdicts.jsonl (labels from executing every program)."""
    from rewardranker.execution import ExecutionConfig, execute

    exec_cfg = exec_cfg or ExecutionConfig(verdict_rule="strict")
    if exec_cfg.verdict_rule != "strict":
        raise ConfigError("verdict_rule", f"= {exec_cfg.verdict_rule!r}: reward-model labels use the strict rule")
    samples = build_mutant_samples(problems, per_problem, seed)
    verdicts = execute(problems, samples, exec_cfg, progress)
    used = {s.problem_id for s in samples}
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "problems.jsonl", (_humaneval_record(p) for p in problems if p.problem_id in used))
    write_jsonl(out_dir / "samples.jsonl", (to_dict(s) for s in samples))
    write_jsonl(out_dir / "verdicts.jsonl", (to_dict(v) for v in verdicts))
    ref_ok = sum(v.passed for v, s in zip(verdicts, samples) if s.sample_id == 0)
    return {"problems": len(used), "programs": len(samples), "passing": sum(v.passed for v in verdicts),
            "references_passing": ref_ok}


def _humaneval_record(p: Problem) -> dict:
    """Back to the HumanEval layout `load_problems` reads (tests = check function + check call)."""
    suffix = f"\ncheck({p.entry_point})\n"
    test = p.tests.removesuffix(suffix)
    return {"task_id": p.problem_id, "prompt": p.prompt, "entry_point": p.entry_point, "test": test,
            "canonical_solution": p.canonical_solution}
