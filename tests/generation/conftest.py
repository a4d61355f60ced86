"""Fixtures for the generation tests: a tiny generator built from a config (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardranker.records import Problem

CORPUS = [f"def f{i}(x):\n    return x + {i}\n\n# add {i} to a number\n" for i in range(60)]


def toy_problems(k: int = 3, stops: tuple[str, ...] = ("\ndef",)) -> list[Problem]:
    return [Problem(f"toy/{i}", "py", f"def f{i}(x):\n", tests=f"assert f{i}(1) == {i + 1}\n",
                    stop_tokens=stops) for i in range(k)]


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    from rewardranker.generation import build_local_generator

    return build_local_generator(CORPUS, tmp_path_factory.mktemp("gpt2"), arch="gpt2", size="tiny", seed=0)
