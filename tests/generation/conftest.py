"""Fixtures for the generation tests (helpers live in generation_helpers.py: conftest modules cannot be imported by name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from generation_helpers import CORPUS


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    from rewardranker.generation import build_local_generator

    return build_local_generator(CORPUS, tmp_path_factory.mktemp("gpt2"), arch="gpt2", size="tiny", seed=0)
