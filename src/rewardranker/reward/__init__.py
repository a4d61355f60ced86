"""Bradley–Terry reward model, reranking (reward / CodeT agreement / combined) and its evaluation."""

from rewardranker.reward.config import RewardConfig
from rewardranker.reward.model import RewardModel
from rewardranker.reward.pairs import Pair, bt_loss, mine_pairs
from rewardranker.reward.train import train_reward_model

__all__ = ["Pair", "RewardConfig", "RewardModel", "bt_loss", "mine_pairs", "train_reward_model"]
