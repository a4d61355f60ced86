"""The procedural task suite: small list/word programming problems in Python, JavaScript and PHP.

Problems are generated from a grammar (`grammar.py`) of 2-3 operations, e.g. "Keep the even numbers, square
each, and return the sum.", rendered in MultiPL-E's prompt and test shapes (`render.py`). The held-out split
holds whole operation *compositions* (e.g. every `pos + negate + max` task) never seen in training, while every
single operation is seen in training, so held-out measures composition, not memory.

`train` is further split the same way into `fit` (85%) and `validation` (15% of the training compositions):
settings are chosen by training on `fit` and evaluating on `validation`, never by looking at `heldout`.

    >>> from rewardranker.problems import load_problems
    >>> train = load_problems("procedural:train:py")          # or "procedural:heldout:py,js,php"
"""

from __future__ import annotations

from functools import lru_cache

from rewardranker.errors import RewardRankerError
from rewardranker.records import Problem
from rewardranker.runio import content_hash
from rewardranker.tasks.grammar import Composition, compositions
from rewardranker.tasks.render import STOP_TOKENS, SUITE_LANGUAGES, render

SPLITS = ("train", "heldout", "all", "fit", "validation")
HELDOUT_FRACTION = 0.15
VALIDATION_FRACTION = 0.15

__all__ = ["SPLITS", "STOP_TOKENS", "SUITE_LANGUAGES", "corpus_texts", "load", "split_compositions"]


@lru_cache(maxsize=1)
def split_compositions() -> dict[str, tuple[Composition, ...]]:
    """Split by composition kind (operations without constants): a fixed hash order, the last 15% held out."""
    comps = compositions()
    kinds = sorted({c.kind_key for c in comps}, key=lambda k: content_hash("split-v1", k))
    heldout_kinds = set(kinds[: round(len(kinds) * HELDOUT_FRACTION)])
    train = tuple(c for c in comps if c.kind_key not in heldout_kinds)
    heldout = tuple(c for c in comps if c.kind_key in heldout_kinds)
    train_kinds = sorted({c.kind_key for c in train}, key=lambda k: content_hash("validation-v1", k))
    validation_kinds = set(train_kinds[: round(len(train_kinds) * VALIDATION_FRACTION)])
    fit = tuple(c for c in train if c.kind_key not in validation_kinds)
    validation = tuple(c for c in train if c.kind_key in validation_kinds)
    return {"train": train, "heldout": heldout, "all": train + heldout, "fit": fit, "validation": validation}


def load(spec: str) -> list[Problem]:
    """Problems for `procedural[:split[:langs]]`, e.g. `procedural:heldout:py,js` (defaults: all, every language)."""
    parts = spec.split(":")
    if parts[0] != "procedural" or len(parts) > 3:
        raise RewardRankerError(f"{spec!r}: expected procedural[:train|heldout|all|fit|validation[:py,js,php]]")
    split = parts[1] if len(parts) > 1 and parts[1] else "all"
    if split not in SPLITS:
        raise RewardRankerError(f"{spec!r}: split {split!r} is not one of {', '.join(SPLITS)}")
    langs = tuple(parts[2].split(",")) if len(parts) > 2 else SUITE_LANGUAGES
    bad = [lang for lang in langs if lang not in SUITE_LANGUAGES]
    if bad:
        raise RewardRankerError(f"{spec!r}: language {bad[0]!r} is not in the suite ({', '.join(SUITE_LANGUAGES)})")
    return _load(split, langs)


@lru_cache(maxsize=16)
def _load_cached(split: str, langs: tuple[str, ...]) -> tuple[Problem, ...]:
    if split == "all":
        return _load_cached("train", langs) + _load_cached("heldout", langs)
    if split in ("fit", "validation"):  # subsets of train: the same problems (ids, source) as in train
        keep = {c.name for c in split_compositions()[split]}
        return tuple(p for p in _load_cached("train", langs) if p.entry_point in keep)
    return tuple(p for comp in split_compositions()[split] for p in render(comp, langs, split))


def _load(split: str, langs: tuple[str, ...]) -> list[Problem]:
    return list(_load_cached(split, langs))


def corpus_texts(languages: tuple[str, ...] = ("py",)) -> list[str]:
    """Prompt + reference solution of every TRAINING problem: the text a local tokenizer/generator is built on."""
    return [p.prompt + (p.canonical_solution or "") for p in _load_cached("train", tuple(languages))]
