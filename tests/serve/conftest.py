"""Fixtures for the serving tests: the tiny generator and a reward model trained here, once per session, and
the real server (uvicorn) over them on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import ThreadServer, build_models, free_port

from rewardranker.serve import ServeConfig


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> tuple[Path, Path]:
    return build_models(tmp_path_factory.mktemp("serve-models"))


@pytest.fixture(scope="session")
def exec_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-cache") / "verdicts.sqlite"


def make_config(models, exec_cache, **kw) -> ServeConfig:
    gen, rm = models
    base = {"model": rm, "port": free_port(), "cache_path": exec_cache, "max_tokens": 12, "torch_threads": 1}
    if "upstream" not in kw:
        base["generator"] = gen
    return ServeConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def local_server(models, exec_cache):
    """The server over the embedded tiny generator (in process)."""
    with ThreadServer(make_config(models, exec_cache, max_candidates=16)) as server:
        yield server
