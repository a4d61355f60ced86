"""`benchmarks/execution.py --ray`: the Ray backend against the local one on the same programs and cores.

Measured here, in one run:
- local: `execute()` with W workers (W = --workers), cache off.
- ray (pool start): a one-node Ray cluster on this machine with W CPUs, W executor actors started inside the
  timed call (process start, imports, sandboxes and compile servers included), cache off.
- ray (warm pool): the same programs again on the same actors (sandboxes and compile servers already up).
  Overhead = local throughput / Ray throughput - 1 (target: <= 15% on 2 cores).
- dispatch: the driver's cost per program, from --dispatch-programs distinct programs sent through the same
  dispatcher to W no-op actors that answer at once (nothing is executed): wall time / programs.

Projected (not measured) throughput of N nodes of C cores, from those inputs:
    per_core = local throughput / W                         (programs/s one core sustains on this mix)
    T(N) = min(N * C * per_core, 1 / dispatch_s)            (workers scale; one driver serialises dispatch)
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


def bench_ray(problems: dict[str, Problem], samples: list[Sample], workers: int, dispatch_programs: int) -> dict:
    import ray

    n = len(samples)
    local_cfg = ExecutionConfig(workers=workers, use_cache=False)
    execute(problems, samples[:1], local_cfg, progress=False)  # one-off PCH / server builds, outside the timings
    local, local_s = _timed(lambda: execute(problems, samples, local_cfg, progress=False))
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20)
    try:
        ex = RayExecutor(ExecutionConfig(ray="local", use_cache=False))
        on_ray, cold_s = _timed(lambda: ex.execute(problems, samples, progress=False))
        again, warm_s = _timed(lambda: ex.execute(problems, samples, progress=False))
        actors = ex.stats.actors
        ex.shutdown()
        noop = RayExecutor(ExecutionConfig(ray="local", use_cache=False), actor_cls=NoopActor)
        pid = samples[0].problem_id
        fake = [Sample(pid, i, f"    return {i}\n") for i in range(dispatch_programs)]
        noop.execute(problems, fake[:2], progress=False)  # start the no-op actors outside the timing
        _, dispatch_wall = _timed(lambda: noop.execute(problems, fake, progress=False))
        noop.shutdown()
    finally:
        ray.shutdown()
    local_pps, cold_pps, warm_pps = n / local_s, n / cold_s, n / warm_s
    dispatch_s = dispatch_wall / dispatch_programs
    per_core = local_pps / workers
    projection = [{"nodes": k, "cores": k * CORES_PER_NODE,
                   "workers_bound_pps": k * CORES_PER_NODE * per_core, "dispatch_bound_pps": 1 / dispatch_s,
                   "projected_pps": min(k * CORES_PER_NODE * per_core, 1 / dispatch_s)} for k in NODES]
    return {"programs": n, "workers": workers, "actors": actors,
            "local_s": local_s, "ray_pool_start_s": cold_s, "ray_warm_s": warm_s,
            "local_pps": local_pps, "ray_pool_start_pps": cold_pps, "ray_warm_pps": warm_pps,
            "overhead_pool_start": local_pps / cold_pps - 1, "overhead_warm": local_pps / warm_pps - 1,
            "identical_verdicts": _same(local, on_ray), "identical_verdicts_warm": _same(local, again),
            "dispatch_programs": dispatch_programs, "dispatch_s_per_program": dispatch_s,
            "per_core_pps": per_core, "projection": projection,
            "model": "T(N) = min(N * 16 * per_core_pps, 1 / dispatch_s_per_program)"}


def print_ray(r: dict) -> None:
    n = r["programs"]
    print(f"\nRay vs local: {n} programs, {r['workers']} workers / {r['actors']} executor actors, cache off")
    print(f"{'backend':22} {'wall s':>7} {'programs/s':>10} {'overhead':>9} {'same verdicts':>14}")
    print(f"{'local':22} {r['local_s']:7.1f} {r['local_pps']:10.2f} {'':>9} {'':>14}")
    print(f"{'ray (pool start)':22} {r['ray_pool_start_s']:7.1f} {r['ray_pool_start_pps']:10.2f} "
          f"{r['overhead_pool_start']:+8.1%} {r['identical_verdicts']:>9}/{n}")
    print(f"{'ray (warm pool)':22} {r['ray_warm_s']:7.1f} {r['ray_warm_pps']:10.2f} "
          f"{r['overhead_warm']:+8.1%} {r['identical_verdicts_warm']:>9}/{n}")
    print(f"dispatcher: {r['dispatch_s_per_program'] * 1e3:.2f} ms per program ({r['dispatch_programs']} no-op "
          f"programs) -> at most {1 / r['dispatch_s_per_program']:.0f} programs/s through one driver")
    print(f"\nPROJECTION (not measured): {r['model']}")
    print(f"  inputs: per_core_pps = {r['per_core_pps']:.2f} (local throughput / {r['workers']} on this mix), "
          f"dispatch_s_per_program = {r['dispatch_s_per_program'] * 1e3:.2f} ms")
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
