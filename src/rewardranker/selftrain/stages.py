"""The one place the loop calls the other pipeline stages (generation, execution, reward, policy).

Imports are lazy so that `rewardranker selftrain --help` and config validation stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewardranker.records import Problem, Sample, Verdict


def config_class(section: str) -> type:
    """The stage Config dataclass that a section of the self-training config is passed to."""
    if section == "generation":
        from rewardranker.generation import GenerationConfig

        return GenerationConfig
    if section == "execution":
        from rewardranker.execution import ExecutionConfig

        return ExecutionConfig
    if section == "reward":
        from rewardranker.reward import RewardConfig

        return RewardConfig
    if section == "sft":
        from rewardranker.policy import SFTConfig

        return SFTConfig
    if section == "ppo":
        from rewardranker.policy import PPOConfig

        return PPOConfig
    raise KeyError(section)


def build_generator(texts: list[str], out_dir: Path, arch: str, size: str, seed: int) -> Path:
    from rewardranker.generation import build_local_generator

    return build_local_generator(texts, out_dir, arch=arch, size=size, seed=seed)


def sft(cfg: Any, model: str, examples: list[tuple[str, str]], out_dir: Path) -> Path:
    from rewardranker.policy import run_sft

    return run_sft(cfg, model, examples, out_dir)


def ppo(cfg: Any, policy_dir: Path, reward_fn: Callable[[list[str], list[str]], list[float]],
        problems: list[Problem], out_dir: Path, progress: bool) -> Path:
    from rewardranker.policy import run_ppo

    return run_ppo(cfg, str(policy_dir), reward_fn, problems, out_dir, progress=progress)


def sample(cfg: Any, problems: list[Problem], out_path: Path, progress: bool) -> Path:
    from rewardranker.generation import sample_problems

    return sample_problems(cfg, problems, out_path, progress=progress)


def execute(problems: list[Problem], samples: list[Sample], cfg: Any, progress: bool) -> list[Verdict]:
    from rewardranker.execution import execute as run

    return run(problems, samples, cfg, progress=progress)


def train_rm(cfg: Any, problems: dict[str, Problem], samples: list[Sample], passed: dict[tuple[str, int], bool],
             out_dir: Path, weights: dict[tuple[str, int], float] | None) -> Path:
    from rewardranker.reward import train_reward_model

    return train_reward_model(cfg, problems, samples, passed, out_dir, weights=weights)


def load_rm(model_dir: Path, ray: str = "") -> Any:
    """The reward model; with a Ray address, scorer actors on the cluster that each load it once."""
    if ray:
        from rewardranker.reward.ray_scoring import RayRewardModel

        return RayRewardModel(model_dir, ray)
    from rewardranker.reward import RewardModel

    return RewardModel.load(model_dir)
