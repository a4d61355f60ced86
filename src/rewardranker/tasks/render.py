"""Render a composition as MultiPL-E-shaped problems: prompt, reference solution and tests per language.

Expected outputs come from running the Python reference solution, so the other languages' references are
checked against Python's (tests/selftrain/test_tasks_suite.py executes them all through the executor).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from rewardranker.records import Problem
from rewardranker.runio import content_hash
from rewardranker.tasks.grammar import Composition

STOP_TOKENS = {
    "py": ("\ndef", "\n#", "\nif", "\nclass"),
    "js": ("\nfunction ", "\n/*", "\n//", "\nconsole.log"),
    "php": ("\nfunction", "\n?>", "\n//", "\n#"),
}
SUITE_LANGUAGES = tuple(STOP_TOKENS)

WORDS = ("apple", "bee", "sky", "stone", "echo", "banana", "ox", "sun", "boat", "arrow", "tree", "moon", "bread",
         "salt", "owl", "berry", "seed", "axe", "rope", "cloud", "ant", "bell", "snow", "oak", "leaf")


# --------------------------------------------------------------------------- literals


def literal(value: Any, lang: str) -> str:
    """A value as source text in `lang` (ints, strings and lists of them)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not part of the suite")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value + '"'  # words are lowercase letters and dashes: nothing to escape
    items = ", ".join(literal(v, lang) for v in value)
    return f"array({items})" if lang == "php" else f"[{items}]"


def _inputs(comp: Composition, rng: random.Random, n: int = 6) -> list[list]:
    """Test inputs: the first (shown in the docstring) is never empty; one is empty."""
    def one(size: int) -> list:
        if comp.family.name == "int":
            return [rng.randint(-9, 12) for _ in range(size)]
        return [rng.choice(WORDS) for _ in range(size)]

    cases = [one(rng.randint(4, 6))] + [one(rng.randint(1, 7)) for _ in range(n - 2)] + [[]]
    return cases


# --------------------------------------------------------------------------- per-language code


def _py_type(comp: Composition) -> str:
    elem = "int" if comp.family.name == "int" else "str"
    if comp.reducer.kind in ("list", "sorted"):
        return f"List[{elem}]"
    return "str" if comp.reducer.kind in ("dashed", "spaced") else "int"


def py_solution(comp: Composition) -> str:
    """A one-line list-comprehension body, e.g. `    return sum([x * x for x in xs if x % 2 == 0])`."""
    v, arg = comp.family.var, comp.family.arg
    head = comp.map.code["py"] if comp.map else v
    cond = f" if {comp.filter.code['py']}" if comp.filter else ""
    listcomp = f"[{head} for {v} in {arg}{cond}]"
    wrap = {"sum": "sum({})", "count": "len({})", "list": "{}", "max": "max({}, default=0)",
            "sorted": "sorted({})", "dashed": '"-".join({})', "spaced": '" ".join({})'}[comp.reducer.kind]
    return f"    return {wrap.format(listcomp)}\n"


def js_solution(comp: Composition) -> str:
    v = comp.family.var
    chain = comp.family.arg
    if comp.filter:
        chain += f".filter({v} => {comp.filter.code['js']})"
    if comp.map:
        chain += f".map({v} => {comp.map.code['js']})"
    numeric = comp.family.name == "int"
    body = {"sum": chain + ".reduce((a, b) => a + b, 0)", "count": chain + ".length", "list": chain,
            "max": f"(ys => ys.length ? Math.max(...ys) : 0)({chain})",
            "sorted": chain + (".sort((a, b) => a - b)" if numeric else ".sort()"),
            "dashed": chain + '.join("-")', "spaced": chain + '.join(" ")'}[comp.reducer.kind]
    return f"  return {body};\n}}"


def php_solution(comp: Composition) -> str:
    v = "$" + comp.family.var
    value = comp.map.code["php"] if comp.map else v
    lines = ["    $out = [];", f"    foreach (${comp.family.arg} as {v}) {{"]
    if comp.filter:
        lines += [f"        if ({comp.filter.code['php']}) {{", f"            $out[] = {value};", "        }"]
    else:
        lines += [f"        $out[] = {value};"]
    lines += ["    }"]
    ret = {"sum": "array_sum($out)", "count": "count($out)", "list": "$out", "max": "count($out) ? max($out) : 0",
           "sorted": "$out", "dashed": 'implode("-", $out)', "spaced": 'implode(" ", $out)'}[comp.reducer.kind]
    if comp.reducer.kind == "sorted":
        lines += ["    sort($out);"]
    lines += [f"    return {ret};", "}"]
    return "\n".join(lines)


def _py_prompt(comp: Composition, example: list, expected: Any) -> str:
    elem = "int" if comp.family.name == "int" else "str"
    return (f"from typing import List\n\ndef {comp.name}({comp.family.arg}: List[{elem}]) -> {_py_type(comp)}:\n"
            f'    """{comp.description}\n    >>> {comp.name}({literal(example, "py")})\n'
            f'    {_py_repr(expected)}\n    """\n')


def _py_repr(value: Any) -> str:
    return repr(value) if not isinstance(value, list) else literal(value, "py").replace('"', "'")


def _js_prompt(comp: Composition, example: list, expected: Any) -> str:
    return (f"//{comp.description}\n// >>> {comp.name}({literal(example, 'js')})\n// {literal(expected, 'js')}\n"
            f"function {comp.name}({comp.family.arg}){{\n")


def _php_prompt(comp: Composition, example: list, expected: Any) -> str:
    return (f"<?php\n// {comp.description}\n// >>> {comp.name}({literal(example, 'php')})\n"
            f"// {literal(expected, 'php')}\nfunction {comp.name}(${comp.family.arg}) {{\n")


def _py_tests(comp: Composition, cases: list[tuple[list, Any]]) -> str:
    asserts = "\n".join(f"    assert candidate({literal(a, 'py')}) == {literal(e, 'py')}" for a, e in cases)
    return f"def check(candidate):\n{asserts}\n\ndef test_check():\n    check({comp.name})\n\ntest_check()\n"


def _js_tests(comp: Composition, cases: list[tuple[list, Any]]) -> str:
    asserts = "\n".join(f"  assert.deepEqual(candidate({literal(a, 'js')}),{literal(e, 'js')});" for a, e in cases)
    return (f"const assert = require('node:assert');\n\n\nfunction test() {{\n  let candidate = {comp.name};\n"
            f"{asserts}\n}}\n\ntest();")


def _php_tests(comp: Composition, cases: list[tuple[list, Any]]) -> str:
    asserts = "\n".join(f"    if (candidate({literal(a, 'php')}) !== {literal(e, 'php')}) "
                        '{ throw new Exception("Test failed!"); }' for a, e in cases)
    return (f"function candidate(...$args) {{\n    return {comp.name}(...$args);\n}}\n\n"
            f"function test(): void {{\n{asserts}\n}}\n\ntest();")


RENDERERS: dict[str, tuple[Callable, Callable, Callable]] = {
    "py": (_py_prompt, py_solution, _py_tests),
    "js": (_js_prompt, js_solution, _js_tests),
    "php": (_php_prompt, php_solution, _php_tests),
}


# --------------------------------------------------------------------------- problems


def reference_function(comp: Composition) -> Callable[[list], Any]:
    """The Python reference solution as a callable (used to compute every expected output)."""
    prompt = _py_prompt(comp, [], None)
    namespace: dict[str, Any] = {}
    exec(prompt + py_solution(comp), namespace)  # noqa: S102 (our own generated source, never user input)
    return namespace[comp.name]


def cases_for(comp: Composition) -> list[tuple[list, Any]]:
    """(input, expected output) pairs: the first is the docstring example, the rest are the tests."""
    rng = random.Random(content_hash("procedural", comp.name))
    fn = reference_function(comp)
    return [(args, fn(list(args))) for args in _inputs(comp, rng)]


def render(comp: Composition, languages: tuple[str, ...], split: str) -> list[Problem]:
    """One Problem per language for this composition, with the same test cases in every language."""
    cases = cases_for(comp)
    example, expected = cases[0]
    out = []
    for lang in languages:
        prompt_fn, solution_fn, tests_fn = RENDERERS[lang]
        out.append(Problem(
            problem_id=f"Procedural/{lang}/{comp.name}", language=lang,
            prompt=prompt_fn(comp, example, expected), tests=tests_fn(comp, cases[1:]),
            stop_tokens=STOP_TOKENS[lang], entry_point=comp.name, canonical_solution=solution_fn(comp),
            source=f"procedural:{split}"))
    return out
