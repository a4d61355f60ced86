"""Score candidates (modes rm | agreement | combined) and pick the top-1 candidate per problem."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.metrics import align_scores, top1_index
from rewardranker.problems import CandidateSet
from rewardranker.records import Sample, Score
from rewardranker.reward.agreement import (
    AgreementConfig,
    agreement_feature,
    agreement_scores,
    passed_sets,
    per_problem,
    soft_agreement,
)

MODES = ("rm", "agreement", "combined")
DEFAULT_RM_WEIGHT = 0.5  # reward weight in `combined`: middle of the 0.25-1 plateau of the dev 5-fold CV (46.3)


@dataclass
class ScoreConfig:
    """How to score: the mode, the reward model (rm/combined), and the agreement settings."""

    mode: str = "rm"
    model_dir: Path | None = None
    batch_size: int = 32
    rm_weight: float | None = None  # combined: None = the model's stored weight, else DEFAULT_RM_WEIGHT
    bf16: bool | str | None = None  # None: the model's setting (auto: native bf16 only); True/False/"auto" override
    int8: bool | None = None  # None: the model's setting; True: dynamic int8 backbone on CPU
    runtime: str | None = None  # None: the model's setting (auto: ONNX Runtime for frozen backbones on CPU); torch|onnx
    agreement: AgreementConfig = field(default_factory=AgreementConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("mode", f"must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode != "agreement" and self.model_dir is None:
            raise ConfigError("model_dir", f"mode {self.mode!r} needs a trained reward model (--model)")
        if self.batch_size <= 0:
            raise ConfigError("batch_size", f"must be positive, got {self.batch_size}")
        if self.runtime is not None and self.runtime not in ("auto", "torch", "onnx"):
            raise ConfigError("runtime", f"must be auto, torch or onnx, got {self.runtime!r}")
        if self.rm_weight is not None and self.rm_weight < 0:
            raise ConfigError("rm_weight", f"must be >= 0, got {self.rm_weight}")


def _groups(samples: list[Sample]) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        out.setdefault(s.problem_key, []).append(i)
    return out


def combine(samples: list[Sample], rm_scores: list[float], agr_scores: list[float], rm_weight: float) -> list[float]:
    """log(1 + agreement score) + rm_weight * (reward z-scored within the problem).

    A small weight makes the reward break ties inside agreement groups and pick where no candidate passes any
    generated assert; a larger one lets a confident reward overrule a slightly bigger group.
    """
    out = np.zeros(len(samples))
    for idx in _groups(samples).values():
        r = np.asarray([rm_scores[i] for i in idx], dtype=float)
        z = (r - r.mean()) / r.std() if r.std() > 1e-9 else np.zeros_like(r)
        out[idx] = [agreement_feature(agr_scores[i]) for i in idx] + rm_weight * z
    return out.tolist()


def stored_rm_weight(model_dir: Path) -> float:
    """The combination weight saved with a model (by `train-rm`), else the default."""
    head = Path(model_dir) / "reward_head.json"
    if head.exists():
        w = json.loads(head.read_text(encoding="utf-8")).get("combine_rm_weight")
        if w is not None:
            return float(w)
    return DEFAULT_RM_WEIGHT


def score_candidates(cands: CandidateSet, cfg: ScoreConfig, exec_cfg=None, progress: bool = True,
                     rm=None) -> list[Score]:
    """One Score per candidate, in file order. Labels in `cands` are never read.

    `rm`: an already loaded model with `RewardModel.score`'s signature (e.g. ray_scoring.RayRewardModel).
    """
    samples = cands.samples
    if not samples:
        raise RewardRankerError("no candidates to score")
    rm_scores = agr = None
    if cfg.mode in ("rm", "combined"):
        from rewardranker.reward.model import RewardModel

        rm = rm if rm is not None else RewardModel.load(cfg.model_dir, bf16=cfg.bf16, int8=cfg.int8,
                                                         runtime=cfg.runtime)
        rm_scores = rm.score(cands.problems, samples, batch_size=cfg.batch_size, progress=progress,
                             generated_tests=cands.generated_tests or None, exec_cfg=exec_cfg)
    if cfg.mode in ("agreement", "combined"):
        sets = passed_sets(cands.problems, samples, cands.generated_tests, cfg.agreement, exec_cfg, progress)
        # agreement alone = CodeT's exact groups; combined uses soft agreement (benchmarks/reranking.py: better
        # than exact groups once the reward breaks ties)
        agr = agreement_scores(samples, sets) if cfg.mode == "agreement" else per_problem(samples, sets, soft_agreement)
    if cfg.mode == "rm":
        values = rm_scores
    elif cfg.mode == "agreement":
        values = agr
    else:
        w = cfg.rm_weight if cfg.rm_weight is not None else stored_rm_weight(cfg.model_dir)
        values = combine(samples, rm_scores, agr, w)
    return [Score(s.problem_id, s.sample_id, float(v), s.language or "") for s, v in zip(samples, values)]


def top1(samples: list[Sample], scores: list[Score]) -> list[tuple[Sample, float]]:
    """The chosen candidate of each problem (first in file order among ties), problems in file order."""
    score_of = align_scores(scores, [s.key for s in samples])
    missing = [s.key for s in samples if s.key not in score_of]
    if missing:
        raise RewardRankerError(f"{len(missing)} candidates have no score, e.g. {missing[0]} (ids must match)")
    chosen = []
    for idx in _groups(samples).values():
        vals = [score_of[samples[i].key] for i in idx]
        best = idx[top1_index(vals)]
        chosen.append((samples[best], vals[idx.index(best)]))
    return chosen
