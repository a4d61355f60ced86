"""Fixtures for the policy tests (helpers live in policy_helpers.py: conftest modules cannot be imported by name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import CORPUS


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    from rewardranker.generation import build_local_generator

    return build_local_generator(CORPUS, tmp_path_factory.mktemp("policy"), arch="gpt2", size="tiny",
                                 vocab_size=300, seed=0)
