"""The Ray execution backend on a real two-node local Ray cluster (ray.cluster_utils.Cluster, 1 CPU per node).

Same verdicts as the local backend on all 8 languages; caches answer reruns; killed actors and programs that
kill their actor lose no verdict; Ctrl-C leaves no actor or sandbox behind.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

import pytest
from exec_helpers import SHARED, multipl_e, sample, uid_processes
from exec_solutions import PROBLEMS, SOLUTIONS, SYNTAX_ERRORS

from rewardranker.errors import RewardRankerError
from rewardranker.execution import ExecutionConfig, VerdictCache, execute
from rewardranker.records import LANGUAGES

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'rewardranker[ray]')")

from rewardranker.execution import ray_backend
from rewardranker.execution.ray_backend import INFRA_ERROR, ExecutorActor, RayExecutor

KILL_MARKER = "KILL_MY_EXECUTOR"


@pytest.fixture
def cluster(ray_cluster):
    """The session's two-node cluster (tests/conftest.py); every test leaves its CPUs free."""
    yield ray_cluster
    ray_backend.shutdown_pools()


def _mixed_batch():
    """Per language: right and wrong answers to two problems and a syntax error (40 programs)."""
    problems, samples = {}, []
    for lang in LANGUAGES:
        problems.update(multipl_e(lang, PROBLEMS))
        for name in (PROBLEMS[0], PROBLEMS[2]):
            good, bad = SOLUTIONS[lang][name]
            samples += [sample(f"{lang}/{name}", 0, good), sample(f"{lang}/{name}", 1, bad)]
        samples.append(sample(f"{lang}/{PROBLEMS[0]}", 2, SYNTAX_ERRORS[lang]))
    return problems, samples


def _slow_python(n: int, extra: dict[int, str] | None = None):
    """n distinct Python programs that pass in ~0.3 s each (5 test calls sleeping 0.06 + i/100000 s)."""
    problems = multipl_e("py", (PROBLEMS[0],))
    pid = f"py/{PROBLEMS[0]}"
    body = "    import time\n    time.sleep({:.5f})\n    return x + y\n"
    samples = [sample(pid, i, (extra or {}).get(i, body.format(0.06 + i / 100000))) for i in range(n)]
    return problems, samples


def _cfg(cluster, cache_path) -> ExecutionConfig:
    return ExecutionConfig(ray=cluster[0].address, cache_path=cache_path)


def _executor(cluster, tmp_path, **kwargs) -> RayExecutor:
    """An executor pool whose actors use a node cache of their own inside tmp_path (not the user's)."""
    return RayExecutor(_cfg(cluster, tmp_path / "driver.sqlite"), node_cache=tmp_path / "node.sqlite", **kwargs)


def _key(v):
    return (v.problem_id, v.sample_id, v.status, v.passed, v.exit_code)


def test_verdicts_match_local_backend_on_all_languages_and_caches_answer_reruns(cluster, tmp_path):
    problems, samples = _mixed_batch()
    local = execute(problems, samples, ExecutionConfig(workers=2, cache_path=tmp_path / "local.sqlite"),
                    progress=False)
    cfg = ExecutionConfig(ray=cluster[0].address, cache_path=tmp_path / "driver.sqlite")
    pool = ray_backend.pool_for(cfg)
    on_ray = execute(problems, samples, cfg, progress=False)  # through execute(): cfg.ray routes to the pool
    assert [_key(v) for v in on_ray] == [_key(v) for v in local]
    assert pool.stats.dispatched == len(samples) and pool.stats.actors == 2
    nodes = {ray.get(a.handle.info.remote())["node_id"] for a in pool.actors}
    assert len(nodes) == 2, "one executor actor per node"

    again = execute(problems, samples, cfg, progress=False)
    assert pool.stats.dispatched == 0 and pool.stats.driver_cache_hits == len(samples)
    assert all(v.cached for v in again) and [_key(v) for v in again] == [_key(v) for v in on_ray]
    ray_backend.shutdown_pools()  # frees the cluster's CPUs for the next tests' pools


def test_node_caches_answer_a_driver_with_an_empty_cache(cluster, tmp_path):
    """Actors keep their node's cache: a second driver with an empty cache gets every verdict without a run."""
    problems, samples = _slow_python(6)
    node_cache = tmp_path / "node.sqlite"
    for i, expect_hits in enumerate((0, len(samples))):
        ex = RayExecutor(_cfg(cluster, tmp_path / f"driver{i}.sqlite"), node_cache=node_cache)
        try:
            verdicts = ex.execute(problems, samples, progress=False)
        finally:
            ex.shutdown()
        assert ex.stats.dispatched == len(samples) and ex.stats.node_cache_hits == expect_hits
        assert all(v.passed for v in verdicts)


def _run_with_fault(cluster, tmp_path, n: int, fault):
    """Run n programs on a warm two-actor pool; once 4 verdicts are in, `fault(worker node, actor infos)` runs."""
    c, _ = cluster
    worker = next(iter(c.worker_nodes))
    problems, samples = _slow_python(n)
    cache_path = tmp_path / "driver.sqlite"
    ex = _executor(cluster, tmp_path)
    try:
        ex.execute(*_slow_python(2), progress=False)  # start the pool (and learn where its actors run)
        ex.wait_for_actors(2)
        infos = ray.get([a.handle.info.remote() for a in ex.actors])
        thread = threading.Thread(target=lambda: (_kill_when_cached(cache_path, 4, []), fault(worker, infos)),
                                  daemon=True)
        thread.start()
        verdicts = ex.execute(problems, samples, progress=False)
        thread.join(timeout=60)
    finally:
        ex.shutdown()
    assert ex.stats.actor_deaths >= 1, ex.stats
    assert [(v.problem_id, v.sample_id) for v in verdicts] == [(s.problem_id, s.sample_id) for s in samples]
    assert all(v.passed and v.status == "OK" for v in verdicts), [v.status for v in verdicts]
    cache = VerdictCache(cache_path)
    assert cache.count() == n  # every program's verdict stored (the warm-up ran the first two), none lost
    cache.close()
    return ex


def test_killing_one_nodes_actors_mid_run_loses_no_verdict(cluster, tmp_path):
    def kill_worker_nodes_actors(worker, infos):
        victims = [info["pid"] for info in infos if info["node_id"] == worker.node_id]
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

    ex = _run_with_fault(cluster, tmp_path, 24, kill_worker_nodes_actors)
    assert ex.stats.retried >= 1, ex.stats


@pytest.mark.slow
def test_node_lost_mid_run_loses_no_verdict(cluster, tmp_path):
    """Removes the worker node (the head's actor finishes the run), then adds a fresh one for later tests."""
    c, _ = cluster
    try:
        _run_with_fault(cluster, tmp_path, 16, lambda worker, infos: c.remove_node(worker))
    finally:
        if not c.worker_nodes:
            c.add_node(num_cpus=1, object_store_memory=80 * 2**20)
            c.wait_for_nodes()


def _kill_when_cached(cache_path, n: int, pids: list[int]) -> None:
    """SIGKILL `pids` once the driver's cache holds `n` verdicts (the run is under way)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            cache = VerdictCache(cache_path)
            count = cache.count()
            cache.close()
        except Exception:  # noqa: BLE001 - the driver may be creating the file
            count = 0
        if count >= n:
            break
        time.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


class CrashingActor(ExecutorActor):
    """An executor whose process dies whenever it is handed the marked program (as an OOM kill would)."""

    def execute_one(self, slot, item):
        if KILL_MARKER in item.program:
            os._exit(1)
        return super().execute_one(slot, item)


def test_program_that_kills_its_actor_gets_infra_error_after_bounded_tries(cluster, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test class is not importable there
    problems, samples = _slow_python(8, extra={3: f"    # {KILL_MARKER}\n    return x + y\n"})
    cache_path = tmp_path / "driver.sqlite"
    ex = _executor(cluster, tmp_path, actor_cls=CrashingActor, max_tries=2)
    try:
        with pytest.warns(UserWarning, match="1 of 8 programs got status InfraError"):
            verdicts = ex.execute(problems, samples, progress=False)
    finally:
        ex.shutdown()
    assert [v.status for v in verdicts] == ["OK"] * 3 + [INFRA_ERROR] + ["OK"] * 4
    assert not verdicts[3].passed and "died 2 times" in verdicts[3].stderr
    assert ex.stats.actor_deaths == 2 and ex.stats.infra_errors == 1
    cache = VerdictCache(cache_path)
    assert cache.count() == 7, "an InfraError is never cached: the next run tries again"
    cache.close()


def test_ctrl_c_stops_actors_and_sandboxes(cluster, tmp_path):
    problems, samples = _slow_python(40)
    cache_path = tmp_path / "driver.sqlite"
    ex = _executor(cluster, tmp_path)
    ex.execute(*_slow_python(2), progress=False)
    ex.wait_for_actors(2)
    handles = [a.handle for a in ex.actors]
    uid_blocks = [range(*info["uids"]) for info in ray.get([h.info.remote() for h in handles])]
    # Ctrl-C as in a terminal: a process started in the background by a non-interactive shell (some CI runners)
    # inherits SIGINT ignored, and then interrupt_main() would do nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=_interrupt_when_cached, args=(cache_path, 5), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            ex.execute(problems, samples, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ex.actors == []
    for h in handles:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(h.info.remote(), timeout=30)
    for uids in uid_blocks:
        assert uid_processes(uids) == [], "a sandboxed process outlived its executor"
    cache = VerdictCache(cache_path)
    assert 5 <= cache.count() < 42, "verdicts returned before Ctrl-C are kept, the rest were not run"
    cache.close()


def _interrupt_when_cached(cache_path, n: int) -> None:
    _kill_when_cached(cache_path, n, [])
    _thread.interrupt_main()


def test_without_ray_installed_the_flag_says_how_to_install(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from rewardranker.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RewardRankerError, match=r"pip install 'rewardranker\[ray\]'"):
        ray_backend.import_ray()
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem_id": "HumanEval_53_add", "sample_id": 0, "completion": "    return x + y\\n"}\n')
    res = CliRunner().invoke(app, ["execute", "--samples", str(path), "--out", str(tmp_path / "v.jsonl"),
                                   "--problems", str(SHARED / "multipl-e" / "humaneval-py-reworded.jsonl"),
                                   "--cache", str(tmp_path / "c.sqlite"), "--ray", "auto"])
    assert res.exit_code == 1 and "rewardranker[ray]" in res.output and "Traceback" not in res.output
