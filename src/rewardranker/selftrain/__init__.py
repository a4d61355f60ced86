"""The iterative self-training loop (SFT -> RM -> [PPO -> sample -> execute -> hard negatives -> RM] x k)."""

from rewardranker.selftrain.config import SelfTrainConfig, packaged_config
from rewardranker.selftrain.hardneg import HardNegative, mine_hard_negatives
from rewardranker.selftrain.loop import load_run_config, plan, run_selftrain, stage_timings

__all__ = [
           "HardNegative",
           "SelfTrainConfig",
           "load_run_config",
           "mine_hard_negatives",
           "packaged_config",
           "plan",
           "run_selftrain",
           "stage_timings",
]
