"""The grammar of the procedural task suite: operations on a list of ints or of words, composed into tasks.

A task is `[filter] [map] reducer` over one list argument, e.g. "keep the even numbers, square each, and return
the sum". Each operation carries its English phrase and its code in every supported language; `render.py`
turns a composition into MultiPL-E-shaped prompts, reference solutions and tests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One operation. `kind` (e.g. 'gt') names it without its constant; `code` maps language -> expression.

    Expressions use the element variable `x` (ints) or `w` (words); PHP ones use `$x` / `$w`.
    """

    kind: str
    slug: str  # appears in the function name, e.g. 'gt3'
    phrase: str
    code: dict[str, str]


@dataclass(frozen=True)
class Reducer:
    """The final step: what the function returns from the kept/mapped elements."""

    kind: str
    phrase: str
    uses_map: bool = True  # False: mapping first would not change the answer (e.g. a count)


@dataclass(frozen=True)
class Family:
    """A domain: the argument's name and type, and the operations that apply to it."""

    name: str
    arg: str  # argument name in the signature
    var: str  # element variable in solutions
    filters: tuple[Op, ...]
    maps: tuple[Op, ...]
    reducers: tuple[Reducer, ...]


@dataclass(frozen=True)
class Composition:
    """A task: optional filter, optional map, a reducer, over one family."""

    family: Family
    filter: Op | None
    map: Op | None
    reducer: Reducer

    @property
    def kind_key(self) -> str:
        """The composition without constants ('int:gt+square+sum'); the train/held-out split is made on it."""
        parts = [self.filter.kind if self.filter else "-", self.map.kind if self.map else "-", self.reducer.kind]
        return f"{self.family.name}:" + "+".join(parts)

    @property
    def name(self) -> str:
        """The function name: the slugs of the operations, e.g. 'even_square_sum'."""
        slugs = [op.slug for op in (self.filter, self.map) if op is not None] + [self.reducer.kind]
        return "_".join(slugs)

    @property
    def description(self) -> str:
        """The English task, e.g. 'Keep the even numbers, square each, and return the sum.'"""
        steps = [op.phrase for op in (self.filter, self.map) if op is not None]
        text = ", ".join(steps) + (", and " if len(steps) > 1 else " and ") + self.reducer.phrase
        return text[0].upper() + text[1:] + "."


def _op(kind: str, slug: str, phrase: str, py: str, js: str, php: str) -> Op:
    return Op(kind, slug, phrase, {"py": py, "js": js, "php": php})


def _int_filters() -> list[Op]:
    ops = [
        _op("even", "even", "keep the even numbers", "x % 2 == 0", "x % 2 === 0", "$x % 2 == 0"),
        _op("odd", "odd", "keep the odd numbers", "x % 2 != 0", "x % 2 !== 0", "$x % 2 != 0"),
        _op("pos", "pos", "keep the positive numbers", "x > 0", "x > 0", "$x > 0"),
        _op("neg", "neg", "keep the negative numbers", "x < 0", "x < 0", "$x < 0"),
    ]
    ops += [_op("gt", f"gt{k}", f"keep the numbers greater than {k}", f"x > {k}", f"x > {k}", f"$x > {k}")
            for k in (1, 3, 5)]
    ops += [_op("lt", f"lt{k}", f"keep the numbers less than {k}", f"x < {k}", f"x < {k}", f"$x < {k}")
            for k in (2, 4)]
    ops += [_op("mul", f"mul{k}", f"keep the multiples of {k}", f"x % {k} == 0", f"x % {k} === 0",
                f"$x % {k} == 0") for k in (3, 4)]
    return ops


def _int_maps() -> list[Op]:
    ops = [
        _op("square", "square", "square each", "x * x", "x * x", "$x * $x"),
        _op("double", "double", "double each", "2 * x", "2 * x", "2 * $x"),
        _op("negate", "negate", "negate each", "-x", "-x", "-$x"),
        _op("abs", "abs", "take the absolute value of each", "abs(x)", "Math.abs(x)", "abs($x)"),
    ]
    ops += [_op("add", f"add{k}", f"add {k} to each", f"x + {k}", f"x + {k}", f"$x + {k}") for k in (1, 2, 10)]
    ops += [_op("sub", f"sub{k}", f"subtract {k} from each", f"x - {k}", f"x - {k}", f"$x - {k}") for k in (1, 3)]
    ops += [_op("times", f"times{k}", f"multiply each by {k}", f"{k} * x", f"{k} * x", f"{k} * $x") for k in (3, 5)]
    return ops


def _word_filters() -> list[Op]:
    ops = [_op("longer", f"longer{k}", f"keep the words longer than {k} letters", f"len(w) > {k}",
               f"w.length > {k}", f"strlen($w) > {k}") for k in (3, 4)]
    ops += [_op("shorter", f"shorter{k}", f"keep the words shorter than {k} letters", f"len(w) < {k}",
                f"w.length < {k}", f"strlen($w) < {k}") for k in (4, 5)]
    ops += [_op("starts", f"starts_{c}", f'keep the words that start with "{c}"', f'w.startswith("{c}")',
                f'w.startsWith("{c}")', f'str_starts_with($w, "{c}")') for c in "abs"]
    ops += [_op("has", f"has_{c}", f'keep the words that contain "{c}"', f'"{c}" in w', f'w.includes("{c}")',
                f'str_contains($w, "{c}")') for c in "eo"]
    return ops


def _word_maps() -> list[Op]:
    return [
        _op("upper", "upper", "uppercase each", "w.upper()", "w.toUpperCase()", "strtoupper($w)"),
        _op("reverse", "reverse", "reverse each", "w[::-1]", 'w.split("").reverse().join("")', "strrev($w)"),
        _op("first", "first", "take the first letter of each", "w[0]", "w[0]", "$w[0]"),
        _op("twice", "twice", "repeat each twice", "w * 2", "w.repeat(2)", "str_repeat($w, 2)"),
        _op("tail", "tail", "drop the first letter of each", "w[1:]", "w.slice(1)", "substr($w, 1)"),
    ]


INT_REDUCERS = (
    Reducer("sum", "return the sum"),
    Reducer("count", "return how many there are", uses_map=False),
    Reducer("list", "return them as a list"),
    Reducer("max", "return the largest (0 if there are none)"),
    Reducer("sorted", "return them sorted in increasing order"),
)
WORD_REDUCERS = (
    Reducer("dashed", 'return them joined with "-"'),
    Reducer("spaced", "return them joined with spaces"),
    Reducer("count", "return how many there are", uses_map=False),
    Reducer("list", "return them as a list"),
    Reducer("sorted", "return them sorted alphabetically"),
)

FAMILIES = (
    Family("int", "xs", "x", tuple(_int_filters()), tuple(_int_maps()), INT_REDUCERS),
    Family("word", "words", "w", tuple(_word_filters()), tuple(_word_maps()), WORD_REDUCERS),
)


def compositions() -> list[Composition]:
    """Every task of the grammar with at least two operations (a filter or a map, then a reducer)."""
    out = []
    for fam in FAMILIES:
        for flt, mp, red in itertools.product((None, *fam.filters), (None, *fam.maps), fam.reducers):
            if flt is None and mp is None:
                continue  # one operation only: too trivial, and `sorted(xs)` alone would alias the input
            if mp is not None and not red.uses_map:
                continue
            out.append(Composition(fam, flt, mp, red))
    return out
