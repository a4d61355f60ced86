"""Shared fixtures: paths to ../shared data (tests may read it; the product never needs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REWARDRANKER_SHARED", REPO.parent / "shared"))  # a worktree can point elsewhere


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.exists():
        pytest.fail(f"{path} is missing: tests read the shared data beside the checkout")
    return path
