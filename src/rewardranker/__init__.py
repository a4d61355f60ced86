"""rewardranker: generate N programs, execute them, and let a self-improving reward model pick one.

The public Python API is what `__all__` lists; everything else (submodules included) is private and may change.

    from rewardranker import ExecutionConfig, execute, load_candidates, load_problems
    problems = load_problems("humaneval")
    cands = load_candidates("samples.jsonl", problems)      # any supported layout; cands.format says which
    verdicts = execute(cands.problems, cands.samples, ExecutionConfig(workers=2))

Names are imported on first use, so `import rewardranker` stays fast and does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {  # public name -> the module that defines it
    "Problem": "rewardranker.records",
    "Sample": "rewardranker.records",
    "Verdict": "rewardranker.records",
    "Score": "rewardranker.records",
    "RewardRankerError": "rewardranker.errors",
    "load_problems": "rewardranker.problems",
    "load_candidates": "rewardranker.problems",
    "CandidateSet": "rewardranker.problems",
    "ExecutionConfig": "rewardranker.execution.runner",
    "execute": "rewardranker.execution.runner",
    "pass_at_k": "rewardranker.metrics",
    "ranked_pass_at_1": "rewardranker.metrics",
    "load_verdicts": "rewardranker.metrics",
    "load_scores": "rewardranker.metrics",
    "compare_verdicts": "rewardranker.compare",
    "RewardConfig": "rewardranker.reward.config",
    "RewardModel": "rewardranker.reward.model",
    "train_reward_model": "rewardranker.reward.train",
    "ScoreConfig": "rewardranker.reward.score",
    "score_candidates": "rewardranker.reward.score",
    "GenerationConfig": "rewardranker.generation.config",
    "sample_problems": "rewardranker.generation.sample",
    "SelfTrainConfig": "rewardranker.selftrain.config",
    "run_selftrain": "rewardranker.selftrain.loop",
}

__all__ = [  # the public API; kept equal to _EXPORTS (tests/test_keys_and_outputs.py checks)
    "CandidateSet",
    "ExecutionConfig",
    "GenerationConfig",
    "Problem",
    "RewardConfig",
    "RewardModel",
    "RewardRankerError",
    "Sample",
    "Score",
    "ScoreConfig",
    "SelfTrainConfig",
    "Verdict",
    "__version__",
    "compare_verdicts",
    "execute",
    "load_candidates",
    "load_problems",
    "load_scores",
    "load_verdicts",
    "pass_at_k",
    "ranked_pass_at_1",
    "run_selftrain",
    "sample_problems",
    "score_candidates",
    "train_reward_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rewardranker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs only
    from rewardranker.compare import compare_verdicts
    from rewardranker.errors import RewardRankerError
    from rewardranker.execution.runner import ExecutionConfig, execute
    from rewardranker.generation.config import GenerationConfig
    from rewardranker.generation.sample import sample_problems
    from rewardranker.metrics import load_scores, load_verdicts, pass_at_k, ranked_pass_at_1
    from rewardranker.problems import CandidateSet, load_candidates, load_problems
    from rewardranker.records import Problem, Sample, Score, Verdict
    from rewardranker.reward.config import RewardConfig
    from rewardranker.reward.model import RewardModel
    from rewardranker.reward.score import ScoreConfig, score_candidates
    from rewardranker.reward.train import train_reward_model
    from rewardranker.selftrain.config import SelfTrainConfig
    from rewardranker.selftrain.loop import run_selftrain
