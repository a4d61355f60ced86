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


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A real two-node Ray cluster on this machine (1 CPU per node); torn down at the end of the session.

    Yields (cluster, worker node). The nodes' default verdict cache ($REWARDRANKER_CACHE, inherited by the
    actors) is a temporary file, never the user's.
    """
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'rewardranker[ray]')")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    old = os.environ.get("REWARDRANKER_CACHE")
    os.environ["REWARDRANKER_CACHE"] = str(tmp_path_factory.mktemp("ray-nodes") / "node-default.sqlite")
    # a lost node is declared dead after ~1.5 s instead of Ray's default ~15 s (test_node_lost_mid_run)
    health = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False,
                                                            "_system_config": health})
    try:
        worker = cluster.add_node(**node)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster, worker
    finally:
        from rewardranker.execution import ray_backend

        ray_backend.shutdown_pools()
        ray.shutdown()
        cluster.shutdown()
        if old is None:
            os.environ.pop("REWARDRANKER_CACHE", None)
        else:
            os.environ["REWARDRANKER_CACHE"] = old
