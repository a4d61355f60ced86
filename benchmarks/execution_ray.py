"""`benchmarks/execution.py --ray`: the Ray backend against the local one on the same programs and cores.

Measured here, in one run:
- local: `execute()` with W workers (W = --workers), cache off.
- ray (pool start): a one-node Ray cluster on this machine with W CPUs, W executor actors started inside the
  timed call (process start, imports, sandboxes and compile servers included), cache off.
- ray (warm pool): the same programs again on the same actors (sandboxes and compile servers already up).
  Overhead = local throughput / Ray throughput - 1 (target: <= 15% on 2 cores).
- dispatch: the driver's cost per program, from --dispatch-programs distinct programs sent through the same
  dispatcher to no-op actors that answer at once (nothing is executed): wall time / programs, with W actors and
  with 16 actors packed onto the W CPUs (one simulated 16-core node); the larger of the two is used below.
Local and warm-pool runs alternate for `rounds` rounds (best of each), so both see the same load.

Projected (not measured) throughput of N nodes of C cores, from those inputs:
    per_core = local throughput / W                         (programs/s one core sustains on this mix)
    T(N) = min(N * C * per_core, 1 / dispatch_s)            (workers scale; one driver serialises dispatch)
    dispatch_s = the driver's CPU seconds per program (its own core on a real cluster), the larger of the two.
"""

from __future__ import annotations

import os
import time

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.execution.ray_backend import ExecutorActor, RayExecutor
from rewardranker.records import Problem, Sample

NODES = (1, 4, 16, 64)
CORES_PER_NODE = 16


class NoopActor(ExecutorActor):
    """Answers every program at once without running it: isolates the dispatcher's own cost."""

    def execute_one(self, slot, item):
        return {"status": "OK", "passed": True, "exit_code": 0, "duration_s": 0.0, "stderr": "", "stdout": ""}


def _timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _same(a, b) -> int:
    return sum((x.status, x.passed, x.exit_code) == (y.status, y.passed, y.exit_code) for x, y in zip(a, b))


def bench_ray(problems: dict[str, Problem], samples: list[Sample], workers: int, dispatch_programs: int,
              rounds: int = 2) -> dict:
    import ray

    n = len(samples)
    local_cfg = ExecutionConfig(workers=workers, use_cache=False)
    execute(problems, samples[:1], local_cfg, progress=False)  # one-off PCH / server builds, outside the timings
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    local_s, warm_s = [], []
    try:
        ex = RayExecutor(ExecutionConfig(ray="local", use_cache=False))
        on_ray, cold_s = _timed(lambda: ex.execute(problems, samples, progress=False))
        actors = ex.stats.actors
        for _ in range(rounds):  # interleaved, so both backends see the same load on this shared machine
            local, t = _timed(lambda: execute(problems, samples, local_cfg, progress=False))
            local_s.append(t)
            again, t = _timed(lambda: ex.execute(problems, samples, progress=False))
            warm_s.append(t)
        ex.shutdown()
        costs = {k: _dispatch_cost(problems, samples[0].problem_id, dispatch_programs, k, workers)
                 for k in (workers, 16)}
    finally:
        ray.shutdown()
    local_pps, cold_pps, warm_pps = n / min(local_s), n / cold_s, n / min(warm_s)
    dispatch = {k: cpu for k, (cpu, _) in costs.items()}
    dispatch_s = max(dispatch.values())
    per_core = local_pps / workers
    projection = [{"nodes": k, "cores": k * CORES_PER_NODE,
                   "workers_bound_pps": k * CORES_PER_NODE * per_core, "dispatch_bound_pps": 1 / dispatch_s,
                   "projected_pps": min(k * CORES_PER_NODE * per_core, 1 / dispatch_s)} for k in NODES]
    return {"programs": n, "workers": workers, "actors": actors, "rounds": rounds,
            "local_s": local_s, "ray_pool_start_s": cold_s, "ray_warm_s": warm_s,
            "local_pps": local_pps, "ray_pool_start_pps": cold_pps, "ray_warm_pps": warm_pps,
            "overhead_pool_start": local_pps / cold_pps - 1, "overhead_warm": local_pps / warm_pps - 1,
            "identical_verdicts": _same(local, on_ray), "identical_verdicts_warm": _same(local, again),
            "dispatch_programs": dispatch_programs, "dispatch_s_per_program_by_actors": dispatch,
            "dispatch_wall_s_per_program_by_actors": {k: wall for k, (_, wall) in costs.items()},
            "dispatch_s_per_program": dispatch_s, "per_core_pps": per_core, "projection": projection,
            "model": "T(N) = min(N * 16 * per_core_pps, 1 / dispatch_s_per_program)"}


def _dispatch_cost(problems, pid: str, n: int, actors: int, cpus: int) -> tuple[float, float]:
    """(driver CPU seconds, wall seconds) per program with `actors` no-op actors packed onto `cpus` CPUs.

    The driver's CPU time (all its threads, Ray's included) is what bounds one driver on a real cluster, where
    it has a core of its own; wall time here also contains the no-op actors competing for the same CPUs.
    """
    noop = RayExecutor(ExecutionConfig(ray="local", use_cache=False, ray_actors=actors), actor_cls=NoopActor,
                       actor_cpus=cpus / actors)
    try:
        fake = [Sample(pid, i, f"    return {i}\n") for i in range(n)]
        noop.execute(problems, fake[:2 * actors], progress=False)  # start the actors outside the timing
        cpu0 = time.process_time()
        _, wall = _timed(lambda: noop.execute(problems, fake, progress=False))
        cpu = time.process_time() - cpu0
    finally:
        noop.shutdown()
    return cpu / n, wall / n


def print_ray(r: dict) -> None:
    n = r["programs"]
    print(f"\nRay vs local: {n} programs, {r['workers']} workers / {r['actors']} executor actors, cache off")
    print(f"{'backend':22} {'wall s':>7} {'programs/s':>10} {'overhead':>9} {'same verdicts':>14}")
    print(f"(best of {r['rounds']} interleaved rounds: local {[round(t, 1) for t in r['local_s']]} s, "
          f"ray warm {[round(t, 1) for t in r['ray_warm_s']]} s)")
    print(f"{'local':22} {min(r['local_s']):7.1f} {r['local_pps']:10.2f} {'':>9} {'':>14}")
    print(f"{'ray (pool start)':22} {r['ray_pool_start_s']:7.1f} {r['ray_pool_start_pps']:10.2f} "
          f"{r['overhead_pool_start']:+8.1%} {r['identical_verdicts']:>9}/{n}")
    print(f"{'ray (warm pool)':22} {min(r['ray_warm_s']):7.1f} {r['ray_warm_pps']:10.2f} "
          f"{r['overhead_warm']:+8.1%} {r['identical_verdicts_warm']:>9}/{n}")
    for k, v in r["dispatch_s_per_program_by_actors"].items():
        wall = r["dispatch_wall_s_per_program_by_actors"][k]
        print(f"dispatcher, {k} no-op actors, {r['dispatch_programs']} programs (nothing executed): driver CPU "
              f"{v * 1e3:.2f} ms/program (wall {wall * 1e3:.2f} ms) -> one driver handles <= {1 / v:.0f} programs/s")
    print(f"\nPROJECTION (not measured): {r['model']}")
    print(f"  inputs: per_core_pps = {r['per_core_pps']:.2f} (local throughput / {r['workers']} on this mix), "
          f"dispatch_s_per_program = {r['dispatch_s_per_program'] * 1e3:.2f} ms of driver CPU")
    print(f"{'nodes':>6} {'cores':>6} {'workers-bound/s':>16} {'dispatch-bound/s':>17} {'projected/s':>12}")
    for p in r["projection"]:
        print(f"{p['nodes']:6d} {p['cores']:6d} {p['workers_bound_pps']:16.0f} {p['dispatch_bound_pps']:17.0f} "
              f"{p['projected_pps']:12.0f}")
    print(f"load average now: {os.getloadavg()}")


def mixed_programs(programs, langs: list[str], per_language: int) -> tuple[dict[str, Problem], list[Sample]]:
    """execution.py's programs of every language in one batch, problem ids prefixed `lang/` (ids repeat)."""
    import dataclasses

    problems: dict[str, Problem] = {}
    samples: list[Sample] = []
    for lang in langs:
        probs, samps = programs(lang, per_language)
        used = {s.problem_id for s in samps}
        problems.update({f"{lang}/{k}": dataclasses.replace(p, problem_id=f"{lang}/{k}")
                         for k, p in probs.items() if k in used})
        samples += [dataclasses.replace(s, problem_id=f"{lang}/{s.problem_id}") for s in samps]
    return problems, samples
