"""K-fold cross-validation by problem: train on K-1 folds, score the held-out fold; no problem is in both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rewardranker.records import Problem, Sample, SampleKey
from rewardranker.reward.config import RewardConfig
from rewardranker.reward.evaluate import kfold_problems

Key = SampleKey


def cross_validate(cfg: RewardConfig, problems: dict[str, Problem], samples: list[Sample], passed: dict[Key, bool],
                   k: int, work_dir: Path, features: np.ndarray | None = None, progress: bool = True,
                   extra: tuple[dict[str, Problem], list[Sample], dict[Key, bool], np.ndarray | None] | None = None,
                   generated_tests: dict[str, list[str]] | None = None, exec_cfg=None) -> dict[Key, float]:
    """Out-of-fold reward scores for every candidate; `extra` = (problems, samples, labels, features) of
    additional training data (e.g. MBPP mutants) added to every fold's training set; `generated_tests` turn on
    the execution features as in `train_reward_model`."""
    from rewardranker.reward.model import RewardModel
    from rewardranker.reward.train import train_reward_model

    execution = cfg.use_execution({s.problem_id for s in samples}, generated_tests)
    builder = RewardModel.build(cfg, execution=execution)
    if features is None:
        features = builder.features(problems, samples, progress, generated_tests, exec_cfg)
    if extra is not None and extra[3] is None:  # consensus features of the extra data, computed once for all folds
        extra = (*extra[:3], RewardModel.build(cfg).features(extra[0], extra[1], progress))
    if extra is not None and extra[3].shape[1] < features.shape[1]:  # no generated tests: no execution signal (0)
        pad = np.zeros((len(extra[1]), features.shape[1] - extra[3].shape[1]), dtype=features.dtype)
        extra = (*extra[:3], np.concatenate([extra[3], pad], axis=1))
    cfg = replace(cfg, execution_features="on" if execution else "off")  # the folds' features are given
    oof: dict[Key, float] = {}
    for i, (train_ids, eval_ids) in enumerate(kfold_problems([s.problem_key for s in samples], k, cfg.seed)):
        tr = [j for j, s in enumerate(samples) if s.problem_key in set(train_ids)]
        ev = [j for j, s in enumerate(samples) if s.problem_key in set(eval_ids)]
        tr_probs, tr_samples, tr_passed, tr_feats = problems, [samples[j] for j in tr], passed, features[tr]
        if extra is not None:
            tr_probs = {**problems, **extra[0]}
            tr_samples = tr_samples + extra[1]
            tr_passed = {**passed, **extra[2]}
            tr_feats = np.concatenate([tr_feats, extra[3]])
        model_dir = train_reward_model(cfg, tr_probs, tr_samples, tr_passed, Path(work_dir) / f"fold{i}",
                                       features=tr_feats, progress=progress)
        rm = RewardModel.load(model_dir)
        scores = _score(rm, problems, [samples[j] for j in ev], features[ev], progress)
        oof.update({samples[j].key: v for j, v in zip(ev, scores)})
    return oof


def _score(rm, problems: dict[str, Problem], samples: list[Sample], feats: np.ndarray, progress: bool) -> list[float]:
    """Held-out scores; a frozen backbone's outputs come from the encoding cache (computed once for all folds)."""
    return rm.score(problems, samples, progress=progress, features=feats)
