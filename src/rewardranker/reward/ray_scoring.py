"""Reward-model scoring on a Ray cluster: scorer actors load the model once and score whole problems in batches.

    rm = RayRewardModel("runs/rm", address="auto")
    scores = score_candidates(cands, ScoreConfig(mode="rm", model_dir=Path("runs/rm")), rm=rm)

`RayRewardModel.score` has `RewardModel.score`'s signature and returns the same numbers: candidates are split by
problem (a candidate's consensus features are computed among its problem's candidates, so a problem never spans
two actors), each actor runs the public `RewardModel.score` on its share, and the scores come back in input
order. The model folder must exist at the same path on every node (a shared filesystem, or a copy).
"""

from __future__ import annotations

import atexit
from pathlib import Path

import numpy as np

from rewardranker.problems import ProblemSet, find_problem, index_problems
from rewardranker.records import Problem, Sample


class ScorerActor:
    """Holds one loaded reward model; scores the candidates it is sent."""

    def __init__(self, model_dir: str, torch_threads: int):
        import torch

        from rewardranker.reward.model import RewardModel

        torch.set_num_threads(torch_threads)
        if not Path(model_dir).exists():
            import socket

            from rewardranker.errors import RewardRankerError

            raise RewardRankerError(f"{model_dir}: no such reward-model folder on node {socket.gethostname()}; "
                                    f"put it on a filesystem every node sees, or copy it to the same path")
        self.rm = RewardModel.load(model_dir)

    def score(self, problems: ProblemSet, samples: list[Sample], batch_size: int | None,
              generated_tests: dict[str, list[str]] | None = None) -> list[float]:
        """Execution features (models that read them) run the candidates on this actor's node."""
        return self.rm.score(problems, samples, batch_size=batch_size, progress=False,
                             generated_tests=generated_tests)


class RayRewardModel:
    """A drop-in for `RewardModel` whose `score` runs on scorer actors (one model load per actor)."""

    def __init__(self, model_dir: str | Path, address: str, actors: int | None = None, cpus_per_actor: int = 1,
                 gpus_per_actor: float | None = None):
        """`gpus_per_actor` None: 1 GPU per scorer when the cluster has GPUs (not tested here: no GPU), else 0."""
        from rewardranker.execution.ray_backend import connect, import_ray

        self.ray = import_ray()
        connect(address)
        self.model_dir = str(Path(model_dir).resolve())
        self.n, self.cpus_per_actor = actors, cpus_per_actor
        has_gpus = self.ray.cluster_resources().get("GPU", 0) > 0
        self.gpus_per_actor = gpus_per_actor if gpus_per_actor is not None else (1.0 if has_gpus else 0.0)
        self.actors: list = []
        atexit.register(self.shutdown)

    def _ensure_actors(self) -> None:
        """Start the scorer actors (again, if an executor pool of this process took the cluster meanwhile)."""
        from rewardranker.execution.ray_backend import claim_cluster

        if self.actors:
            return
        free = claim_cluster(self)  # executor actors and other scorers of this process step aside
        if self.gpus_per_actor:
            free = int(self.ray.available_resources().get("GPU", 0) / self.gpus_per_actor)
        n = self.n or max(1, free // (1 if self.gpus_per_actor else self.cpus_per_actor))
        remote = self.ray.remote(num_cpus=self.cpus_per_actor, num_gpus=self.gpus_per_actor)(ScorerActor)
        self.actors = [remote.options(scheduling_strategy="SPREAD").remote(self.model_dir, self.cpus_per_actor)
                       for _ in range(n)]

    def score(self, problems: ProblemSet | dict[str, Problem], samples: list[Sample], batch_size: int | None = None,
              progress: bool = True, features: np.ndarray | None = None,
              generated_tests: dict[str, list[str]] | None = None, exec_cfg=None) -> list[float]:
        """One reward per sample, in the order of `samples` (as `RewardModel.score`; `exec_cfg` is not used:
        each actor executes its own problems' candidates for the execution features)."""
        if features is not None:
            raise ValueError("RayRewardModel computes the features on the actors; pass features=None")
        if not samples:
            return []
        self._ensure_actors()
        shards = shard_by_problem(samples, len(self.actors))
        refs = {}
        problems = index_problems(problems)
        for actor, idx in zip(self.actors, shards):
            part = [samples[i] for i in idx]
            mine = index_problems({find_problem(problems, s).key: find_problem(problems, s) for s in part})
            tests = None if generated_tests is None else {
                s.problem_id: generated_tests[s.problem_id] for s in part if s.problem_id in generated_tests}
            refs[actor.score.remote(mine, part, batch_size, tests)] = idx
        out = [0.0] * len(samples)
        bar = _bar(progress, len(samples))
        try:
            pending = list(refs)
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        values = self.ray.get(ref)
                    except self.ray.exceptions.RayTaskError as e:
                        from rewardranker.execution.ray_backend import _user_error

                        raise _user_error(e) from None
                    for i, v in zip(refs[ref], values):
                        out[i] = v
                    bar(len(values))
        finally:
            bar(None)
        return out

    def shutdown(self) -> None:
        from rewardranker.execution.ray_backend import kill_and_wait, release

        if self.ray.is_initialized():
            kill_and_wait(self.ray, self.actors, len(self.actors) * self.cpus_per_actor)
        self.actors = []
        release(self)


def shard_by_problem(samples: list[Sample], n: int) -> list[list[int]]:
    """Sample indices in `n` shards of whole problems, largest problems first onto the lightest shard."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.problem_key, []).append(i)
    shards: list[list[int]] = [[] for _ in range(max(1, n))]
    for idx in sorted(groups.values(), key=len, reverse=True):
        min(shards, key=len).extend(idx)
    return [sorted(s) for s in shards if s]


def _bar(enabled: bool, total: int):
    """A driver-side progress callback: bar(k) advances by k, bar(None) closes."""
    if not enabled:
        return lambda k: None
    from rich.console import Console
    from rich.progress import Progress

    p = Progress(console=Console(stderr=True), transient=False)
    p.start()
    task = p.add_task("scoring on Ray", total=total)

    def advance(k):
        if k is None:
            p.stop()
        else:
            p.advance(task, k)
    return advance

