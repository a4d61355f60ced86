"""The generator's training: supervised fine-tuning (TRL) and PPO against the reward model (our own)."""

from rewardranker.policy.ppo import PPOConfig, run_ppo
from rewardranker.policy.sft import SFTConfig, examples_from_problems, examples_from_verdicts, run_sft

__all__ = ["PPOConfig", "SFTConfig", "examples_from_problems", "examples_from_verdicts", "run_ppo", "run_sft"]
